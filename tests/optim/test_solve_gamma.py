"""The exact model's inverse slope (:func:`optim.ber_model.solve_gamma`): the SNR ``gamma`` at
which ``ln(-f'(gamma)) = ln mu``, the inner step of every exact optimal power.

The reference is SciPy: ``-f'`` of the Gray BER ``f = sum_t w_t Q(b_t sqrt gamma)`` written with
the normal density (``-f' = sum_t w_t b_t phi(b_t sqrt gamma) / (2 sqrt gamma)``, summed as
signed exponentials by ``scipy.special.logsumexp``), its root in ``ln gamma`` found by
``scipy.optimize.brentq``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import logsumexp

from channels.theory import ber_terms
from optim.ber_model import ber_model, log_neg_slope, solve_gamma
from optim.problem import random_problem

MODULATIONS = ("bpsk", "qpsk", "16qam", "64qam", "256qam")


def _reference_log_neg_slope(name: str, gamma: float) -> float:
    w, b = ber_terms(name)
    x = b * math.sqrt(gamma)
    total, sign = logsumexp(np.log(np.abs(w * b)) - 0.5 * x * x, b=np.sign(w), return_sign=True)
    assert sign > 0
    return float(total) - 0.5 * math.log(2 * math.pi) - math.log(2 * math.sqrt(gamma))


def _reference_root(name: str, lnmu: float) -> float:
    u = brentq(lambda v: _reference_log_neg_slope(name, math.exp(v)) - lnmu, -40.0, 12.0,
               xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)  # fmt: skip
    return math.exp(u)


@pytest.fixture(scope="module")
def model():
    return ber_model(random_problem(3, 3, seed=0, modulations=MODULATIONS))


@pytest.mark.parametrize("m", range(len(MODULATIONS)))
def test_the_root_is_scipys_from_any_guess(model, m):
    name = MODULATIONS[m]
    # SNRs from 1e-6 to 1e4 (the multipliers their slopes give), and guesses near and far
    for gamma in np.exp(np.linspace(math.log(1e-6), math.log(1e4), 41)):
        lnmu = _reference_log_neg_slope(name, gamma)
        ref = _reference_root(name, lnmu)
        for guess in (ref, ref * (1 + 1e-9), ref * 1.3, ref / 7, ref * 1e6, ref * 1e-6, 0.0,
                      math.nan, math.inf):  # fmt: skip
            got = solve_gamma(model, m, lnmu, guess)
            assert abs(got / ref - 1) < 1e-12, (name, gamma, guess)


@pytest.mark.parametrize("m", range(len(MODULATIONS)))
def test_the_residual_is_at_the_rounding_of_the_slope(model, m):
    """The root meets ``D(gamma) = ln mu`` to within a few units of ``D``'s own rounding:
    Newton stops once its step is below ``1e-15 gamma``, and that step is ``r / D'``."""
    rng = np.random.default_rng(m)
    for _ in range(400):
        gamma = math.exp(rng.uniform(math.log(1e-6), math.log(1e4)))
        lnmu = log_neg_slope(model, m, gamma)[0] + rng.normal(0, 1e-3)
        got = solve_gamma(model, m, lnmu, gamma * math.exp(rng.normal(0, 2)))
        d, dd = log_neg_slope(model, m, got)
        assert abs(d - lnmu) <= max(2e-15 * abs(dd) * got, 8e-16 * max(1.0, abs(lnmu)))
