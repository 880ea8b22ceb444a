"""Fuzzing ``semcom check`` with a seeded corpus of hostile scenario files.

The corpus (:mod:`tests.semcom.scenario_mutations`) mutates every shipped ``scenarios/*.yaml``
in well over 100 ways: hostile values, broken structure, and text edits (truncation, invalid
UTF-8, deep nesting, self-referential aliases, alias bombs, ...). Each file runs through
``semcom check`` in this process and must end with exit status 0 or 2 within seconds, every
stderr line a one-line ``semcom check: error: ...``, never a traceback. A few valid mutants
also run the tiny trial.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from semcom.cli import main
from semcom.commands.check import TrialTimeout, deadline
from tests.semcom.scenario_mutations import SCENARIOS, TEXT_EDITS, mutants

CORPUS = mutants()
PREFIX = "semcom check: error: "
HANG_SECONDS = 30.0  # a case still running then has hung; it is stopped and fails
CASE_SECONDS = 20.0  # every case must stay under this (validation takes milliseconds; the
# margin is for a loaded 2-core CI machine, where one case was seen at 7.6 s)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / f"{name[:80]}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return path


def _check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str, str, float]:
    start = time.perf_counter()
    try:
        with deadline(HANG_SECONDS):
            code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except TrialTimeout:
        code = "hang"
    out, err = capsys.readouterr()
    return code, out, err, time.perf_counter() - start


def test_corpus_is_large_and_covers_every_scenario_and_edit():
    names = [name for name, _ in CORPUS]
    assert len(CORPUS) >= 100 and len(set(names)) == len(names)
    assert {p.stem for p in SCENARIOS} == {n.split("-")[0] for n in names}
    assert {n.rsplit("-text-", 1)[1] for n in names if "-text-" in n} == set(TEXT_EDITS)
    assert mutants() == CORPUS  # seeded: the same files on every run


@pytest.mark.parametrize(("name", "text"), CORPUS, ids=[name for name, _ in CORPUS])
def test_check_ends_cleanly_on_every_mutant(tmp_path, capsys, name, text):
    path = _write(tmp_path, name, text)
    code, out, err, seconds = _check(["check", str(path), "--trial-seconds", "0"], capsys)
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    if code == 2:
        assert lines and all(line.startswith(PREFIX) for line in lines), err
    else:
        assert lines == [] and out.startswith("scenario ") and "valid" in out
    assert seconds < CASE_SECONDS


VALID = []
for _name, _text in CORPUS:
    if isinstance(_text, str) and "cifar10" not in _name:
        VALID.append((_name, _text))


def test_trial_runs_on_valid_mutants(tmp_path, capsys):
    tried = 0
    for name, text in VALID:  # until three valid mutants have run their trial
        if tried >= 3:
            break
        path = _write(tmp_path, name, text)
        code, _, _, _ = _check(["check", str(path), "--trial-seconds", "0"], capsys)
        if code != 0 or tried >= 3:
            continue
        tried += 1
        argv = ["check", str(path), "--trial-seconds", "10", "--set", "execution.device=cpu"]
        code, out, err, seconds = _check(argv, capsys)
        assert code == 0 and err == "", (name, err)
        assert "check passed" in out or "tiny trial stopped at its 10 s budget" in out
        assert seconds < 10 + HANG_SECONDS
    assert tried == 3
