"""Reuse keyed honestly (issue 11, "Stale reuse" and "Other"):

- the code identity: the git commit read from ``.git`` files equals ``git rev-parse HEAD``
  (loose refs, packed refs, detached heads, linked worktrees; None without a checkout);
- the data digest is SHA-256 over dtype, shape and bytes;
- a checkpoint made by another (or an unrecorded) code version is not reused unless
  ``reuse_stale``; one made from other training data is retrained;
- ``semcom run``: ``--reuse-stale`` for rows and checkpoints of another version, with a line
  saying what was reused; a truncated ``per_image.csv`` line is recomputed on ``--resume``; a
  lost ``store.json`` is rebuilt; the input scenario file is never overwritten; ``--help``
  documents the default checkpoint folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import semcom
import semcom.checkpoints
import semcom.train
from semcom.cli import main
from semcom.identity import code_identity, code_key, data_digest, git_head
from semcom.scenario import load_scenario
from semcom.train import TrainConfig, checkpoint_path, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[2]
OLD = {"version": "0.0.1", "git_commit": "b" * 40}
SHA1, SHA2 = "1" * 40, "2" * 40


# -- code identity --------------------------------------------------------------------------------


def _fake_git(root: Path, head: str, refs: dict[str, str] = {}, packed: str = "") -> Path:  # noqa: B006
    git = root / ".git"
    git.mkdir(parents=True)
    (git / "HEAD").write_text(head + "\n")
    for ref, sha in refs.items():
        (git / ref).parent.mkdir(parents=True, exist_ok=True)
        (git / ref).write_text(sha + "\n")
    if packed:
        (git / "packed-refs").write_text(packed)
    return git


def test_git_head_reads_the_files_of_a_checkout(tmp_path: Path) -> None:
    _fake_git(tmp_path / "loose", "ref: refs/heads/main", {"refs/heads/main": SHA1})
    assert git_head(tmp_path / "loose") == SHA1
    packed = f"# pack-refs with: peeled fully-peeled sorted\n{SHA2} refs/heads/dev\n^{SHA1}\n"
    _fake_git(tmp_path / "packed", "ref: refs/heads/dev", packed=packed)
    assert git_head(tmp_path / "packed") == SHA2
    _fake_git(tmp_path / "detached", SHA2)
    assert git_head(tmp_path / "detached") == SHA2
    # a linked worktree: .git is a file naming its git dir, refs live in the common dir
    common = _fake_git(tmp_path / "main", "ref: refs/heads/main", {"refs/heads/feature": SHA1})
    own = common / "worktrees" / "wt"
    own.mkdir(parents=True)
    (own / "HEAD").write_text("ref: refs/heads/feature\n")
    (own / "commondir").write_text("../..\n")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text(f"gitdir: {own}\n")
    assert git_head(tmp_path / "wt") == SHA1
    # no commit yet, an escaping ref, no checkout at all
    _fake_git(tmp_path / "unborn", "ref: refs/heads/main")
    assert git_head(tmp_path / "unborn") is None
    _fake_git(tmp_path / "escape", "ref: refs/../../../etc/passwd")
    assert git_head(tmp_path / "escape") is None
    assert git_head(tmp_path / "nothing") is None


def test_code_identity_matches_git_rev_parse() -> None:
    code = code_identity()
    assert code["version"] == semcom.__version__
    if not (ROOT / ".git").exists():  # an unpacked source tree: no commit to read
        assert code["git_commit"] is None
        return
    if shutil.which("git") is None:
        pytest.skip("no git binary to compare with")
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and code["git_commit"] == done.stdout.strip()


def test_data_digest_is_sha256_of_dtype_shape_and_bytes() -> None:
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    expected = hashlib.sha256(b"<f8[2, 3];" + a.tobytes()).hexdigest()
    assert data_digest(a) == expected
    assert data_digest(torch.from_numpy(a)) == expected  # tensors hash like their arrays
    assert data_digest(a.T) == data_digest(np.ascontiguousarray(a.T)) != expected
    assert data_digest(a, a) != data_digest(a) != data_digest(a.astype(np.float32))


# -- checkpoints ----------------------------------------------------------------------------------


def _config(directory: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        model="mlp", n_features=4, dataset="digits", dataset_options={"limit": 128}, epochs=1,
        batch_size=64, patience=None, device="cpu", checkpoint_dir=str(directory),
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_checkpoint_of_another_version_needs_reuse_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    for module in (semcom.train, semcom.checkpoints):  # the loop records it, files are named by it
        monkeypatch.setattr(module, "code_identity", lambda: OLD)
    old = train(config, progress=False)
    assert old.checkpoint.name.endswith(f"-{code_key(OLD)}.pt") and old.code == OLD
    monkeypatch.undo()

    # the current version does not reuse it: it trains its own and says why
    fresh = train(config, progress=False)
    assert not fresh.reused and fresh.checkpoint == checkpoint_path(config) != old.checkpoint
    assert fresh.code == code_identity() and fresh.data_hash == old.data_hash
    assert fresh.note == (
        f"{old.checkpoint.name} of semcom 0.0.1 (git bbbbbbbbb) is stale; trained again "
        "(--reuse-stale reuses it)"
    )
    # its own checkpoint wins over a stale one
    again = train(config, progress=False, reuse_stale=True)
    assert again.reused and not again.stale and again.checkpoint == fresh.checkpoint

    # with only the stale one left, reuse_stale takes it (and says whose it is)
    fresh.checkpoint.unlink()
    stale = train(config, progress=False, reuse_stale=True)
    assert stale.reused and stale.stale and stale.code == OLD
    assert stale.checkpoint == old.checkpoint and _same_weights(stale.model, old.model)


def test_checkpoint_without_recorded_code_is_stale(tmp_path: Path) -> None:
    """A checkpoint of a version that recorded neither code nor data (older file name)."""
    config = _config(tmp_path)
    trained = train(config, progress=False)
    state = torch.load(trained.checkpoint, weights_only=True)
    del state["code"], state["data_hash"]
    legacy = trained.checkpoint.with_name(trained.checkpoint.name.rsplit("-", 1)[0] + ".pt")
    torch.save(state, legacy)
    trained.checkpoint.unlink()
    retrained = train(config, progress=False)
    assert not retrained.reused and "of an unrecorded semcom version is stale" in retrained.note
    retrained.checkpoint.unlink()
    kept = train(config, progress=False, reuse_stale=True)
    assert kept.reused and kept.stale and kept.code is None and kept.checkpoint == legacy


def test_checkpoint_of_other_training_data_is_retrained(tmp_path: Path) -> None:
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{i:02d}.png")
    config = _config(
        tmp_path / "ck", dataset="folder", dataset_root=str(images), dataset_options={"size": 8}
    )
    first = train(config, progress=False)
    assert train(config, progress=False).reused
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "05.png")  # the data change
    again = train(config, progress=False, reuse_stale=True)  # other data is never "stale"
    assert not again.reused and again.data_hash != first.data_hash
    assert again.note == f"{first.checkpoint.name} was made from other training data; trained again"
    assert again.checkpoint == first.checkpoint  # this version's file, trained again
    assert load_checkpoint(first.checkpoint).data_hash == again.data_hash
    assert train(config, progress=False).reused


# -- semcom run -----------------------------------------------------------------------------------

TINY = """\
name: tiny
data: {dataset: digits, eval_images: 8}
model: {name: mlp, n_features: 8}
training: {epochs: 1, batch_size: 64}
channel: {model: awgn, n_subchannels: 8}
schemes: [ui-ep]
sweep: {snr_db: [0, 10]}
stop: {min_draws: 1, max_draws: 1}
output: {plots: false}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained checkpoint folder and a finished reference run of a two-point scenario."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.yaml").write_text(TINY)
    paths = {"root": root, "scenario": root / "tiny.yaml", "ck": root / "ck", "ref": root / "ref"}
    assert run_cli(paths, "--out", str(paths["ref"])) == 0
    return paths


def run_cli(paths: dict[str, Path], *args: str, scenario: Path | None = None) -> int:
    return main([
        "run", str(scenario or paths["scenario"]), "--checkpoint-dir", str(paths["ck"]),
        "--workers", "1", "--no-progress", *args,
    ])  # fmt: skip


def rows(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / "results.csv").drop(columns="seconds")


def test_run_never_overwrites_the_input_scenario(
    tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "exp"
    out.mkdir()
    (out / "scenario.yaml").write_text("# my notes\n" + TINY)
    before = (out / "scenario.yaml").read_bytes()
    assert run_cli(tiny, "--out", str(out), scenario=out / "scenario.yaml") == 0
    printed = capsys.readouterr().out
    assert (out / "scenario.yaml").read_bytes() == before
    assert f"the resolved one is in {out / 'scenario.resolved.yaml'}" in printed
    assert f"1 epochs on cpu, checkpoints in {tiny['ck'].resolve()}" in printed
    resolved = load_scenario(out / "scenario.resolved.yaml")
    assert resolved.config_hash() == load_scenario(out / "scenario.yaml").config_hash()
    pd.testing.assert_frame_equal(rows(out), rows(tiny["ref"]))

    # a lost store.json is rebuilt from the resolved scenario: --resume reuses every row
    (out / "store.json").unlink()
    assert run_cli(tiny, "--out", str(out), "--resume", scenario=out / "scenario.yaml") == 0
    printed = capsys.readouterr().out
    assert "store.json was missing; rebuilt it from the scenario file and provenance.json" in (
        printed
    )
    assert "2 points, 0 to compute, 2 reused from results.csv" in printed
    assert (out / "scenario.yaml").read_bytes() == before


def test_resume_recomputes_a_point_with_a_truncated_per_image_line(
    tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cut"
    shutil.copytree(tiny["ref"], out)
    data = (out / "per_image.csv").read_bytes()
    (out / "per_image.csv").write_bytes(data[:-10])  # the last point keeps 7 of its 8 images
    assert run_cli(tiny, "--out", str(out), "--resume") == 0
    printed = capsys.readouterr().out
    assert "1 point with damaged or incomplete rows will be recomputed" in printed
    assert "2 points, 1 to compute, 1 reused from results.csv" in printed
    assert (out / "per_image.csv").read_bytes() == (tiny["ref"] / "per_image.csv").read_bytes()
    pd.testing.assert_frame_equal(rows(out), rows(tiny["ref"]))


def test_rows_and_checkpoints_of_another_version_need_reuse_stale(
    tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, ck = tmp_path / "old", tmp_path / "ck"
    shutil.copytree(tiny["ref"], out)
    shutil.copytree(tiny["ck"], ck)
    meta = json.loads((out / "store.json").read_text())
    meta["codes"] = [OLD]  # as if an older semcom had computed the rows
    (out / "store.json").write_text(json.dumps(meta))
    (current,) = ck.glob("*.pt")
    state = torch.load(current, weights_only=True)
    state["code"] = OLD  # and trained the model
    stale = current.with_name(current.name.rsplit("-", 1)[0] + f"-{code_key(OLD)}.pt")
    torch.save(state, stale)
    current.unlink()
    paths = {**tiny, "ck": ck}

    assert run_cli(paths, "--out", str(out), "--resume") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds results computed by semcom 0.0.1 (git bbbbbbbbb)" in err
    assert "allowed: --reuse-stale to keep them" in err

    assert run_cli(paths, "--out", str(out), "--resume", "--reuse-stale") == 0
    printed = capsys.readouterr().out
    assert "--reuse-stale: keeping 2 points computed by semcom 0.0.1 (git bbbbbbbbb)" in printed
    assert (
        "model conventional: reused the stale checkpoint of semcom 0.0.1 (git bbbbbbbbb) "
        f"(--reuse-stale), best epoch 1 ({stale})"
    ) in printed
    assert not list(ck.glob(f"*-{code_key(code_identity())}.pt"))  # nothing retrained
    pd.testing.assert_frame_equal(rows(out), rows(tiny["ref"]))


def test_help_documents_the_checkpoint_folder_and_reuse_stale(
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "results/checkpoints under the current directory, not under --out" in text
    assert "--reuse-stale" in text and "another semcom version or commit" in text


@pytest.mark.parametrize("damage", ["header", "point", "nul", "text", "per_image cut", "no store"])
def test_plot_refuses_a_damaged_folder_in_one_line(
    damage: str, tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "damaged"
    shutil.copytree(tiny["ref"], out)
    path = out / "results.csv"
    lines = path.read_bytes().split(b"\n")
    if damage == "header":
        lines[0] = lines[0].replace(b"scheme", b'sch"eme', 1)
    elif damage == "point":
        lines[1] = b"x" + lines[1][1:]
    elif damage == "nul":
        lines[1] = lines[1][:20] + b"\x00" + lines[1][20:]
    else:
        cells = lines[2].split(b",")
        cells[lines[0].split(b",").index(b"psnr_db")] = b"abc"
        lines[2] = b",".join(cells)
    path.write_bytes(b"\n".join(lines))
    if damage == "per_image cut":
        path.write_bytes((tiny["ref"] / "results.csv").read_bytes())
        cut = out / "per_image.csv"
        cut.write_bytes(cut.read_bytes()[:-20])
    if damage == "no store":  # not a store: the numeric columns are still checked
        (out / "store.json").unlink()
    assert main(["plot", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    if damage == "no store":
        assert (
            err
            == f"semcom plot: error: {path}: column psnr_db: 'abc' is invalid; allowed: numbers\n"
        )
    else:
        assert f"'{out}' is damaged (" in err and f"--out {out} --resume" in err
