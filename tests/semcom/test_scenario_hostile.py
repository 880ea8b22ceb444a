"""Hostile scenario files and arguments: every case that once crashed, hung or was wrongly
accepted now ends in one clear line (exit status 2) or runs as documented.

Cases: 1000-deep nesting, self-referential aliases, a 9x9 alias bomb, ``snr_db: 1e308`` (file,
``semcom ber``, ``semcom solve``, ``SemanticLink``), ``hidden: [1e9, 1e9]`` and
``num_classes: 1e9``, a NUL byte in ``output.dir``, ``--out emoji🚀``, ``check``'s trial at
``n_features: 4096``, YAML 1.1 coercions, and the upper bounds of every numeric field.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
import typing
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.errors import ConfigError
from semcom.cli import main
from semcom.commands._scenario_args import quoted
from semcom.scenario import Scenario, ScenarioError, load_scenario
from semcom.scenario.loader import parse_yaml
from semcom.scenario.schema import SECTIONS
from semcom.scenario.yaml12 import MAX_DEPTH, MAX_NODES, load_yaml, yaml_string

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
DOCS = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
PREFIX = "semcom check: error: "


def _problems(source, overrides=()) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(source, overrides)
    assert all("\n" not in p for p in info.value.problems)
    return info.value.problems


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``semcom ARGV`` in this process: (status, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str, prog: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# the YAML reader: nesting, aliases, size


@pytest.mark.parametrize("style", ["flow", "block"])
def test_1000_deep_nesting_is_one_line_not_a_recursion_error(tmp_path, style, capsys):
    if style == "flow":
        text = "name: deep\ndescription: " + "[" * 1000 + "]" * 1000 + "\n"
    else:
        text = "name: deep\nx:\n" + "".join(" " * (k + 1) + f"k{k}:\n" for k in range(1000))
    path = _write(tmp_path, text)
    (line,) = _problems(path)
    assert line.startswith(f"scenario: {str(path)!r} is invalid; allowed: valid YAML (line ")
    assert line.endswith(f"nesting deeper than {MAX_DEPTH} levels)")
    code, _, err = _cli(["check", str(path)], capsys)
    assert code == 2 and _one_error_line(err, "semcom check") == PREFIX + line


def test_nesting_up_to_the_limit_is_read():
    depth = MAX_DEPTH
    assert load_yaml("[" * depth + "]" * depth) is not None
    with pytest.raises(yaml.YAMLError, match="nesting deeper"):
        load_yaml("[" * (depth + 1) + "]" * (depth + 1))


@pytest.mark.parametrize(
    "text", ["loop: &x [*x]", "loop: &x {a: *x}", "loop: &x {a: [{b: *x}]}", "&top {a: *top}"]
)
def test_self_referential_aliases_are_refused(tmp_path, text):
    (line,) = _problems(_write(tmp_path, "name: s\n" + text + "\n" if "top" not in text else text))
    assert "refers to a node that contains it (a self-reference)" in line


def test_aliases_that_are_not_self_references_still_work():
    data = load_yaml("a: &x [1, 2]\nb: *x\nc: {d: *x}")
    assert data == {"a": [1, 2], "b": [1, 2], "c": {"d": [1, 2]}}


def test_9x9_alias_bomb_is_refused_fast(tmp_path, capsys):
    text = "name: bomb\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for level in range(1, 9):
        text += f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n"
    path = _write(tmp_path, text)
    start = time.perf_counter()
    (line,) = _problems(path)
    assert time.perf_counter() - start < 2.0  # 9**9 = 387,420,489 values if expanded
    assert f"more than {MAX_NODES} values once aliases are expanded" in line
    code, _, err = _cli(["check", str(path)], capsys)
    assert code == 2 and _one_error_line(err, "semcom check") == PREFIX + line


def test_mapping_sources_get_the_same_limits():
    loop: dict = {"name": "x"}
    loop["description"] = loop
    (line,) = _problems(loop)
    assert line == "scenario: 'a mapping' is invalid; allowed: no collection that contains itself"
    deep: list = []
    for _ in range(1000):
        deep = [deep]
    (line,) = _problems({"name": "x", "description": deep})
    assert line.endswith(f"nesting at most {MAX_DEPTH} levels deep")


def test_large_files_deep_set_paths_and_long_integers(tmp_path):
    big = _write(tmp_path, "name: big\ndescription: " + "x" * (1 << 20) + "\n")
    assert _problems(big) == [
        f"scenario: {str(big)!r} is invalid; allowed: a file of at most 1048576 bytes"
    ]
    (line,) = _problems({"name": "x"}, ["model." + ".".join(["a"] * 40) + "=1"])
    assert line.startswith("--set: ") and line.endswith(f"PATH of at most {MAX_DEPTH} keys")
    # the longest path with the deepest value, next to a failed field (the partial re-check)
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    path = "data.options." + ".".join(["a"] * (MAX_DEPTH - 2))
    assert _problems({"name": "x"}, [f"{path}={deep}", "training.epochs=x"]) == [
        "data.options.a: unknown key; allowed: limit, max_per_image, min_std, seed, size, stride",
        "training.epochs: 'x' is invalid; allowed: an integer in 1..10000",
    ]
    (line,) = _problems(_write(tmp_path, "name: x\nexecution: {seed: " + "9" * 5000 + "}\n"))
    assert "an integer of more than 1000 characters" in line


def test_non_core_tags_are_refused():
    for text in ("!!python/object/apply:os.system ['true']", "!!binary aGk=", "!!set {a}",
                 "!!timestamp 2001-12-14", "!custom x"):  # fmt: skip
        with pytest.raises(yaml.YAMLError, match="is not allowed"):
            load_yaml(f"a: {text}")
    with pytest.raises(yaml.YAMLError, match="not a YAML 1.2 integer"):
        load_yaml("a: !!int 1_000")


# ---------------------------------------------------------------------------------------------
# YAML 1.2 scalars


# plain scalar -> value under YAML 1.2 core (the YAML 1.1 reading in the comment)
CORE = {
    "yes": "yes", "No": "No", "on": "on", "off": "off", "y": "y",  # 1.1: booleans
    "1:30": "1:30", "190:20:30": "190:20:30",  # 1.1: sexagesimal 90, 685230
    "9_6": "9_6", "1_000.5": "1_000.5",  # 1.1: 96, 1000.5
    "0b11": "0b11", "017": 17, "0o17": 15, "0x1F": 31, "-0x1": "-0x1",  # 1.1: 3, 15, '0o17'
    "2024-01-01": "2024-01-01",  # 1.1: a date
    "1e3": 1000.0, "-1E-3": -0.001, ".5": 0.5, "5.": 5.0, "+7": 7, "-0": 0,
    "true": True, "FALSE": False, "Null": None, "~": None, "": None, "=": "=",
}  # fmt: skip


@pytest.mark.parametrize(("text", "value"), list(CORE.items()))
def test_plain_scalars_follow_the_yaml_1_2_core_schema(text, value):
    got = load_yaml(f"a: {text}")["a"]
    assert got == value and type(got) is type(value)


def test_non_finite_spellings_are_numbers_and_refused_by_the_schema():
    assert math.isinf(load_yaml("a: .Inf")["a"]) and load_yaml("a: -.inf")["a"] < 0
    assert math.isnan(load_yaml("a: .NaN")["a"])
    assert load_yaml("a: .infinity")["a"] == ".infinity"


def test_yaml_1_1_coercions_reach_the_schema_as_strings(tmp_path):
    path = _write(
        tmp_path,
        "name: c\ndescription: 9_6\ntraining: {epochs: 1:30, amp: yes}\noutput: {plots: on}\n",
    )
    assert sorted(_problems(path)) == [
        "output.plots: 'on' is invalid; allowed: true or false",
        "training.amp: 'yes' is invalid; allowed: true or false",
        "training.epochs: '1:30' is invalid; allowed: an integer in 1..10000",
    ]
    fixed = path.read_text().replace("1:30", "90").replace("yes", "true").replace("on}", "true}")
    assert load_scenario(_write(tmp_path, fixed, "fixed.yaml")).description == "9_6"


def test_dumped_scenarios_quote_what_either_yaml_version_would_misread(tmp_path):
    s = load_scenario({"name": "q", "description": "1e3", "output": {"dir": "yes"}})
    text = s.dump(tmp_path / "scenario.yaml").read_text()
    assert "description: '1e3'" in text and "dir: 'yes'" in text
    again = load_scenario(tmp_path / "scenario.yaml")
    assert again.description == "1e3" and again.output.dir == "yes"
    assert yaml.safe_load(text)["output"]["dir"] == "yes"  # a YAML 1.1 reader agrees


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_yaml_string_round_trips_any_text(text):
    assert load_yaml(yaml_string(text)) == text
    assert parse_yaml(quoted("output.dir", text).partition("=")[2]) == text


# ---------------------------------------------------------------------------------------------
# numeric ranges


def test_snr_db_1e308_in_a_scenario_is_refused(capsys):
    rule = "a finite number in [-300, 300] (dB)"
    assert _problems({"name": "s", "channel": {"snr_db": 1e308}}) == [
        f"channel.snr_db: 1e+308 is invalid; allowed: {rule}"
    ]
    assert _problems({"name": "s", "sweep": {"snr_db": [0, -1e308]}}) == [
        f"sweep.snr_db[1]: -1e+308 is invalid; allowed: {rule}"
    ]
    code, _, err = _cli(["check", str(QUICKSTART), "--set", "channel.snr_db=1e308"], capsys)
    assert code == 2
    assert _one_error_line(err, "semcom check") == (
        f"{PREFIX}channel.snr_db: 1e+308 is invalid; allowed: {rule}"
    )
    assert load_scenario({"name": "s", "sweep": {"snr_db": [-300, 300]}}).axes()["snr_db"] == [
        -300.0,
        300.0,
    ]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["ber", "--modulation", "qpsk", "--snr-db", "1e308"],
         "semcom ber: error: snr_db: 1e+308 is invalid; allowed: a finite number in [-300, 300] "
         "(dB)"),
        (["ber", "--modulation", "qpsk", "--snr-db=-1e308"],
         "semcom ber: error: snr_db: -1e+308 is invalid; allowed: a finite number in [-300, 300] "
         "(dB)"),
        (["ber", "--modulation", "qpsk", "--snr-db", "0", "--coherence", "1e308"],
         "semcom ber: error: coherence: 1e+308 is invalid; allowed: at most 2147483647"),
        (["ber", "--modulation", "qpsk", "--channel", "rician", "--rician-k", "1e308",
          "--snr-db", "0"],
         "semcom ber: error: rician_k: 1e+308 is invalid; allowed: at most 1000000"),
        (["solve", "--random", "8", "4", "0", "--snr-db", "1e308"],
         "semcom solve: error: snr_db: 1e+308 is invalid; allowed: a finite number in [-300, 300] "
         "(dB)"),
        (["solve", "--random", "8", "4", "0", "--eta", "1e308"],
         "semcom solve: error: eta: 1e+308 is invalid; allowed: a number in [0, 100]"),
        (["solve", "--random", "100000000", "4", "0"],
         "semcom solve: error: N: 100000000 is invalid; allowed: an integer in 0..4096"),
        (["solve", "--random", "8", "100000000", "0"],
         "semcom solve: error: K: 100000000 is invalid; allowed: an integer in 0..4096"),
    ],
)  # fmt: skip
def test_ber_and_solve_refuse_overflowing_arguments(argv, line, capsys):
    code, out, err = _cli(argv, capsys)
    assert code == 2 and out == "" and _one_error_line(err, f"semcom {argv[0]}") == line


def test_solve_reads_problem_files_with_the_hardened_reader(tmp_path, capsys):
    deep = _write(tmp_path, "weights: " + "[" * 1000 + "]" * 1000 + "\n", "deep.yaml")
    code, _, err = _cli(["solve", str(deep)], capsys)
    assert code == 2
    assert _one_error_line(err, "semcom solve").endswith(
        f"is not valid YAML at line 1 (nesting deeper than {MAX_DEPTH} levels)"
    )
    code, _, err = _cli(["solve", "--random", "4", "4", "0", "--option", "refine=yes"], capsys)
    assert code == 2 and "refine: 'yes' is invalid" in _one_error_line(err, "semcom solve")


def test_semantic_link_refuses_overflowing_snr():
    from semcom.link import SemanticLink
    from semcom.models import build_model

    model = build_model("mlp", 4, input_shape=[1, 8, 8])
    args = {"weights": np.full(4, 0.25), "drop_distortion": np.full(4, 0.3), "n_subchannels": 4}
    for snr in (1e308, -1e308, 10**400, 300.5):
        with pytest.raises(ConfigError, match=r"^snr_db: .* allowed: a finite number in \[-300"):
            SemanticLink(model, snr_db=snr, **args)
    with pytest.raises(ConfigError, match="^rician_k"):
        SemanticLink(model, rician_k=1e308, **args)
    assert SemanticLink(model, snr_db=math.inf, **args).noiseless
    assert SemanticLink(model, snr_db=-300.0, **args).snr_db == -300.0


def _bounds(annotation) -> tuple[object, object, bool]:
    """(lower, upper, numeric) of a field annotation (``X | None`` unwrapped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, type(int | None)) and len(args) == 1:
        annotation = args[0]
    base = (
        typing.get_args(annotation)[0]
        if typing.get_origin(annotation) is typing.Annotated
        else annotation
    )
    if base not in (int, float):
        return None, None, False
    low = high = None
    for meta in getattr(annotation, "__metadata__", ()):
        for item in getattr(meta, "metadata", [meta]):
            low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
            low = getattr(item, "gt", None) if getattr(item, "gt", None) is not None else low
            high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
            high = getattr(item, "lt", None) if getattr(item, "lt", None) is not None else high
    return low, high, True


def _numeric_fields() -> list[tuple[str, str, object, object]]:
    out = []
    for section, model in SECTIONS.items():
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if field.metadata:
                annotation = typing.Annotated[annotation, *field.metadata]
            low, high, numeric = _bounds(annotation)
            if numeric:
                out.append((section, name, low, high))
    return out


def test_every_numeric_field_has_a_finite_range_documented_in_docs():
    fields = _numeric_fields()
    assert {f"{section}.{name}" for section, name, _, _ in fields} == {
        "data.eval_images", "data.calibration_images", "model.n_features", "training.epochs",
        "training.batch_size", "training.lr", "training.lr_min", "training.weight_decay",
        "training.classifier_weight", "training.val_fraction", "training.patience",
        "training.min_delta", "channel.rician_k", "channel.n_subchannels", "channel.snr_db",
        "channel.bits_per_scalar", "allocation.eta", "stop.half_width", "stop.confidence",
        "stop.min_draws", "stop.max_draws", "execution.workers", "execution.threads",
        "execution.seed",
    }  # fmt: skip
    for section, name, low, high in fields:
        assert low is not None and high is not None, f"{section}.{name} has no range"
        assert math.isfinite(low) and math.isfinite(high), f"{section}.{name}"
        rows = [r for r in DOCS.splitlines() if r.startswith(f"| `{name}` |")]
        shown = f"{high:g}" if isinstance(high, float) and high != int(high) else f"{int(high)}"
        assert any(shown in r for r in rows), f"docs/scenarios.md: {section}.{name} <= {shown}"


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("training.lr", 10.0), ("training.epochs", 10_000), ("training.batch_size", 65_536),
        ("execution.threads", 256), ("execution.workers", 1024), ("stop.max_draws", 10_000),
        ("training.patience", 10_000), ("allocation.eta", 100.0), ("channel.snr_db", 300.0),
        ("channel.n_subchannels", 4096), ("data.eval_images", 100_000),
        ("training.classifier_weight", 1000.0), ("channel.rician_k", 1e6),
    ],
)  # fmt: skip
def test_upper_bounds_are_inclusive_and_enforced(path, limit):
    section, field = path.split(".")
    ok = Scenario.model_validate({"name": "b", section: {field: limit}})
    assert getattr(getattr(ok, section), field) == limit
    over = limit + (1 if isinstance(limit, int) else limit * 1e-9)
    (line,) = [p for p in _problems({"name": "b", section: {field: over}}) if p.startswith(path)]
    assert line.startswith(f"{path}: {over!r} is invalid; allowed: ")


def test_sweeps_are_limited_in_points():
    sweep = {"snr_db": list(range(-300, 300)), "eta": [i / 10 for i in range(60)]}
    (line,) = _problems({"name": "p", "sweep": sweep})
    assert line == (
        "sweep: '144000 points: snr_db 600 x eta 60 x schemes 4' is invalid; "
        "allowed: at most 100000 points (conditions x schemes)"
    )


# ---------------------------------------------------------------------------------------------
# model size


PARAMETER_CASES = [
    *[("cnn", 16, {"norm": norm, "widths": [8, 5], "kernel_size": k, "num_classes": c})
      for norm in ("gdn", "batch", "none") for k in (1, 3) for c in (None, 3)],
    ("cnn", 32, {"scalar_features": True, "input_shape": [1, 16, 8], "widths": [4, 6]}),
    *[("mlp", n, {"L": L, "hidden": h, "input_shape": s, "num_classes": c})
      for n, L, h, s, c in ((1, 1, [7, 5], [1, 8, 8], None), (9, 4, [16, 32], [3, 4, 6], 10))],
    *[("vit", n, {"L": L, "dim": d, "depth": depth, "heads": heads, "mlp_ratio": r,
                  "input_shape": s, "num_classes": c})
      for n, L, d, depth, heads, r, s, c in ((16, 2, 8, 1, 2, 1, [3, 32, 32], None),
                                             (8, 16, 12, 3, 4, 3, [1, 8, 16], 4))],
]  # fmt: skip


@pytest.mark.parametrize(("name", "n", "options"), PARAMETER_CASES)
def test_parameter_count_is_exactly_what_torch_allocates(name, n, options):
    from semcom.models import MODELS, build_model, resolve_model_options

    resolved = resolve_model_options(name, n, **options)
    model = build_model(name, n, **options)
    assert MODELS[name].parameter_count(n, resolved) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("options", "line"),
    [
        ({"hidden": [1e9, 1e9]},
         "model.options.hidden: [1000000000.0, 1000000000.0] is invalid; allowed: a list of 2 "
         "integers in 1..1048576"),
        ({"hidden": [10**9, 10**9]},
         "model.options.hidden: [1000000000, 1000000000] is invalid; allowed: a list of 2 "
         "integers in 1..1048576"),
        ({"num_classes": 10**9},
         "model.options.num_classes: 1000000000 is invalid; allowed: None or an integer in "
         "2..100000"),
        ({"num_classes": 1e9},
         "model.options.num_classes: 1000000000.0 is invalid; allowed: None or an integer in "
         "2..100000"),
        ({"hidden": [100_000, 100_000]},
         "model.options: {'scalars_per_feature': 4, 'hidden': [100000, 100000], 'num_classes': "
         "None} is invalid; allowed: options of a model of at most 268,435,456 parameters (1.0 GiB "
         "of float32); these give the mlp model 20,026,000,132 parameters (74.6 GiB)"),
    ],
)  # fmt: skip
def test_huge_models_are_refused_before_anything_is_allocated(options, line):
    model = {"name": "mlp", "options": options}
    source = {"name": "m", "data": {"dataset": "digits"}, "model": model}
    start = time.perf_counter()
    assert _problems(source) == [line]
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------------------------
# paths and text


def test_nul_byte_in_output_dir_is_refused_by_check_and_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = (
        "output.dir: 'out\\x00put' is invalid; allowed: text without NUL bytes or lone "
        "surrogates (characters a UTF-8 file can hold)"
    )
    for command in ("check", "run"):
        argv = [command, str(QUICKSTART), "--set", 'output.dir="out\\x00put"']
        code, _, err = _cli(argv, capsys)
        assert code == 2 and _one_error_line(err, f"semcom {command}") == (
            f"semcom {command}: error: {line}"
        )
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("", "a non-empty path"), ("x" * 256, "255 per name"), ("a/" * 2100, "at most 4096 bytes")],
)
def test_path_fields_follow_the_path_rule(value, allowed):
    for path in ("output.dir", "data.root", "training.checkpoint_dir"):
        section, field = path.split(".")
        (line,) = [
            p for p in _problems({"name": "p", section: {field: value}}) if p.startswith(path)
        ]
        assert allowed in line


def test_out_with_an_emoji_names_that_folder(tmp_path, capsys, monkeypatch):
    import semcom.runner

    written = []

    def fake_run(scenario, **_):  # the store's first write, then no training in this test
        folder = scenario.output_dir()
        scenario.dump(folder / "scenario.yaml")
        written.append(folder)
        return SimpleNamespace(seconds=0.0, points_computed=0, points_reused=0, directory=folder)

    monkeypatch.setattr(semcom.runner, "run_scenario", fake_run)
    monkeypatch.setattr(semcom.runner, "summary", lambda directory: f"summary of {directory}")
    out = tmp_path / "emoji🚀"
    code, stdout, err = _cli(["run", str(QUICKSTART), "--out", str(out)], capsys)
    assert code == 0 and err == "" and stdout.endswith(f"-> {out}\nsummary of {out}\n")
    assert written == [out] and (out / "scenario.yaml").is_file()
    assert load_scenario(out / "scenario.yaml").output.dir == str(out)


def test_out_with_undecodable_bytes_is_one_line(tmp_path, capsys):
    out = str(tmp_path) + "/bad\udcff"  # what Python makes of the byte 0xff in argv
    code, _, err = _cli(["run", str(QUICKSTART), "--out", out], capsys)
    assert code == 2
    assert _one_error_line(err, "semcom run").startswith("semcom run: error: output.dir: ")


# ---------------------------------------------------------------------------------------------
# check's trial


def test_check_trial_is_bounded_at_4096_features(capsys):
    argv = ["check", str(QUICKSTART), "--set", "model.n_features=4096", "--trial-seconds", "2"]
    start = time.perf_counter()
    code, out, err = _cli(argv, capsys)
    elapsed = time.perf_counter() - start
    assert code == 0 and err == ""
    assert "tiny trial stopped at its 2 s budget while " in out and "N = 4096 features" in out
    assert elapsed < 30  # validation (a few seconds) + the 2 s budget; it once took 400 s


def test_check_trial_seconds_is_validated(capsys):
    for bad in ("-1", "nan", "1e308", "x"):
        code, _, err = _cli(["check", str(QUICKSTART), "--trial-seconds", bad], capsys)
        assert code == 2 and "--trial-seconds" in _one_error_line(err, "semcom check")


# ---------------------------------------------------------------------------------------------
# real processes (a handful; the fuzz corpus runs in-process)


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["check", "{deep}"], "nesting deeper than 32 levels"),
        (["ber", "--modulation", "qpsk", "--snr-db", "1e308"], "snr_db: 1e+308 is invalid"),
    ],
)
def test_real_processes_exit_2_with_one_line(tmp_path, argv, text):
    deep = _write(tmp_path, "name: d\ndescription: " + "[" * 1000 + "]" * 1000 + "\n")
    argv = [a.replace("{deep}", str(deep)) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "semcom.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and text in _one_error_line(done.stderr, f"semcom {argv[0]}")


def test_trial_deadline_fires_and_restores_an_enclosing_one():
    import signal

    from semcom.commands.check import TrialTimeout, deadline

    start = time.monotonic()
    with pytest.raises(TrialTimeout):
        with deadline(0.6):
            with deadline(0.1):
                pass  # finished in time: the outer budget resumes
            while True:
                time.sleep(0.01)
    assert 0.5 < time.monotonic() - start < 5
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
