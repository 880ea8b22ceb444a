"""optim.term_sums: the BER model's sums that stop early return the full sums, bit for bit.

The references are the unabridged loops (every term added, in the same order), compiled by
Numba like the kernels so that both call the same ``erfc``/``exp``; the claim checked is
IEEE 754's round-to-nearest: ``fl(s + x) == s`` when ``|x| < s 2^-55``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from optim.batch.plan import model_arrays
from optim.ber_model import ber_model, ber_value, log_neg_slope
from optim.kernels import ber
from optim.problem import random_problem
from optim.term_sums import q_terms_negligible

MODULATIONS = ["bpsk", "qpsk", "16qam", "64qam", "256qam"]


@numba.njit(error_model="numpy")  # as the kernels (optim.twin)
def _full_q_sum(qw, qs, m, g):
    acc = 0.0
    root = math.sqrt(g) * (1.0 / math.sqrt(2.0))
    for t in range(qw.shape[1]):
        if qw[m, t] != 0.0:
            acc += qw[m, t] * 0.5 * math.erfc(qs[m, t] * root)
    return min(max(acc, 0.0), 0.5)


@numba.njit(error_model="numpy")  # as the kernels (optim.twin)
def _full_ber_value(qw, qb, nt, m, gam):
    v = 0.0
    r = math.sqrt(gam) / math.sqrt(2.0)
    for t in range(nt[m]):
        v += qw[m, t] * 0.5 * math.erfc(qb[m, t] * r)
    return min(max(v, 0.0), 0.5)


@numba.njit(error_model="numpy")  # as the kernels (optim.twin)
def _full_log_neg_slope(qw, qb, nt, m, gam):
    if gam <= 0.0:
        return math.inf, -math.inf
    b0 = qb[m, 0]
    s1 = 0.0
    s2 = 0.0
    for t in range(nt[m]):
        bt = qb[m, t]
        e = qw[m, t] * bt * math.exp(-0.5 * (bt * bt - b0 * b0) * gam)
        s1 += e
        s2 += e * (1.0 + bt * bt * gam)
    d = -0.5 * b0 * b0 * gam - 0.5 * (math.log(8.0 * math.pi) + math.log(gam)) + math.log(s1)
    return d, -s2 / (2.0 * gam * s1)


def _snr_grid() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([
        np.geomspace(1e-6, 1e6, 4001),
        10.0 ** rng.uniform(-3, 4, size=4000),
        [0.0, 1e-300, 5e-324, 1e300, np.inf],
    ])  # fmt: skip


SNR_GRID = _snr_grid()


def _bits(x: list[float]) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.int64)


@pytest.fixture(scope="module")
def problem():
    return random_problem(2, 2, seed=0, ber_model="exact", modulations=MODULATIONS)


def test_ber_kernel_equals_the_full_sum(problem):
    arr = model_arrays(problem)
    qw, qs = arr["qw"], arr["qs"]
    ba, bb = arr["ba"], arr["bb"]
    for m in range(len(MODULATIONS)):
        got = [ber(m, g, qw, qs, ba, bb, True) for g in SNR_GRID]
        ref = [_full_q_sum(qw, qs, m, g) for g in SNR_GRID]
        np.testing.assert_array_equal(_bits(got), _bits(ref), err_msg=MODULATIONS[m])


def test_ber_model_sums_equal_the_full_sums(problem):
    mod = ber_model(problem)
    for m in range(len(MODULATIONS)):
        got = [ber_value(mod, m, g) for g in SNR_GRID]
        ref = [_full_ber_value(mod.qw, mod.qb, mod.nt, m, g) for g in SNR_GRID]
        np.testing.assert_array_equal(_bits(got), _bits(ref), err_msg=MODULATIONS[m])
        got_d = [log_neg_slope(mod, m, g) for g in SNR_GRID]
        ref_d = [_full_log_neg_slope(mod.qw, mod.qb, mod.nt, m, g) for g in SNR_GRID]
        for k in (0, 1):
            np.testing.assert_array_equal(
                _bits([v[k] for v in got_d]), _bits([v[k] for v in ref_d]),
                err_msg=f"{MODULATIONS[m]} log_neg_slope[{k}]",
            )  # fmt: skip


def test_the_early_exit_is_taken_at_high_snr(problem):
    """The exit is exercised: 256-QAM at 40 dB needs its first terms only."""
    arr = model_arrays(problem)
    qw, qs = arr["qw"], arr["qs"]
    m, g = MODULATIONS.index("256qam"), 1e4
    root = math.sqrt(g) / math.sqrt(2.0)
    acc, used = 0.0, qw.shape[1]
    for t in range(qw.shape[1]):
        q = math.erfc(qs[m, t] * root)
        acc += qw[m, t] * 0.5 * q
        if q_terms_negligible(qw, m, t, qw.shape[1], q, acc):
            used = t + 1
            break
    assert used <= 2 < int(np.count_nonzero(qw[m]))


def test_negligible_terms_leave_a_sum_unchanged():
    """The rounding claim itself, on random sums and terms at the checks' limit."""
    rng = np.random.default_rng(3)
    s = 10.0 ** rng.uniform(-300, 300, size=200_000) * rng.uniform(1.0, 2.0, size=200_000)
    x = s * 2.0**-55 * rng.uniform(-1.0, 1.0, size=s.size)
    assert np.array_equal(s + x, s)
    assert not np.array_equal(s + s * 2.0**-52, s)  # a term of an ulp does change it


def test_no_exit_for_an_empty_or_nan_partial_sum():
    qw = np.array([[1.0, 1e-300]])
    assert not q_terms_negligible(qw, 0, 0, 2, 0.0, 0.0)
    assert not q_terms_negligible(qw, 0, 0, 2, 1.0, math.nan)
    assert q_terms_negligible(qw, 0, 1, 2, 1.0, 0.0)  # no later term
