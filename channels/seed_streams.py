"""Many NumPy generators at once: the states ``numpy.random.default_rng((*prefix, t))`` starts
from, for a whole array of trials ``t``, without building a generator per trial.

``default_rng(entropy)`` hashes ``entropy`` with :class:`numpy.random.SeedSequence` and seeds a
PCG64 with four 64-bit words of its output. Building that object costs about 10 us per trial
in Python, which sets the pace of a batch whose frames each draw a handful of numbers from their
own generator. Here the SeedSequence hash runs vectorised over the trials (32-bit words, wrapping
multiplication) and the PCG64 seeding step on Python integers; one reused ``Generator`` then
draws each trial's numbers after its state is set. The results equal ``default_rng``'s bit for
bit (``tests/channels/test_seed_streams.py`` compares them with NumPy itself).

The SeedSequence algorithm (Melissa O'Neill's seed_seq_fe, as NumPy implements it):

- entropy: every integer of the tuple as little-endian 32-bit words (``0`` is one word ``0``),
  concatenated;
- pool (4 words): ``pool[i] = hashmix(entropy[i] or 0)``, then every ordered pair of distinct
  pool words mixed, ``pool[d] = mix(pool[d], hashmix(pool[s]))``, then the entropy words beyond
  the fourth mixed into every pool word;
- ``hashmix(v) = ((v ^ c) * (c * A)) ^ (... >> 16)`` with the running constant ``c`` multiplied
  by ``A`` at every call, and ``mix(x, y) = (L x - R y) ^ ((L x - R y) >> 16)``;
- ``generate_state(4, uint64)``: eight 32-bit words cycling over the pool, hashed with a second
  running constant, paired little-endian into 64-bit words.

PCG64 then takes ``initstate = w0 << 64 | w1`` and ``initseq = w2 << 64 | w3``:
``inc = 2 initseq + 1``, ``state = (inc + initstate) M + inc`` modulo ``2**128``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

POOL_SIZE = 4
INIT_A = 0x43B0D7E5
MULT_A = 0x931E8875
INIT_B = 0x8B51F9DD
MULT_B = 0x58F38DED
MIX_MULT_L = 0xCA01F9DD
MIX_MULT_R = 0x4973F715
XSHIFT = 16
PCG_MULTIPLIER = (2549297995355413924 << 64) | 4865540595714422341
MASK_128 = (1 << 128) - 1
MASK_32 = 0xFFFFFFFF


def int_words(value: int) -> list[int]:
    """``value >= 0`` as little-endian 32-bit words (``0`` gives ``[0]``), as SeedSequence reads
    each integer of its entropy."""
    if value < 0:
        raise ValueError(f"entropy: {value} is negative; SeedSequence takes integers >= 0")
    words = [value & MASK_32]
    value >>= 32
    while value:
        words.append(value & MASK_32)
        value >>= 32
    return words


class _HashConstant:
    """The running multiplier of ``hashmix`` (a Python int modulo 2**32: the same for every
    trial, so it need not be an array)."""

    def __init__(self, start: int, mult: int) -> None:
        self.value = start
        self.mult = mult

    def hash(self, v: np.ndarray) -> np.ndarray:
        v = v ^ np.uint32(self.value)
        self.value = (self.value * self.mult) & MASK_32
        v = v * np.uint32(self.value)
        return v ^ (v >> np.uint32(XSHIFT))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = np.uint32(MIX_MULT_L) * x - np.uint32(MIX_MULT_R) * y
    return r ^ (r >> np.uint32(XSHIFT))


def seed_words(prefix: Sequence[int], trials: np.ndarray) -> np.ndarray:
    """``SeedSequence((*prefix, t)).generate_state(4, np.uint64)`` for every ``t`` of ``trials``
    (integers in ``[0, 2**32)``): uint64 ``[T, 4]``."""
    trials = np.asarray(trials)
    if trials.size and (trials.min() < 0 or trials.max() > MASK_32):
        raise ValueError("trials: values must lie in [0, 2**32)")
    fixed = [w for value in prefix for w in int_words(int(value))]
    count = trials.size
    entropy = [np.full(count, w, dtype=np.uint32) for w in fixed]
    entropy.append(trials.astype(np.uint32).reshape(-1))
    with np.errstate(over="ignore"):
        a = _HashConstant(INIT_A, MULT_A)
        zero = np.zeros(count, dtype=np.uint32)
        pool = [a.hash(entropy[i] if i < len(entropy) else zero) for i in range(POOL_SIZE)]
        for src in range(POOL_SIZE):
            for dst in range(POOL_SIZE):
                if src != dst:
                    pool[dst] = _mix(pool[dst], a.hash(pool[src]))
        for src in range(POOL_SIZE, len(entropy)):
            for dst in range(POOL_SIZE):
                pool[dst] = _mix(pool[dst], a.hash(entropy[src]))
        b = _HashConstant(INIT_B, MULT_B)
        words32 = np.stack([b.hash(pool[i % POOL_SIZE]) for i in range(2 * 4)], axis=1)
    low, high = words32[:, 0::2].astype(np.uint64), words32[:, 1::2].astype(np.uint64)
    return low | (high << np.uint64(32))


def pcg64_state(words: Sequence[int]) -> tuple[int, int]:
    """PCG64's ``(state, inc)`` seeded with four 64-bit words (``initstate``, ``initseq``)."""
    w0, w1, w2, w3 = (int(w) for w in words)
    initstate, initseq = (w0 << 64) | w1, (w2 << 64) | w3
    inc = ((initseq << 1) | 1) & MASK_128
    state = (inc + initstate) & MASK_128  # a step from 0 gives inc; then initstate is added
    state = (state * PCG_MULTIPLIER + inc) & MASK_128
    return state, inc


def trial_generators(prefix: Sequence[int], trials: np.ndarray) -> Iterator[np.random.Generator]:
    """One generator per trial, in order, in the state ``default_rng((*prefix, t))`` starts in.

    The same ``Generator`` object is yielded every time, its state set anew: draw from it
    before advancing the iterator.

    Examples:
        >>> import numpy as np
        >>> gens = trial_generators((7, 3), np.array([0, 5]))
        >>> [next(gens).standard_normal() == np.random.default_rng((7, 3, t)).standard_normal()
        ...  for t in (0, 5)]
        [True, True]
    """
    bit_generator = np.random.PCG64(0)
    generator = np.random.Generator(bit_generator)
    template = bit_generator.state
    for words in seed_words(prefix, trials).tolist():
        state, inc = pcg64_state(words)
        template["state"] = {"state": state, "inc": inc}
        template["has_uint32"] = 0
        template["uinteger"] = 0
        bit_generator.state = template
        yield generator


__all__ = ["int_words", "pcg64_state", "seed_words", "trial_generators"]
