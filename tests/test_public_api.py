"""The packages' public faces: every exported name resolves, and importing stays cheap."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys

import pytest

PACKAGES = ("channels", "optim", "semcom")
HEAVY = ("torch", "scipy", "numba", "sionna")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_to_its_module(package: str) -> None:
    module = importlib.import_module(package)
    exports = module._EXPORTS
    assert sorted(set(module.__all__) - {"__version__"}) == sorted(exports)
    for name, source in exports.items():
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(source), name), name
        assert name in dir(module)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_exported_name_is_also_a_submodule(package: str) -> None:
    """Importing a submodule sets it as a package attribute, which would replace an export of
    the same name (``channels.awgn`` the module vs ``awgn`` the function)."""
    import pkgutil

    module = importlib.import_module(package)
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    assert not submodules & set(module._EXPORTS)


@pytest.mark.parametrize("package", PACKAGES)
def test_unknown_name_is_an_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def heavy_modules_after(code: str) -> list[str]:
    """The :data:`HEAVY` modules loaded once ``code`` has run in a fresh interpreter."""
    code += (
        f"\nimport json, sys\nprint(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_loads_no_heavy_dependency() -> None:
    """``import channels, optim, semcom`` imports none of torch, SciPy, Numba or Sionna."""
    assert heavy_modules_after("import channels, optim, semcom") == []


def test_flat_api_use() -> None:
    import channels

    qam = channels.get_modulation("16qam")
    assert qam.bits_per_symbol == 4


def test_version_is_the_installed_metadata() -> None:
    import semcom

    assert semcom.__version__ == importlib.metadata.version("semcom")
    out = subprocess.run(
        [sys.executable, "-m", "semcom.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert out.stdout.strip() == f"semcom {semcom.__version__}"


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["run", "--help"]])
def test_command_line_without_work_loads_no_heavy_dependency(argv: list[str]) -> None:
    """The parser gives options only to the subcommand named, so asking for the version, the
    list of commands or a light command's options does not wait for torch, SciPy or Numba."""
    code = f"from semcom.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert heavy_modules_after(code) == []


def test_the_named_subcommand_gets_its_options_and_the_others_do_not() -> None:
    from semcom.cli import COMMANDS, build_parser

    full = build_parser()
    assert full.parse_args(["solve", "--random", "3", "3", "1"]).random == [3, 3, 1]
    assert full.parse_args(["ber", "--modulation", "qpsk", "--snr-db", "0"]).modulation == "qpsk"
    only_solve = build_parser(["solve", "--random", "3", "3", "1"])
    assert only_solve.parse_args(["solve", "--random", "3", "3", "1"]).random == [3, 3, 1]
    with pytest.raises(SystemExit):  # ber was listed but given no options
        only_solve.parse_args(["ber", "--modulation", "qpsk", "--snr-db", "0"])
    listed = only_solve.format_help()
    for name in COMMANDS:  # every command is still listed, with its one-line help
        assert name.replace("_", "-") in listed
