"""Fixtures of the channel tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def sionna_seed() -> Iterator[Callable[[int], None]]:
    """``sionna_seed(s)`` seeds Sionna's own generators (``sionna.phy.config.seed``: Sionna
    draws from them, not from ``torch.manual_seed``); the previous seed is restored after."""
    from sionna.phy import config

    previous = config.seed

    def seed(value: int) -> None:
        config.seed = value

    yield seed
    config.seed = previous
