"""The coded semantic link: each coded feature's bits through 5G LDPC, Gray QAM and its subchannel.

Feature ``i`` of frame ``b`` with coded entry ``e = "<m>-r<rate>"`` (:mod:`channels.coded`):

1. Bits: the ``k = L Q_i`` bits of its codes, MSB first, scalars in order (as the uncoded
   kernel of :mod:`channels.kernels.link_cpu`);
2. LDPC: one codeword of ``n = beta(m) ceil(k / (r beta(m)))`` bits (:mod:`channels.ldpc`;
   every feature with the same ``(k, n)`` in one Sionna batch, on the CPU);
3. Symbols: Gray labels of ``m`` (:func:`channels.modulation.get_modulation`), unit energy;
4. Channel: ``y = h sqrt(p) x + w``, ``w ~ CN(0, no)``; perfect CSI, zero forcing
   ``x_hat = y / (h sqrt p)`` with noise variance ``no / (|h|^2 p)``;
5. Receiver: exact (log-MAP) bit LLRs, belief-propagation decoding, hard information bits
   back into codes; ``errors[b, i]`` counts wrong information bits.

The noise of frame ``b`` comes from a NumPy generator keyed by ``(seed, point, trial[b], 1)``,
so a frame depends only on its own inputs and keys.

Examples:
    >>> import numpy as np
    >>> codes = np.arange(8).reshape(1, 1, 8) * 31         # B = N = 1, L = 8, Q = 8
    >>> out = transmit_coded(codes, [["qpsk-r1/2"]], np.ones((1, 1)), np.ones((1, 1)), 0.0, 8)
    >>> bool((out.codes_hat == codes).all()), int(out.bit_errors.sum())
    (True, 0)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from channels.bits import bits_to_indices, indices_to_bits
from channels.coded import block_sizes, is_coded, parse_entry
from channels.errors import fail
from channels.feature_bits import bits_array
from channels.ldpc import codeword_length, decode, encode
from channels.modulation import get_modulation

__all__ = ["CodedOutput", "transmit_coded"]


class CodedOutput(NamedTuple):
    """Result of :func:`transmit_coded`: ``codes_hat [B, N, L]`` (int64, ``-1`` where no coded
    entry was sent) and ``bit_errors [B, N]`` (int64)."""

    codes_hat: np.ndarray
    bit_errors: np.ndarray


def transmit_coded(
    codes: np.ndarray,
    entries: Sequence[Sequence[str | None]],
    h: np.ndarray,
    power: np.ndarray,
    no: float,
    bits_per_scalar: int | np.ndarray,
    *,
    seed: int = 0,
    point: int = 0,
    trials: np.ndarray | None = None,
) -> CodedOutput:
    """Send the features with a coded entry; the others are left alone (``-1``, 0 errors).

    Args:
        codes: integer ``[B, N, L]`` quantiser codes in ``0..2^Q_i - 1``.
        entries: ``[B][N]`` entry names; ``None`` or an uncoded name: not handled here.
        h: complex ``[B, N]`` subchannel coefficient of each feature.
        power: float ``[B, N]`` per-symbol transmit power.
        no: noise variance per complex symbol (0: noiseless).
        bits_per_scalar: ``Q`` or ``Q_i [N]``.
        seed, point, trials: keys of the noise (``trials`` default ``0..B-1``).

    Returns:
        The :class:`CodedOutput`.
    """
    codes = np.asarray(codes, dtype=np.int64)
    b_count, n_count, length = codes.shape
    h = np.asarray(h, dtype=np.complex128)
    power = np.asarray(power, dtype=np.float64)
    if h.shape != (b_count, n_count) or power.shape != (b_count, n_count):
        raise fail("h", f"shape {h.shape}", f"shape ({b_count}, {n_count}) like power")
    q = bits_array(bits_per_scalar, n_count)
    trials = np.arange(b_count) if trials is None else np.asarray(trials, dtype=np.int64)
    rngs = [np.random.default_rng((int(seed), int(point), int(t), 1)) for t in trials]
    out = np.full(codes.shape, -1, dtype=np.int64)
    errors = np.zeros((b_count, n_count), dtype=np.int64)
    groups: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for b in range(b_count):
        for i in range(n_count):
            e = entries[b][i]
            if e is not None and is_coded(e):
                groups[(e, int(q[i]))].append((b, i))
    for (entry, qi), where in groups.items():
        mod, rate = parse_entry(entry)
        constellation = get_modulation(mod)
        k = length * qi
        blocks = block_sizes(k, rate)  # code-block segmentation of a long feature
        lengths = [codeword_length(kc, entry) for kc in blocks]
        rows = np.array([b for b, _ in where])
        cols = np.array([i for _, i in where])
        info = indices_to_bits(codes[rows, cols], qi).reshape(len(where), k)
        starts = np.cumsum([0, *blocks])
        pieces = zip(starts[:-1], starts[1:], lengths, strict=True)
        coded_bits = np.concatenate([encode(info[:, a:e], nc) for a, e, nc in pieces], axis=1)
        x = constellation.map(coded_bits.reshape(-1)).reshape(len(where), -1)
        g = h[rows, cols] * np.sqrt(power[rows, cols])
        if no > 0:
            noise = np.stack([_noise(rngs[b], x.shape[1], no) for b in rows])
            with np.errstate(divide="ignore", invalid="ignore"):
                y = (g[:, None] * x + noise) / g[:, None]
                var = no / np.abs(g) ** 2
            dead = ~(np.abs(g) > 0)
            y[dead] = 0.0
            var = np.where(dead, 1e300, var)
            llr = constellation.demap_llr(y, np.minimum(var, 1e300)[:, None], method="app")
        else:
            llr = constellation.demap_llr(x, 1e-3, method="app")
        llr = np.clip(llr, -1e4, 1e4)
        cuts = np.cumsum([0, *lengths])
        pieces = zip(cuts[:-1], cuts[1:], blocks, strict=True)
        info_hat = np.concatenate([decode(llr[:, a:e], kc) for a, e, kc in pieces], axis=1)
        errors[rows, cols] = (info_hat != info).sum(axis=1)
        out[rows, cols] = bits_to_indices(info_hat.reshape(len(where), length, qi), qi)
    return CodedOutput(out, errors)


def _noise(rng: np.random.Generator, size: int, no: float) -> np.ndarray:
    """``size`` draws of ``CN(0, no)``."""
    return (rng.standard_normal(size) + 1j * rng.standard_normal(size)) * np.sqrt(no / 2.0)
