"""Fused Numba CPU kernel of the digital semantic link: bits -> symbols -> channel -> codes.

One *frame* carries the quantised features of one image, ``codes[b, i, l]`` (``Q``-bit codes,
``b`` frame, ``i`` feature, ``l`` scalar; ``Q`` may be per feature, ``Q_i``, each feature's
codes in ``0..2^Q_i - 1`` of the one integer array, :mod:`channels.feature_bits`). Feature
``i`` of frame ``b`` is sent with its own modulation of ``m = bits_per_symbol[b, i]`` bits per
symbol (0: not sent) over its subchannel gain ``h[b, i]`` at per-symbol transmit power
``p[b, i]``:

1. Bits: the ``L·Q_i`` bits of the feature, each code most significant bit first, scalars in
   order (``channels.bits.indices_to_bits(codes[b, i], Q_i).reshape(-1)``).
2. Symbols: consecutive groups of ``m`` bits, the first bit most significant in the label, the
   last group zero-padded; ``S = ceil(L·Q_i / m)`` symbols mapped with the Gray labels of
   ``channels.get_modulation`` (unit energy; BPSK real).
3. Channel: ``y = h sqrt(p) x + n``, ``n ~ CN(0, no)`` (docs/conventions.md: ``no / 2`` per real
   dimension, per-symbol SNR ``gamma = |h|^2 p / no``).
4. Receiver with perfect CSI: zero forcing ``x̂ = y conj(g) / |g|^2`` with ``g = h sqrt(p)``,
   nearest-point (ML) hard decision, label bits back into codes; the padding bits are dropped.
   A feature sent with ``g = 0`` (zero power or gain) leaves ``y = n``; the receiver then
   decides on ``y`` itself, so its decisions carry no information about the data.
5. Output: received codes ``codes_hat[b, i, l]`` (``-1`` for features not sent) and the bit
   errors per feature ``errors[b, i]`` (over the ``L·Q_i`` data bits, padding excluded).

Random numbers (noise only; the data are given): Philox4x32-10 keyed by the 64-bit seed, with
the counter ``(first_i + s, trial[b], point, 0)`` for symbol ``s`` of feature ``i`` of frame
``b`` (stream 0 as in :mod:`channels.kernels.cpu`), ``first_i = L·sum_{j<i} Q_j`` the feature's
first bit in the frame (``i·L·Q`` with one ``Q``; :func:`channels.feature_bits.bit_offsets`).
Feature ``i`` with ``Q_i`` therefore gets exactly the noise it gets in a frame of one ``Q = Q_i``
at a position ``i'`` with ``i'·L·Q_i = first_i``. A frame's result therefore depends only on
``(seed, point, trial[b])`` and its inputs, not on batch size, thread count or which other
frames run. The Gaussian noise is Box-Muller on a 52-bit and a 32-bit uniform, as in the BER
kernel. With ``no = 0`` no noise is drawn and the link is exact.

This module is the front door (validation and the ``backend`` switch, as
:mod:`channels.montecarlo` is for BER): the kernels sit below it, the CPU one in
:mod:`channels.kernels.cpu_link` and its CUDA twin in :mod:`channels.kernels.cuda_link`, both
built on the shared tables of :mod:`channels.kernels.link_tables`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from channels.errors import fail
from channels.feature_bits import bits_array, check_bits_per_scalar
from channels.kernels import philox as _p
from channels.kernels.backend import resolve_backend
from channels.kernels.cpu_link import link_frames
from channels.kernels.link_tables import (
    LABEL_AT,
    LEVEL_I,
    LEVEL_Q,
    MAX_Q,
    SUPPORTED_BITS_PER_SYMBOL,
)


class LinkOutput(NamedTuple):
    """Result of :func:`transmit_codes`."""

    codes_hat: np.ndarray
    """int64 ``[B, N, L]``: received codes, ``-1`` for features not sent."""
    bit_errors: np.ndarray
    """int64 ``[B, N]``: bit errors per feature (0 for features not sent)."""


def _integer_array(value: Any, field: str, allowed: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise fail(field, f"array of dtype {arr.dtype}", allowed)
    return arr


def _uint32(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < 2**32:
        raise fail(field, value, "an integer in 0..2**32-1")
    return int(value)


def transmit_codes(
    codes: Any,
    bits_per_symbol: Any,
    h: Any,
    power: Any,
    no: float,
    bits_per_scalar: int | Any,
    *,
    seed: int = 0,
    point: int = 0,
    trials: Any = None,
    backend: str = "auto",
) -> LinkOutput:
    """Send quantised features over their subchannels and receive them (module docstring).

    Args:
        codes: integer ``[B, N, L]``, each in ``0..2^Q - 1`` (e.g. ``channels.bits.quantize``).
        bits_per_symbol: integer ``[B, N]`` (broadcast), each in {0, 1, 2, 4, 6, 8}; 0 = not
            sent (``channels.names.BITS_PER_SYMBOL`` of the modulation otherwise).
        h: ``[B, N]`` (broadcast) complex gains ``h``, or real ``|h|`` (perfect CSI: only
            ``|h|^2 p`` matters to detection); finite.
        power: ``[B, N]`` (broadcast) per-symbol transmit power, finite and ``>= 0``.
        no: noise variance per complex symbol, finite and ``>= 0`` (0: noiseless).
        bits_per_scalar: ``Q`` in 1..16, or ``Q_i`` per feature (integers ``[N]`` in 1..16;
            feature ``i``'s codes in ``0..2^Q_i - 1``). One ``Q`` gives the same bits and noise
            as a vector of equal entries.
        seed: 64-bit Philox key; point: stream index in ``0..2^32-1``.
        trials: integer ``[B]`` trial index of each frame in ``0..2^32-1`` (default
            ``0..B-1``).
        backend: "cpu" (:func:`link_frames`), "cuda" (its Numba-CUDA twin
            :func:`channels.kernels.cuda_link.link_frames_cuda`, the same noise) or "auto"
            (CUDA when a GPU is present); :func:`channels.kernels.backend.resolve_backend`.

    Returns:
        :class:`LinkOutput` ``(codes_hat [B, N, L], bit_errors [B, N])``.

    Examples:
        >>> codes = np.array([[[0xA5, 0x3C]]])                 # B = N = 1, L = 2, Q = 8
        >>> out = transmit_codes(codes, [[4]], [[1.0]], [[1.0]], no=0.0, bits_per_scalar=8)
        >>> out.codes_hat.tolist(), out.bit_errors.tolist()
        ([[[165, 60]]], [[0]])
        >>> two = transmit_codes([[[5], [0x3C]]], 2, 1.0, 1.0, 0.0, [3, 8])  # Q = 3 and 8
        >>> two.codes_hat.tolist()
        [[[5], [60]]]
    """
    scalar = isinstance(bits_per_scalar, int | np.integer) and not isinstance(bits_per_scalar, bool)
    if scalar and not 1 <= bits_per_scalar <= MAX_Q:
        raise fail("bits_per_scalar", bits_per_scalar, f"an integer in 1..{MAX_Q}")
    codes = _integer_array(codes, "codes", "an integer array [B, N, L]")
    if codes.ndim != 3:
        raise fail("codes", f"array of shape {codes.shape}", "shape [B, N, L]")
    n_frames, n_features, n_scalars = codes.shape
    if scalar:
        q_all = int(bits_per_scalar)
    else:
        q_all = check_bits_per_scalar("bits_per_scalar", bits_per_scalar, n_features, MAX_Q)
    q_arr = bits_array(q_all, n_features)
    top = (1 << q_arr) - 1  # [N]
    if codes.size and (codes.min() < 0 or np.any(codes.max(axis=(0, 2)) > top)):
        over = (codes < 0) | (codes > top[None, :, None])
        feature = int(np.argwhere(over)[0, 1])
        bad, qi = codes[over].flat[0], int(q_arr[feature])
        raise fail("codes", int(bad), f"values in 0..{(1 << qi) - 1} for {qi} bits")
    if n_scalars * int(q_arr.sum()) >= 2**32:
        raise fail("codes", f"array of shape {codes.shape}", "N * L * Q < 2**32 bits per frame")
    shape = (n_frames, n_features)

    def broadcast(value: Any, field: str) -> np.ndarray:
        arr = np.asarray(value)
        try:
            return np.ascontiguousarray(np.broadcast_to(arr, shape))
        except ValueError:
            allowed = f"a shape broadcastable to {shape}"
            raise fail(field, f"array of shape {arr.shape}", allowed) from None

    allowed = ", ".join(map(str, SUPPORTED_BITS_PER_SYMBOL))
    m = _integer_array(bits_per_symbol, "bits_per_symbol", f"integers in {{{allowed}}}")
    m = broadcast(m, "bits_per_symbol").astype(np.int64)
    bad_m = ~np.isin(m, SUPPORTED_BITS_PER_SYMBOL)
    if bad_m.any():
        raise fail("bits_per_symbol", int(m[bad_m].flat[0]), f"one of {allowed}")
    h = broadcast(h, "h")
    if not np.issubdtype(h.dtype, np.number) or not np.all(np.isfinite(h)):
        raise fail("h", "non-finite or non-numeric gains", "finite real or complex numbers")
    try:
        p = broadcast(power, "power").astype(np.float64)
    except (TypeError, ValueError):
        raise fail("power", power, "finite numbers >= 0") from None
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise fail("power", p[~(np.isfinite(p) & (p >= 0))].flat[0], "finite numbers >= 0")
    if isinstance(no, bool) or not isinstance(no, int | float | np.floating | np.integer):
        raise fail("no", no, "a finite number >= 0")
    if not (math.isfinite(no) and no >= 0):
        raise fail("no", no, "a finite number >= 0")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**64:
        raise fail("seed", seed, "an integer in 0..2**64-1")
    point = _uint32(point, "point")
    if trials is None:
        trials = np.arange(n_frames, dtype=np.uint64)
    else:
        trials = _integer_array(trials, "trials", "integers in 0..2**32-1").reshape(-1)
        if trials.shape != (n_frames,):
            raise fail("trials", f"array of shape {trials.shape}", f"shape ({n_frames},)")
        if trials.size and (trials.min() < 0 or trials.max() >= 2**32):
            raise fail("trials", int(trials[(trials < 0) | (trials >= 2**32)][0]),
                       "integers in 0..2**32-1")  # fmt: skip
        trials = trials.astype(np.uint64)
    backend = resolve_backend(backend)
    key0, key1 = _p.seed_key(int(seed))
    codes_out = np.empty(codes.shape, dtype=np.int64)
    errors_out = np.empty(shape, dtype=np.int64)
    if backend == "cuda":
        from channels.kernels.cuda_link import link_frames_cuda as kernel
    else:
        kernel = link_frames
    kernel(
        np.ascontiguousarray(codes, dtype=np.int64), m,
        np.ascontiguousarray(h.real, dtype=np.float64),
        np.ascontiguousarray(h.imag if np.iscomplexobj(h) else np.zeros(shape), dtype=np.float64),
        p, math.sqrt(float(no) / 2.0), q_all, key0, key1, np.uint64(point), trials,
        LEVEL_I, LEVEL_Q, LABEL_AT, codes_out, errors_out,
    )  # fmt: skip
    return LinkOutput(codes_out, errors_out)


__all__ = [
    "LABEL_AT",
    "LEVEL_I",
    "LEVEL_Q",
    "LinkOutput",
    "SUPPORTED_BITS_PER_SYMBOL",
    "link_frames",
    "transmit_codes",
]
