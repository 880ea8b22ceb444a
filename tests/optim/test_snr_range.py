"""The solvers' numeric range (:mod:`optim.snr_range`): every method works at its corners,
and input outside it is refused with one line before any work.

References we did not write: the scale invariance of the physics (only the SNR
``g p / sigma^2`` enters the BER, so a problem and the same problem with the power budget 1,
the noise 1 and gains ``g P_tot / sigma^2`` have the same optimum, which ``exact`` proves
within its 1e-9 tolerance), and the per-frame solver against the batched one.

Before this range was checked, gains of a 200-decade spread within a frame, or of SNRs beyond
about 1e150, made the solvers raise ZeroDivisionError or SciPy's "matrix contains invalid
numeric entries", or return a NaN objective; the guards in the exact BER model and the
exact-power Newton make the corners below finite.
"""

from __future__ import annotations

import numpy as np
import pytest

import optim
from channels.errors import ConfigError
from optim.problem import random_problem
from optim.snr_range import POWER_MAX, POWER_MIN, SNR_MAX, SNR_MIN, gain_bounds

METHODS = {"hierarchical": {}, "ui-opt": {}, "passive": {}, "hungarian": {}, "equal-power": {},
           "lowest-order": {}, "random-matching": {"seed": 1}, "ui-ep": {"seed": 1},
           "exact": {}}  # fmt: skip
"""Every method of ``optim.solve`` that ``optim.solve_batch`` runs in its own kernels (a seed
makes the random ones draw the same matching per frame and batched)."""
POWERS = [POWER_MIN, 1.0, POWER_MAX]
NOISES = [1e-50, 1.0, 1e50]


def _corner_snrs(k: int, rng: np.random.Generator) -> np.ndarray:
    """Frames [6, k] of SNRs at the whole budget: at the low end, at the high end, spread
    over the whole range, the same with dead subchannels, and both ends in one frame."""
    lo, hi = np.log10(SNR_MIN), np.log10(SNR_MAX)
    frames = [
        SNR_MIN * rng.uniform(1, 2, k),
        SNR_MAX * rng.uniform(0.5, 1, k),
        10.0 ** rng.uniform(lo, hi, k),
        10.0 ** rng.uniform(lo, hi, k) * (rng.random(k) < 0.5),
        np.where(np.arange(k) % 2 == 0, SNR_MIN, SNR_MAX),
        np.where(np.arange(k) % 2 == 0, 0.0, SNR_MAX),
    ]
    return np.array(frames)


@pytest.mark.parametrize("power", POWERS)
@pytest.mark.parametrize("noise", NOISES)
def test_every_method_is_finite_and_batch_equals_per_frame_at_the_corners(power, noise):
    rng = np.random.default_rng(7)
    base = random_problem(4, 5, seed=3)
    gains = _corner_snrs(base.n_subchannels, rng) * noise / power
    template = base.replace(power_budget=power, noise_power=noise, gains=gains[0])
    for method, options in METHODS.items():
        batch = optim.solve_batch(template, gains, method, **options)
        assert np.isfinite(batch.objective).all(), method
        for b, g in enumerate(gains):
            one = optim.solve(template.replace(gains=g), method, **options)
            assert batch.objective[b] == pytest.approx(one.objective, rel=1e-9), (method, b)
            assert one.feasible, (method, b)
            chosen = np.flatnonzero(batch.selected[b]).tolist()
            assert chosen == sorted(np.asarray(one.allocation.selected).tolist()), (method, b)


@pytest.mark.parametrize("power", [POWER_MIN, 1.0, POWER_MAX])
@pytest.mark.parametrize("noise", NOISES)
def test_the_optimum_depends_on_the_snr_only(power, noise):
    rng = np.random.default_rng(11)
    base = random_problem(4, 4, seed=5)
    snrs = _corner_snrs(base.n_subchannels, rng)
    unit = base.replace(power_budget=1.0, noise_power=1.0)
    scaled = base.replace(power_budget=power, noise_power=noise, gains=snrs[0] * noise / power)
    reference = optim.solve_batch(unit, snrs, "exact").objective
    got = optim.solve_batch(scaled, snrs * noise / power, "exact").objective
    np.testing.assert_allclose(got, reference, rtol=3e-9)


def test_a_gain_outside_the_range_is_refused_by_name():
    template = random_problem(3, 4, seed=0)
    low, high = gain_bounds(template.power_budget, template.noise_power)
    for bad in (low / 2, high * 2):
        gains = template.gains.copy()
        gains[2] = bad
        with pytest.raises(ConfigError, match=r"^gains\[2\]: .* is invalid; allowed: 0 or a gain "
                           r"whose SNR at the whole budget"):  # fmt: skip
            template.replace(gains=gains)
        frames = np.tile(template.gains, (5, 1))
        frames[3, 2] = bad
        with pytest.raises(ConfigError, match=r"^gains\[3, 2\]: "):
            optim.solve_batch(template, frames, "hierarchical")
    edge = template.gains.copy()
    edge[:2] = low, high  # the ends themselves are allowed, and so is 0
    edge[2] = 0.0
    assert optim.solve(template.replace(gains=edge), "hierarchical").objective > 0


@pytest.mark.parametrize("power", [POWER_MIN / 10, POWER_MAX * 10, 1e300])
def test_a_power_budget_outside_the_range_is_refused(power):
    with pytest.raises(ConfigError, match=r"^power_budget: .* allowed: 0 or a number in "):
        random_problem(3, 4, seed=0).replace(power_budget=power)


def test_no_power_allows_any_gain():
    problem = random_problem(3, 4, seed=0).replace(power_budget=0.0, gains=[0, 1e-300, 1, 1e300])
    assert optim.solve(problem, "hierarchical").allocation.selected.size == 0


def test_the_links_whole_snr_range_is_inside():
    """A link at -300 to +300 dB average SNR (the scenarios' limits) with P_tot = 10^(snr/10) K,
    sigma^2 = 1, K up to 4096, and fading gains from 1e-40 to 1e3 is always allowed."""
    for snr_db in (-300.0, 300.0):
        for k in (1, 4096):
            power = 10 ** (snr_db / 10) * k
            low, high = gain_bounds(power, 1.0)
            assert POWER_MIN <= power <= POWER_MAX and low <= 1e-40 and high >= 1e3
