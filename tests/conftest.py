"""Shared test configuration: markers for GPU and Sionna tests."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import settings

# Property tests are deterministic (fixed seeds, like every statistical test here) and have no
# per-example deadline: timing is measured in benchmarks/, never in tests.
settings.register_profile("semcom", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("semcom")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without a CUDA GPU and ``sionna`` tests without Sionna."""
    has_sionna = importlib.util.find_spec("sionna") is not None
    has_gpu = False
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        pass
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "sionna" in item.keywords and not has_sionna:
            item.add_marker(pytest.mark.skip(reason="needs sionna-no-rt"))
