"""optim.kernels: the Numba loops agree with their NumPy / channels.theory references."""

from __future__ import annotations

import numpy as np
import pytest

from optim.distortion import bit_error_rate
from optim.power import _closed_form_fast, _prepare
from optim.problem import random_problem
from tests.optim.reference import bit_error_rate_reference, closed_form


@pytest.mark.parametrize("shape", [(1, 1), (235, 9), (50, 33), (7, 200)])
def test_water_fill_rows_equals_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    alpha = rng.exponential(size=shape) * (rng.random(shape) > 0.2)
    c = rng.exponential(size=shape) * (rng.random(shape) > 0.1)
    budget = rng.uniform(0, 50, size=shape[:-1])
    budget[0] = 0.0
    t, cc, useful = _prepare(alpha, c)
    assert np.allclose(_closed_form_fast(t, cc, budget), closed_form(t, cc, useful, budget),
                       rtol=1e-12, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_ber_rows_equals_channels_theory(model):
    mods = ["bpsk", "qpsk", "16qam", "64qam", "256qam"]
    p = random_problem(2, 2, seed=0, ber_model=model, modulations=mods)
    rng = np.random.default_rng(1)
    m = rng.integers(-1, 5, size=(40, 17))
    g = rng.exponential(size=m.shape) * 10.0 ** rng.uniform(-3, 4, size=m.shape)
    g[0, :4] = [0.0, np.inf, 1e-300, 1e300]
    got = bit_error_rate(p, m, g)
    ref = bit_error_rate_reference(p, m, g)
    assert np.all(got[m < 0] == 0)
    assert np.allclose(got, ref, rtol=1e-11, atol=1e-300)
