"""The entropy of NumPy's per-trial streams ``numpy.random.default_rng((*prefix, t))``.

``default_rng(entropy)`` hashes ``entropy`` with :class:`numpy.random.SeedSequence` and seeds a
PCG64 with four 64-bit words of its output. Building that object costs 10 to 20 us per trial in
Python, which set the pace of a batch whose frames each draw a handful of numbers from their own
generator; :mod:`channels.kernels.normal_stream` runs the same algorithm inside compiled kernels
instead, bit for bit (``tests/channels/test_trial_fading.py`` compares it with NumPy itself).
This module turns the integers of the entropy into the 32-bit words the hash reads.

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

from collections.abc import Sequence

import numpy as np

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


def entropy_words(prefix: Sequence[int]) -> np.ndarray:
    """The entropy words of ``prefix`` (each integer's :func:`int_words`, concatenated) as
    uint64, the form the compiled streams take.

    Examples:
        >>> entropy_words((7, 2**32 + 3)).tolist()
        [7, 3, 1]
    """
    return np.array([w for value in prefix for w in int_words(int(value))], dtype=np.uint64)


__all__ = ["entropy_words", "int_words"]
