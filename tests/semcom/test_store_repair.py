"""semcom.sweep.store on damaged files (issue 11, "Store damage" and "Other"):

- every kind of damage the issue lists (a damaged header, a non-integer ``point``, NUL bytes,
  text in a numeric column, a truncated ``per_image.csv`` line) is detected; the point is
  recomputed, and once the missing points are added back the files equal byte for byte those
  of a store that was never damaged, so results and per-image rows agree both ways;
- a seeded corpus of random damage (NUL, invalid UTF-8, cut files, lost or split lines) always
  reopens to a consistent store that completes to the undamaged files;
- a header that cannot be repaired is refused with one line naming the files to delete, and
  the refused open changes nothing;
- a deleted ``store.json`` is rebuilt from ``scenario.yaml`` (and ``provenance.json``);
- rows of another code version or other data are refused unless ``reuse_stale``;
- files are written with the permissions the umask allows.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
from pathlib import Path

import pytest

from channels.errors import ConfigError
from semcom.sweep import PointResult, ResultStore, write_text_atomic
from semcom.sweep.recover import rebuild_store_json
from semcom.sweep.store import damage_report

FP = "f" * 64
COUNTS = {"per_image": "n_images"}
POINTS = 6
IMAGES = 3
CODE = {"version": "9.9.9", "git_commit": "a" * 40}
OLD_CODE = {"version": "0.0.1", "git_commit": None}


def key_of(i: int) -> str:
    return f"channel=awgn|snr_db={float(i)!r}|scheme=s{i % 2}"


def point(i: int) -> PointResult:
    """A results row (with ``n_images``) and its per-image rows; values from ``i``."""
    key = key_of(i)
    row = {
        "point": i, "key": key, "channel": "awgn", "snr_db": float(i), "psnr_db": 20.0 + i / 3,
        "accuracy": None, "flag": i % 2 == 0, "stop_reason": "converged", "n_images": IMAGES,
    }  # fmt: skip
    images = [{"key": key, "image": j, "psnr_db": 20.0 + i / 3 + j / 7} for j in range(IMAGES)]
    return PointResult(row, {"per_image": images})


def open_store(directory: Path, resume: bool = True, **kwargs: object) -> ResultStore:
    return ResultStore(directory, FP, resume=resume, row_counts=COUNTS, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An undamaged store of every point, finalized (the expected bytes)."""
    directory = tmp_path_factory.mktemp("reference")
    store = open_store(directory, resume=False)
    for i in reversed(range(POINTS)):
        store.add(point(i))
    store.finalize(parquet=False)
    return directory


def copy_of(reference: Path, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(reference, work)
    return work


def complete_and_compare(store: ResultStore, reference: Path) -> None:
    """Results and per-image rows agree both ways; adding the missing points and finalizing
    gives the reference files byte for byte."""
    results, per_image = store.frame(), store.frame("per_image")
    assert set(results["key"] if len(results) else []) == store.completed()
    counts = per_image.groupby("key").size().to_dict() if len(per_image) else {}
    assert counts == dict.fromkeys(store.completed(), IMAGES)
    for i in range(POINTS):
        if key_of(i) not in store.completed():
            store.add(point(i))
    store.finalize(parquet=False)
    for name in ("results.csv", "per_image.csv"):
        assert (store.directory / name).read_bytes() == (reference / name).read_bytes()


def edit_line(path: Path, index: int, change) -> None:  # noqa: ANN001
    lines = path.read_bytes().split(b"\n")
    lines[index] = change(lines[index])
    path.write_bytes(b"\n".join(lines))


# Line numbers: results.csv line i + 1 is point i; per_image.csv line 3 i + j + 1 is image j.
DAMAGE = {
    "results: non-integer point": ("results", 2, lambda b: b.replace(b"1,", b"1.5,", 1), {1}),
    "results: NUL byte": ("results", 3, lambda b: b[:10] + b"\x00" + b[10:], {2}),
    "results: text in a numeric column": (
        "results", 4, lambda b: b.replace(b",21.0,", b",abc,", 1), {3}),
    "results: text in a bool column": (
        "results", 1, lambda b: b.replace(b",True,", b",yes,", 1), {0}),
    "results: n_images not an integer": (
        "results", 2, lambda b: b.replace(b"converged,3", b"converged,x", 1), {1}),
    "results: invalid UTF-8": ("results", 5, lambda b: b[:5] + b"\xff" + b[5:], {4}),
    "results: a lost quote": ("results", 3, lambda b: b.replace(b"awgn", b'"awgn', 1), {2}),
    "per_image: NUL byte": ("per_image", 7, lambda b: b + b"\x00", {2}),
    "per_image: text in a numeric column": (
        "per_image", 4, lambda b: b.rsplit(b",", 1)[0] + b",n/a", {1}),
    "per_image: truncated line (newline kept)": ("per_image", 2, lambda b: b[:-25], {0}),
    "per_image: line lost": ("per_image", 5, lambda b: b"", {1}),
    "per_image: extra comma": ("per_image", 10, lambda b: b + b",", {3}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_line_recomputes_its_point(case: str, reference: Path, tmp_path: Path) -> None:
    table, line, change, recomputed = DAMAGE[case]
    work = copy_of(reference, tmp_path)
    path = work / f"{table}.csv"
    before = path.read_bytes()
    edit_line(path, line, change)
    assert path.read_bytes() != before, "the damage must change the file"
    if case == "per_image: line lost":  # drop the now empty line entirely
        path.write_bytes(path.read_bytes().replace(b"\n\n", b"\n"))
    store = open_store(work)
    assert store.completed() == {key_of(i) for i in range(POINTS)} - {key_of(i) for i in recomputed}
    assert any("will be recomputed" in note for note in store.notes), store.notes
    complete_and_compare(store, reference)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damage_report_names_the_damage_read_only(
    case: str, reference: Path, tmp_path: Path
) -> None:
    """What readers of a folder (semcom plot) use: every case is reported, nothing written."""
    assert damage_report(reference, COUNTS) is None
    table, line, change, _ = DAMAGE[case]
    work = copy_of(reference, tmp_path)
    edit_line(work / f"{table}.csv", line, change)
    if case == "per_image: line lost":
        (work / "per_image.csv").write_bytes(
            (work / "per_image.csv").read_bytes().replace(b"\n\n", b"\n")
        )
    snapshot = {p.name: p.read_bytes() for p in work.iterdir()}
    report = damage_report(work, COUNTS)
    assert report in (
        f"{table}.csv has 1 damaged line",
        "1 point lacks some of their per_image.csv rows",
    ), report
    assert {p.name: p.read_bytes() for p in work.iterdir()} == snapshot
    # a last line still being written (or cut by a crash) is not damage for a reader
    with open(work / "results.csv", "ab") as f:
        f.write(b"6,channel=awgn|snr_db=6.0|sch")
    assert damage_report(work, COUNTS) == report


def test_truncated_per_image_file_recomputes_the_last_point(
    reference: Path, tmp_path: Path
) -> None:
    """The issue's case: the file is cut in its last line, so the last point would keep only
    two of its three images; it is recomputed instead of being averaged over fewer images."""
    work = copy_of(reference, tmp_path)
    data = (work / "per_image.csv").read_bytes()
    (work / "per_image.csv").write_bytes(data[:-8])
    store = open_store(work)
    assert store.completed() == {key_of(i) for i in range(POINTS - 1)}
    complete_and_compare(store, reference)
    # and a last line cut right after its newline (a whole row lost) is found by the count
    work2 = tmp_path / "cut-whole-line"
    shutil.copytree(reference, work2)
    lines = (work2 / "per_image.csv").read_bytes().splitlines(keepends=True)
    (work2 / "per_image.csv").write_bytes(b"".join(lines[:-1]))
    assert key_of(POINTS - 1) not in open_store(work2).completed()


@pytest.mark.parametrize("left", [b"", b"key,ima", b"key,image,psnr_db\n"])
def test_side_table_cut_to_its_header_recomputes_every_point(
    left: bytes, reference: Path, tmp_path: Path
) -> None:
    work = copy_of(reference, tmp_path)
    (work / "per_image.csv").write_bytes(left)
    store = open_store(work)
    assert store.completed() == set()
    complete_and_compare(store, reference)


def test_results_row_without_its_side_rows_and_repeated_row(
    reference: Path, tmp_path: Path
) -> None:
    work = copy_of(reference, tmp_path)
    per_image = (work / "per_image.csv").read_text().splitlines(keepends=True)
    (work / "per_image.csv").write_text("".join(r for r in per_image if key_of(2) not in r))
    results = (work / "results.csv").read_text().splitlines(keepends=True)
    (work / "results.csv").write_text("".join(results) + results[4])  # point 3 twice
    store = open_store(work)
    assert store.completed() == {key_of(i) for i in (0, 1, 4, 5)}
    complete_and_compare(store, reference)


def test_damaged_header_is_rewritten_from_store_json(reference: Path, tmp_path: Path) -> None:
    for table in ("results", "per_image"):
        work = tmp_path / table
        shutil.copytree(reference, work)
        edit_line(work / f"{table}.csv", 0, lambda b: b.replace(b"key", b"k\x00ey", 1))
        store = open_store(work)
        assert store.completed() == {key_of(i) for i in range(POINTS)}
        assert any(f"damaged header of {table}.csv" in n for n in store.notes), store.notes
        complete_and_compare(store, reference)


def test_unrecorded_damaged_header_is_refused_naming_the_files(
    reference: Path, tmp_path: Path
) -> None:
    for table, damaged in (("results", b"poin,key"), ("per_image", b"ke,image")):
        work = tmp_path / table
        shutil.copytree(reference, work)
        meta = json.loads((work / "store.json").read_text())
        del meta["columns"]  # a store.json without the record (rebuilt, or older)
        (work / "store.json").write_text(json.dumps(meta))
        edit_line(work / f"{table}.csv", 0, lambda b, d=damaged: d + b.split(b",", 2)[2])
        snapshot = {p.name: p.read_bytes() for p in work.iterdir()}
        with pytest.raises(ConfigError) as info:
            open_store(work)
        message = str(info.value)
        assert "\n" not in message and f"'{work / f'{table}.csv'}' has a damaged header" in message
        assert f"delete {work / 'results.csv'} and {work / 'per_image.csv'}" in message
        assert {p.name: p.read_bytes() for p in work.iterdir()} == snapshot


def test_without_recorded_kinds_the_majority_decides(reference: Path, tmp_path: Path) -> None:
    work = copy_of(reference, tmp_path)
    meta = json.loads((work / "store.json").read_text())
    del meta["columns"]
    (work / "store.json").write_text(json.dumps(meta))
    edit_line(work / "results.csv", 3, lambda b: b.replace(b",20.666666666666668,", b",x,"))
    store = open_store(work)
    assert store.completed() == {key_of(i) for i in range(POINTS)} - {key_of(2)}
    complete_and_compare(store, reference)
    # the kinds are recorded again from then on
    assert json.loads((work / "store.json").read_text())["columns"]["results"]["psnr_db"] == (
        "number"
    )


def _damage(data: bytes, rng: random.Random) -> bytes:
    """One random damage that no intact store can hold (so it must be detected)."""
    at = rng.randrange(len(data))
    kind = rng.choice(["nul", "utf8", "cut", "lose-line", "comma", "join-lines"])
    if kind == "nul":
        return data[:at] + b"\x00" + data[at:]
    if kind == "utf8":
        return data[:at] + b"\xc3" + data[at:]
    if kind == "cut":
        return data[:at]
    if kind == "comma":
        return data[:at] + b"," + data[at:]
    lines = data.split(b"\n")
    i = rng.randrange(1, len(lines) - 1)
    if kind == "lose-line":
        return b"\n".join(lines[:i] + lines[i + 1 :])
    return b"\n".join(lines[: i - 1] + [lines[i - 1] + lines[i]] + lines[i + 1 :])


def test_random_damage_corpus_always_recovers(reference: Path, tmp_path: Path) -> None:
    rng = random.Random(20251)
    for trial in range(40):
        work = tmp_path / f"trial{trial}"
        shutil.copytree(reference, work)
        for _ in range(rng.randint(1, 3)):
            path = work / rng.choice(["results.csv", "per_image.csv"])
            path.write_bytes(_damage(path.read_bytes(), rng))
        try:
            store = open_store(work)
        except ConfigError as error:  # only a results header cut to nothing may be refused
            assert "\n" not in str(error)
            continue
        # the damage was seen: a point is recomputed, or a header rewritten
        assert len(store.completed()) < POINTS or any("header" in n for n in store.notes)
        original = set((reference / "results.csv").read_text().splitlines(keepends=True))
        if (work / "results.csv").exists():  # gone when no point survived
            kept = (work / "results.csv").read_text().splitlines(keepends=True)
            assert set(kept) <= original
        complete_and_compare(store, reference)
        shutil.rmtree(work)


def test_crash_in_the_first_commit_is_not_results(tmp_path: Path) -> None:
    """A run killed while writing its first point left a header and a partial line: a run
    without --resume may start afresh there."""
    store = open_store(tmp_path, resume=False)
    store.add(point(0))
    text = (tmp_path / "results.csv").read_text()
    (tmp_path / "results.csv").write_text(text[: text.index("\n") + 12])
    assert open_store(tmp_path, resume=False).completed() == set()


# -- store.json lost ------------------------------------------------------------------------------


def test_lost_store_json_is_rebuilt_from_scenario_yaml(reference: Path, tmp_path: Path) -> None:
    work = copy_of(reference, tmp_path)
    (work / "store.json").unlink()
    (work / "scenario.yaml").write_text(f"# scenario x, resolved; config hash {FP}\nname: x\n")
    note = rebuild_store_json(work)
    assert (
        note == f"store.json was missing; rebuilt it from the scenario file (config hash {FP[:12]})"
    )
    assert rebuild_store_json(work) is None  # nothing to do once it exists
    store = open_store(work)
    assert store.completed() == {key_of(i) for i in range(POINTS)}
    complete_and_compare(store, reference)


def test_rebuilt_store_json_keeps_the_code_and_data_of_provenance(
    reference: Path, tmp_path: Path
) -> None:
    work = tmp_path / "coded"
    store = open_store(work, resume=False, code=CODE, data="d" * 64)
    for i in range(POINTS):
        store.add(point(i))
    (work / "store.json").unlink()
    (work / "scenario.yaml").write_text(f"# scenario x, resolved; config hash {FP}\n")
    bare = tmp_path / "bare"
    shutil.copytree(work, bare)
    provenance = {"config_hash": FP, "result_codes": [CODE], "data_digest": "d" * 64}
    (work / "provenance.json").write_text(json.dumps(provenance))
    assert "scenario file and provenance.json" in rebuild_store_json(work)
    assert open_store(work, code=CODE, data="d" * 64).completed() == {
        key_of(i) for i in range(POINTS)
    }
    # without provenance.json the code of the rows is unknown: stale
    rebuild_store_json(bare)
    with pytest.raises(ConfigError, match="computed by an unrecorded semcom version"):
        open_store(bare, code=CODE, data="d" * 64)


def test_lost_store_json_without_scenario_file_is_refused(reference: Path, tmp_path: Path) -> None:
    work = copy_of(reference, tmp_path)
    (work / "store.json").unlink()
    assert rebuild_store_json(work) is None
    with pytest.raises(ConfigError) as info:
        open_store(work)
    assert str(info.value) == (
        f"--resume: '{work}' holds results but its store.json is missing or unreadable, so "
        f"their scenario is unknown; allowed: restore store.json, delete {work / 'results.csv'} "
        f"and {work / 'per_image.csv'} to start over, or another --out"
    )


# -- code and data --------------------------------------------------------------------------------


def test_rows_of_another_code_version_need_reuse_stale(tmp_path: Path) -> None:
    store = open_store(tmp_path, resume=False, code=OLD_CODE, data="d" * 64)
    for i in range(2):
        store.add(point(i))
    snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError) as info:
        open_store(tmp_path, code=CODE, data="d" * 64)
    assert str(info.value) == (
        f"--resume: '{tmp_path}' holds results computed by semcom 0.0.1, not by this semcom "
        "9.9.9 (git aaaaaaaaa); allowed: --reuse-stale to keep them, or another --out"
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == snapshot
    store = open_store(tmp_path, code=CODE, data="d" * 64, reuse_stale=True)
    assert store.completed() == {key_of(0), key_of(1)} and store.stale_codes == [OLD_CODE]
    assert "--reuse-stale: keeping 2 points computed by semcom 0.0.1" in store.notes
    store.add(point(2))
    assert store.codes == [OLD_CODE, CODE]
    # the folder stays mixed: a later resume by the new version still needs the flag
    with pytest.raises(ConfigError, match="--reuse-stale"):
        open_store(tmp_path, code=CODE, data="d" * 64)
    # the same version resumes without it
    assert len(open_store(tmp_path / "x", resume=False, code=CODE).completed()) == 0


def test_rows_of_other_data_are_refused_even_with_reuse_stale(tmp_path: Path) -> None:
    store = open_store(tmp_path, resume=False, code=CODE, data="d" * 64)
    store.add(point(0))
    for reuse_stale in (False, True):
        with pytest.raises(ConfigError) as info:
            open_store(tmp_path, code=CODE, data="e" * 64, reuse_stale=reuse_stale)
        assert "computed from other data (data digest dddddddddddd != eeeeeeeeeeee)" in str(
            info.value
        )
    assert open_store(tmp_path, code=CODE, data="d" * 64).completed() == {key_of(0)}


def test_rows_without_recorded_code_are_stale(tmp_path: Path) -> None:
    store = open_store(tmp_path, resume=False)  # an older store: no code, no data recorded
    store.add(point(0))
    with pytest.raises(ConfigError, match="computed by an unrecorded semcom version"):
        open_store(tmp_path, code=CODE, data="d" * 64)
    kept = open_store(tmp_path, code=CODE, data="d" * 64, reuse_stale=True)
    assert kept.completed() == {key_of(0)} and kept.stale_codes == [None]


# -- permissions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_respect_the_umask(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        store = open_store(tmp_path / "run", resume=False)
        store.add(point(0))
        store.finalize()
        write_text_atomic(tmp_path / "run" / "provenance.json", "{}\n")
        reference_file = tmp_path / "plain"
        reference_file.write_text("x")  # what open() makes under this umask
    finally:
        os.umask(old)
    expected = stat.S_IMODE(reference_file.stat().st_mode)
    assert expected == 0o666 & ~umask
    for path in (tmp_path / "run").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == expected, path.name


def test_atomic_rewrite_keeps_the_mode_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_text_atomic(path, "[]")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "[]"
