"""The per-trial fading streams compiled for the CPU and GPU against NumPy itself.

References: ``numpy.random.default_rng((*prefix, t)).standard_normal`` (the stream each frame
of the link draws), and :func:`channels.fading.fading_coefficients` with that generator (the
fading the link drew one generator at a time). Nothing here is compared with our own
reimplementation: every expected value comes from NumPy.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from channels.errors import ConfigError
from channels.fading import fading_coefficients, trial_fading
from channels.kernels.trial_fading import trial_normals_cpu
from channels.kernels.ziggurat_tables import FI, KI, WI, R
from channels.seed_streams import entropy_words
from tests.channels.cuda_helpers.cases import FADING_CASES
from tests.channels.cuda_helpers.simulator import ROOT, run_simulated

HELPER = ROOT / "tests" / "channels" / "cuda_helpers" / "run_trial_fading_cudasim.py"
PREFIXES = [(), (0,), (7, 3), (0, 0), (2**40 + 3, 4242), (2**64 - 1, 2**32 - 1),
            (2**64 + 5, 2**33, 1), (1, 2, 3, 4, 5)]  # fmt: skip


@numba.njit(cache=False)
def _draw(words, trials, ki, wi, fi, out):  # noqa: ANN001, ANN202
    scratch = np.empty(8, dtype=np.uint64)
    for t in range(trials.shape[0]):
        trial_normals_cpu(words, trials[t], ki, wi, fi, scratch, out[t])


def _normals(prefix: tuple[int, ...], trials: np.ndarray, count: int) -> np.ndarray:
    out = np.empty((trials.size, count))
    _draw(entropy_words(prefix), trials.astype(np.uint64), KI, WI, FI, out)
    return out


@pytest.mark.parametrize("prefix", PREFIXES)
def test_compiled_stream_draws_numpys_normals_bit_for_bit(prefix: tuple[int, ...]) -> None:
    trials = np.array([0, 1, 2, 1000, 2**31, 2**32 - 1] + list(range(3, 400)))
    got = _normals(prefix, trials, 700)
    expected = np.stack([np.random.default_rng((*prefix, int(t))).standard_normal(700)
                         for t in trials])  # fmt: skip
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_compiled_stream_seeds_like_numpy_on_random_entropy() -> None:
    # 200 random prefixes of 0 to 4 integers below 2^63 (1 to 9 entropy words with the trial)
    rng = np.random.default_rng(0)
    for _ in range(200):
        prefix = tuple(int(v) for v in rng.integers(0, 2**63, size=rng.integers(0, 5)))
        trials = rng.integers(0, 2**32, size=3)
        got = _normals(prefix, trials, 4)
        expected = np.stack([np.random.default_rng((*prefix, int(t))).standard_normal(4)
                             for t in trials])  # fmt: skip
        assert np.array_equal(got.view(np.uint64), expected.view(np.uint64)), prefix


def test_compiled_stream_covers_the_tail_and_the_wedges() -> None:
    # 2000 trials x 3000 normals: ~1600 tail draws (|z| > R) and ~40k wedge tests; a bug in
    # either slow path (or in the restart after a rejection) would shift the stream after it
    trials = np.arange(2000)
    got = _normals((12345678901234, 77), trials, 3000)
    expected = np.stack([np.random.default_rng((12345678901234, 77, int(t))).standard_normal(3000)
                         for t in trials])  # fmt: skip
    assert (np.abs(expected) > R).sum() > 1000
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_ziggurat_tables_are_the_ziggurat() -> None:
    # the construction (Marsaglia & Tsang 2000) with f(x) = exp(-x^2/2), x_i = WI[i] 2^52
    x = WI * 2.0**52
    assert x[-1] == pytest.approx(R, rel=1e-15)
    assert FI[0] == 1.0 and KI[1] == 0
    np.testing.assert_allclose(FI[1:], np.exp(-(x[1:] ** 2) / 2), rtol=1e-12)
    np.testing.assert_allclose(KI[2:] / 2.0**52, x[1:-1] / x[2:], rtol=1e-12)


@pytest.mark.parametrize(("model", "k_factor"), [("rayleigh", 0.0), ("rician", 3.0),
                                                 ("rician", 0.0), ("awgn", 0.0)])  # fmt: skip
def test_trial_fading_equals_one_generator_per_trial(model: str, k_factor: float) -> None:
    prefix, trials = (2**40 + 3, 4242), np.array([5, 0, 2**32 - 1, 82, 454, 9, 9])
    h = trial_fading(model, 16, prefix, trials, k_factor)
    expected = np.stack([
        fading_coefficients(model, (16,), rng=np.random.default_rng((*prefix, int(t))),
                            k_factor=k_factor)
        for t in trials
    ])  # fmt: skip
    assert h.dtype == np.complex128 and h.shape == (7, 16)
    assert np.array_equal(h.view(np.float64), expected.view(np.float64))


@pytest.mark.parametrize("trials", [[-1], [2**32]])
def test_trial_fading_rejects_trials_outside_one_word(trials: list[int]) -> None:
    with pytest.raises(ConfigError, match=r"^trials: .* allowed: integers in \[0, 2\*\*32\)$"):
        trial_fading("rayleigh", 4, (1, 2), np.array(trials))


def _check_device_draws(results: list) -> None:
    for (model, k, prefix, trials, k_factor), (h_re, h_im, gains) in zip(
        FADING_CASES, results, strict=True
    ):
        h = trial_fading(model, k, prefix, np.array(trials), k_factor)
        assert np.array_equal(np.array(h_re), h.real), (model, prefix)
        assert np.array_equal(np.array(h_im), h.imag), (model, prefix)
        # NumPy's |h| fuses (s/l)^2 + 1 on a host with FMA, the simulator's cuda.fma does not:
        # |h| may differ by an ulp (2^-52 relative), |h|^2 by two and the square's rounding
        expected = np.abs(h) ** 2
        assert np.all(np.abs(np.array(gains) - expected) <= 2.0**-50 * expected)


def test_device_fading_twin_under_the_simulator() -> None:
    _check_device_draws(run_simulated(str(HELPER)))


@pytest.mark.gpu
def test_device_fading_twin_on_the_gpu() -> None:
    from channels.fading import trial_fading_device

    results = []
    for model, k, prefix, trials, k_factor in FADING_CASES:
        arrays = trial_fading_device(model, k, prefix, np.array(trials), k_factor)
        results.append([a.copy_to_host() for a in arrays])
    _check_device_draws(results)
    # at scale: CUDA's log1p/exp may round the tail's last bit differently (module docstring)
    trials = np.arange(200_000)
    h_re, h_im, gains = trial_fading_device("rayleigh", 16, (2**40 + 3, 4242), trials)
    h = trial_fading("rayleigh", 16, (2**40 + 3, 4242), trials)
    same = (h_re.copy_to_host() == h.real) & (h_im.copy_to_host() == h.imag)
    assert same.mean() > 1 - 1e-4
    np.testing.assert_allclose(gains.copy_to_host(), np.abs(h) ** 2, rtol=1e-14, atol=0)
