"""channels.montecarlo.ratio_block_interval: the BER interval over blocks of unequal sizes
(per-feature bits ``L Q_i``): it reduces to ``block_interval`` for equal sizes and covers the
true rate at its nominal level for independent and for clustered errors (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from channels.montecarlo import block_interval, ratio_block_interval


def _sums(errors: np.ndarray, sizes: np.ndarray) -> tuple[int, ...]:
    return (int(errors.sum()), int((errors**2).sum()), int((errors * sizes).sum()),
            int((sizes**2).sum()), errors.size, int(sizes.sum()))  # fmt: skip


def test_equal_sizes_reduce_to_block_interval() -> None:
    rng = np.random.default_rng(0)
    for size in (8, 64, 512):
        errors = rng.binomial(size, 0.03, 40) * rng.integers(1, 4, 40)
        sizes = np.full(40, size)
        got = ratio_block_interval(*_sums(errors, sizes), confidence=0.9)
        ref = block_interval(int(errors.sum()), int((errors**2).sum()), 40, size, 0.9)
        assert got == pytest.approx(ref, rel=1e-9)
    assert ratio_block_interval(0, 0, 0, 64, 1, 8) == block_interval(0, 0, 1, 8)


@pytest.mark.parametrize("clustered", [False, True])
def test_coverage_with_unequal_sizes(clustered: bool) -> None:
    rng = np.random.default_rng(1 + clustered)
    p, hits, reps = 0.02, 0, 2000
    for _ in range(reps):
        sizes = rng.choice([16, 64, 96, 256], size=200)
        if clustered:  # a block is bad with probability 0.2, then errs at 5 p: mean rate p
            rate = np.where(rng.random(200) < 0.2, 5 * p, 0.0)
        else:
            rate = np.full(200, p)
        errors = rng.binomial(sizes, rate)
        low, high = ratio_block_interval(*_sums(errors, sizes), confidence=0.95)
        hits += low <= p <= high
    assert 0.93 <= hits / reps <= 0.975, hits / reps
