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


def test_import_loads_no_heavy_dependency() -> None:
    """``import channels, optim, semcom`` imports none of torch, SciPy, Numba or Sionna."""
    code = (
        "import json, sys; import channels, optim, semcom; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


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
