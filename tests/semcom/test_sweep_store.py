"""semcom.sweep.store: append, reopen and resume, refusals, crash repair, exact round trip,
finalize (sorted CSV, parquet equal to the CSV), atomic writes."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import stat
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from channels.errors import ConfigError
from semcom.sweep import PointResult, ResultStore, write_json_atomic, write_text_atomic

FP = "f" * 64
OTHER = "0123456789ab" + "0" * 52


def key_of(i: int) -> str:
    return f"channel=awgn|snr_db={float(i)!r}|scheme=s{i % 2}"


def result(i: int, n_images: int = 2, **extra: object) -> PointResult:
    """A results row and ``n_images`` per-image rows for point ``i`` (values from ``i``)."""
    key = key_of(i)
    row = {
        "point": i,
        "key": key,
        "channel": "awgn",
        "snr_db": float(i),
        "seed": 3,
        "psnr_db": 20.0 + i / 3,
        "accuracy": None,
        "stop_reason": "converged",
        **extra,
    }
    images = [{"key": key, "image": j, "psnr_db": 20.0 + i / 3 + j / 7} for j in range(n_images)]
    return PointResult(row, {"per_image": images})


def expected_results(indices: list[int]) -> pd.DataFrame:
    """The results table built directly from the rows (independent of the CSV code)."""
    rows = [result(i).row for i in sorted(indices)]
    df = pd.DataFrame(rows)
    df["accuracy"] = df["accuracy"].astype(float)
    return df


def csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_append_reopen_and_completed(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "run", FP)
    assert store.completed() == set() and store.frame().empty
    for i in (0, 1, 2):
        store.add(result(i))
    assert store.completed() == {key_of(i) for i in (0, 1, 2)}
    meta = json.loads((tmp_path / "run" / "store.json").read_text())
    assert meta == {
        "format": 1,
        "fingerprint": FP,
        "tables": ["per_image"],
        "columns": {
            "per_image": {"key": "str", "image": "number", "psnr_db": "number"},
            "results": {
                "point": "number", "key": "str", "channel": "str", "snr_db": "number",
                "seed": "number", "psnr_db": "number", "accuracy": None, "stop_reason": "str",
            },
        },
    }  # fmt: skip

    again = ResultStore(tmp_path / "run", FP, resume=True)
    assert again.completed() == {key_of(i) for i in (0, 1, 2)}
    again.add(result(3))
    pd.testing.assert_frame_equal(again.frame(), expected_results([0, 1, 2, 3]))
    per_image = again.frame("per_image")
    assert list(per_image.columns) == ["key", "image", "psnr_db"]
    assert len(per_image) == 8 and per_image["image"].tolist() == [0, 1] * 4
    assert csv_rows(tmp_path / "run" / "results.csv")[0] == list(result(0).row)


def test_refuses_existing_results_without_resume(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, FP)
    store.add(result(0))
    with pytest.raises(ConfigError) as info:
        ResultStore(tmp_path, FP)
    assert str(info.value) == (
        f"output.dir: '{tmp_path}' already holds results of a run; "
        "allowed: --resume to complete them, or another --out"
    )
    assert ResultStore(tmp_path, FP, resume=True).completed() == {key_of(0)}


def test_resume_refuses_another_fingerprint(tmp_path: Path) -> None:
    ResultStore(tmp_path, OTHER).add(result(0))
    with pytest.raises(ConfigError) as info:
        ResultStore(tmp_path, FP, resume=True)
    assert str(info.value) == (
        f"--resume: '{tmp_path}' holds results of a different scenario "
        "(config hash 0123456789ab != ffffffffffff); allowed: the same scenario, or another --out"
    )
    # the refused open changed nothing
    assert ResultStore(tmp_path, OTHER, resume=True).completed() == {key_of(0)}


def test_fresh_start_when_no_point_finished(tmp_path: Path) -> None:
    """A directory whose run finished no point is not 'results': it is started afresh, and
    leftovers of that run (header only, orphan side rows) are removed."""
    store = ResultStore(tmp_path, OTHER)
    store.add(result(0))
    (tmp_path / "results.csv").write_text("point,key,old_column\n")  # header only
    store = ResultStore(tmp_path, FP)  # resume=False is fine: no finished point
    assert not (tmp_path / "per_image.csv").exists()
    store.add(result(5, extra_column=1))  # new columns: the old header is gone
    assert store.frame()["extra_column"].tolist() == [1]
    assert len(store.frame("per_image")) == 2
    # --resume on an empty new directory just starts
    assert ResultStore(tmp_path / "new", FP, resume=True).completed() == set()


def test_unusable_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as info:
        ResultStore(tmp_path / "file" / "out", FP)
    assert str(info.value).startswith(
        f"output.dir: '{tmp_path / 'file' / 'out'}' is invalid; allowed: a writable directory"
    )


def test_resume_without_store_json_is_refused(tmp_path: Path) -> None:
    ResultStore(tmp_path, FP).add(result(0))
    (tmp_path / "store.json").unlink()
    with pytest.raises(ConfigError) as info:
        ResultStore(tmp_path, FP, resume=True)
    assert str(info.value) == (
        f"--resume: '{tmp_path}' holds results but its store.json is missing or unreadable, "
        "so their scenario is unknown; allowed: restore store.json, delete "
        f"{tmp_path / 'results.csv'} to start over, or another --out"
    )


def test_crash_repair_partial_line_and_orphans(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, FP)
    for i in (0, 1, 2):
        store.add(result(i))
    results, per_image = tmp_path / "results.csv", tmp_path / "per_image.csv"
    # A crash during point 3: its side rows were written, plus half of its results row.
    with open(per_image, "a") as f:
        f.write(f"{key_of(3)},0,1.5\n{key_of(3)},1,1.")  # and a partial side row
    with open(results, "a") as f:
        f.write(f"3,{key_of(3)},awgn,3.0,3,21.0")  # no newline
    store = ResultStore(tmp_path, FP, resume=True)
    assert store.completed() == {key_of(i) for i in (0, 1, 2)}
    assert results.read_text().endswith("converged\n")
    assert [r[0] for r in csv_rows(per_image)[1:]] == [key_of(i) for i in (0, 0, 1, 1, 2, 2)]
    store.add(result(3))
    pd.testing.assert_frame_equal(store.frame(), expected_results([0, 1, 2, 3]))
    assert len(store.frame("per_image")) == 8

    # A trailing line with a final newline but too few fields is also partial.
    with open(results, "a") as f:
        f.write("4,abc\n")
    assert ResultStore(tmp_path, FP, resume=True).completed() == {key_of(i) for i in range(4)}
    assert len(csv_rows(results)) == 5


def test_crash_at_every_byte_of_a_commit(tmp_path: Path) -> None:
    """Cut the files of a commit (side rows, then results row) at every 5th byte: reopening
    always gives either the state before the commit or after it, never a mixture."""
    base = tmp_path / "base"
    store = ResultStore(base, FP)
    store.add(result(0))
    before = {n: (base / f"{n}.csv").read_bytes() for n in ("results", "per_image")}
    store.add(result(1, n_images=3))
    after = {n: (base / f"{n}.csv").read_bytes() for n in ("results", "per_image")}
    side = after["per_image"][len(before["per_image"]) :]
    row = after["results"][len(before["results"]) :]
    log = side + row  # the bytes of the commit, in write order
    for cut in range(0, len(log) + 1, 5):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(base, work)
        (work / "per_image.csv").write_bytes(before["per_image"] + log[: min(cut, len(side))])
        (work / "results.csv").write_bytes(before["results"] + log[len(side) : cut])
        reopened = ResultStore(work, FP, resume=True)
        done = cut == len(log)
        assert reopened.completed() == ({key_of(0), key_of(1)} if done else {key_of(0)})
        assert (work / "per_image.csv").read_bytes() == (after if done else before)["per_image"]
        assert (work / "results.csv").read_bytes() == (after if done else before)["results"]
        shutil.rmtree(work)


class SimulatedCrash(Exception):
    pass


def test_crash_between_the_writes_of_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop ``add`` at each of its file syncs (the process dies there): the side rows are
    always written before the results row, so reopening never shows a point without them."""
    real_fsync = os.fsync
    for crash_at in range(1, 6):
        work = tmp_path / f"crash{crash_at}"
        store = ResultStore(work, FP)
        store.add(result(0))
        calls = 0

        def fsync(fd: int, crash_at: int = crash_at) -> None:
            nonlocal calls
            real_fsync(fd)
            if stat.S_ISREG(os.fstat(fd).st_mode):
                calls += 1
                if calls == crash_at:
                    raise SimulatedCrash

        monkeypatch.setattr(os, "fsync", fsync)
        try:
            store.add(result(1, n_images=3))
            crashed = False
        except SimulatedCrash:
            crashed = True
        monkeypatch.setattr(os, "fsync", real_fsync)
        reopened = ResultStore(work, FP, resume=True)
        done = reopened.completed()
        # A crash in the fsync of the results row may leave it written: done either way.
        assert done == {key_of(0), key_of(1)} or (crashed and done == {key_of(0)})
        if crash_at == 1:  # died syncing the side rows: the point is not done
            assert done == {key_of(0)}
        finished = key_of(1) in done
        per_image = reopened.frame("per_image")
        assert per_image["key"].tolist() == [key_of(0)] * 2 + [key_of(1)] * 3 * finished


def test_exact_round_trip_of_values(tmp_path: Path) -> None:
    floats = [0.1 + 0.2, 1e-300, 5e-324, 1 / 3, -0.0, 1.7976931348623157e308, math.pi * 1e100]
    specials = [math.nan, math.inf, -math.inf, None]
    store = ResultStore(tmp_path, FP)
    values = floats + specials
    for i, value in enumerate(values):
        store.add(
            PointResult(
                {
                    "point": i,
                    "key": f"k{i}",
                    "x": value,
                    "n": 2**62 + i,
                    "flag": i % 2 == 0,
                    "np": np.float32(0.1) if i else np.float64(0.2),
                    "name": 'a,b "q"',
                },
                {},
            )
        )
    df = ResultStore(tmp_path, FP, resume=True).frame()
    got = df["x"].tolist()
    for a, b in zip(floats, got, strict=False):  # bit-for-bit, including the sign of -0.0
        assert struct.pack("<d", a) == struct.pack("<d", b)
    assert math.isnan(got[len(floats)]) and got[len(floats) + 1 : len(floats) + 3] == [
        math.inf,
        -math.inf,
    ]
    assert math.isnan(got[-1])  # None -> empty field -> NaN
    assert df["n"].dtype == np.int64 and df["n"].tolist() == [2**62 + i for i in range(11)]
    assert df["point"].dtype == np.int64
    assert df["flag"].dtype == bool and df["flag"].tolist() == [i % 2 == 0 for i in range(11)]
    assert df["np"].tolist() == [0.2] + [float(np.float32(0.1))] * 10
    assert set(df["name"]) == {'a,b "q"'}


def test_add_validation_writes_nothing(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, FP)
    store.add(result(0))
    snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad = [
        (PointResult({"point": 1}, {}), ValueError, "needs 'point' and 'key'"),
        (result(0), ValueError, "already stored"),
        (result(1, extra=1.0), ValueError, r"missing \[\], unexpected \['extra'\]"),
        (PointResult({**result(1).row, "point": 1.5}, {}), ValueError, "'point' must be an int"),
        (PointResult({**result(1).row, "psnr_db": [1.0]}, {}), TypeError, "column 'psnr_db'"),
        (PointResult({**result(1).row, "stop_reason": "a\nb"}, {}), ValueError, "line break"),
        (PointResult(result(1).row, {"per_image": [{"key": "x"}]}), ValueError, "row key"),
        (PointResult(result(1).row, {"../x": []}), ValueError, "side table name"),
    ]
    for item, error, message in bad:
        with pytest.raises(error, match=message):
            store.add(item)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == snapshot
    # a side table's rows must keep its header's columns
    with pytest.raises(ValueError, match=r"per_image: row columns differ"):
        store.add(PointResult(result(1).row, {"per_image": [{"key": key_of(1), "image": 0}]}))


def test_finalize_sorts_and_writes_parquet_equal_to_csv(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, FP)
    order = [3, 0, 2, 1]
    for i in order:
        store.add(result(i))
    raw_before = csv_rows(tmp_path / "results.csv")
    store.finalize()
    rows = csv_rows(tmp_path / "results.csv")
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    # each row's text is kept byte for byte, only the order changes
    assert sorted(rows[1:]) == sorted(raw_before[1:])
    side = csv_rows(tmp_path / "per_image.csv")
    expected_side = [(key_of(i), str(j)) for i in range(4) for j in (0, 1)]
    assert [(r[0], r[1]) for r in side[1:]] == expected_side
    parquet = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(parquet, store.frame())
    pd.testing.assert_frame_equal(parquet, expected_results(order))
    # the CSV read without the store gives the same table
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    csv_frame = pd.read_csv(tmp_path / "results.csv", **exact)
    pd.testing.assert_frame_equal(csv_frame, parquet)

    # reopening removes the (now stale) parquet; finalize(parquet=False) writes none
    store = ResultStore(tmp_path, FP, resume=True)
    assert not (tmp_path / "results.parquet").exists()
    store.add(result(4))
    store.finalize(parquet=False)
    assert not (tmp_path / "results.parquet").exists()
    assert [r[0] for r in csv_rows(tmp_path / "results.csv")[1:]] == ["0", "1", "2", "3", "4"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_writes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "provenance.json"
    write_json_atomic(path, {"a": 1, "b": [1.5, None], "p": tmp_path})
    assert json.loads(path.read_text()) == {"a": 1, "b": [1.5, None], "p": str(tmp_path)}
    write_text_atomic(path, "replaced\n")
    assert path.read_text() == "replaced\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["provenance.json"]
