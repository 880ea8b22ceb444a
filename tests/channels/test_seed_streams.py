"""The batched generator states against NumPy's own SeedSequence, PCG64 and default_rng."""

import numpy as np
import pytest

from channels.fading import fading_coefficients, trial_fading
from channels.seed_streams import int_words, pcg64_state, seed_words, trial_generators

PREFIXES = [(), (0,), (7, 3), (0, 0), (2**32, 1), (2**40 + 5, 123456), (2**64 - 1, 2**32 - 1),
            (2**70 + 3, 0, 9), (1, 2, 3, 4)]  # fmt: skip
TRIALS = np.array([0, 1, 5, 77777, 2**31, 2**32 - 1])


@pytest.mark.parametrize("prefix", PREFIXES)
def test_seed_words_equal_seed_sequence(prefix):
    words = seed_words(prefix, TRIALS)
    for row, trial in zip(words, TRIALS, strict=True):
        reference = np.random.SeedSequence((*prefix, int(trial))).generate_state(4, np.uint64)
        np.testing.assert_array_equal(row, reference)


def test_seed_words_equal_seed_sequence_on_random_entropy():
    rng = np.random.default_rng(0)
    for _ in range(200):
        prefix = tuple(int(v) for v in rng.integers(0, 2**63, size=rng.integers(0, 5)))
        trials = rng.integers(0, 2**32, size=3)
        for row, trial in zip(seed_words(prefix, trials), trials, strict=True):
            reference = np.random.SeedSequence((*prefix, int(trial))).generate_state(4, np.uint64)
            np.testing.assert_array_equal(row, reference)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_pcg64_state_equals_default_rng(prefix):
    for row, trial in zip(seed_words(prefix, TRIALS), TRIALS, strict=True):
        state = np.random.default_rng((*prefix, int(trial))).bit_generator.state["state"]
        assert pcg64_state(row) == (state["state"], state["inc"])


@pytest.mark.parametrize("prefix", PREFIXES[:5])
def test_trial_generators_draw_what_default_rng_draws(prefix):
    for gen, trial in zip(trial_generators(prefix, TRIALS), TRIALS, strict=True):
        mine = (gen.standard_normal(17), gen.integers(2**63), gen.random(3), gen.integers(5))
        ref = np.random.default_rng((*prefix, int(trial)))
        theirs = (ref.standard_normal(17), ref.integers(2**63), ref.random(3), ref.integers(5))
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("model", "k_factor"), [("rayleigh", 0.0), ("rician", 3.0), ("rician", 0.0), ("awgn", 0.0)]
)
def test_trial_fading_equals_one_generator_per_trial(model, k_factor):
    trials = np.arange(40, 140)
    h = trial_fading(model, 16, (11, 22), trials, k_factor)
    reference = np.stack([
        fading_coefficients(model, (16,), rng=np.random.default_rng((11, 22, int(t))),
                            k_factor=k_factor)
        for t in trials
    ])  # fmt: skip
    assert h.dtype == np.complex128 and h.shape == (100, 16)
    np.testing.assert_array_equal(h, reference)


def test_int_words_and_bad_input():
    assert int_words(0) == [0]
    assert int_words(2**32) == [0, 1]
    with pytest.raises(ValueError, match="entropy"):
        int_words(-1)
    with pytest.raises(ValueError, match="trials"):
        seed_words((1,), np.array([2**32]))
