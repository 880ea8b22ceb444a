"""Shared test configuration: markers for GPU and Sionna tests, Ctrl-C delivered, and no test
leaving torch's thread count changed."""

from __future__ import annotations

import importlib.util
import signal
import threading
from collections.abc import Iterator

import pytest
from hypothesis import settings

# Property tests are deterministic (fixed seeds, like every statistical test here) and have no
# per-example deadline: timing is measured in benchmarks/, never in tests.
settings.register_profile("semcom", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("semcom")


def pytest_configure(config: pytest.Config) -> None:
    """Let SIGINT through to the tests that send it (Ctrl-C stops a run with status 130).

    A suite started as a background job of a non-interactive shell (``cmd &`` in a script)
    inherits SIGINT ignored, as POSIX asks, and ``semcom`` rightly leaves an ignored signal
    ignored; those tests would then see a run that never stops. Python's own handler is
    restored in this process, and a child process then starts with SIGINT at its default.
    """
    del config
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture(autouse=True)
def _torch_threads_left_as_found() -> Iterator[None]:
    """Fail a test that changes torch's thread count and leaves it so (the count is restored).

    A float32 sum's rounding depends on how many threads share it, so a count left behind makes
    a later test's bit-for-bit comparison with another process depend on which tests ran before
    it on that worker. Tests that want one thread use the ``one_thread`` fixtures of
    tests/semcom/conftest.py.
    """
    import torch

    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"the test left torch's thread count at {after} (found {before})")
