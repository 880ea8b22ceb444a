"""Fixtures shared by the semcom tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def _single_thread() -> Iterator[None]:
    """Run on one torch thread, then restore the count: tiny models run fastest that way and
    are unaffected by other load on the small shared CI machine (results do not change)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# per test, and for a whole module (``pytestmark = pytest.mark.usefixtures(...)``)
one_thread = pytest.fixture(name="one_thread")(_single_thread)
one_thread_module = pytest.fixture(scope="module", name="one_thread_module")(_single_thread)
