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
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np

from channels.errors import fail
from channels.feature_bits import bits_array, check_bits_per_scalar
from channels.kernels import philox as _p
from channels.kernels.backend import resolve_backend
from channels.modulation import get_modulation, label_of_position
from channels.names import BITS_PER_SYMBOL

philox = numba.njit(inline="always")(_p.philox4x32_10)
uniform32 = numba.njit(inline="always")(_p.uniform32)
uniform52 = numba.njit(inline="always")(_p.uniform52)
cos_sin_2pi = numba.njit(inline="always")(_p.cos_sin_2pi)
box_muller = numba.njit(inline="always")(_p.make_box_muller(cos_sin_2pi))

POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
SUPPORTED_BITS_PER_SYMBOL = (0, *sorted(BITS_PER_SYMBOL.values()))
"""Allowed entries of ``bits_per_symbol``: 0 (not sent) and those of the modulations."""
MAX_M = max(BITS_PER_SYMBOL.values())
MAX_Q = 16


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constellation tables indexed by bits per symbol ``m`` (rows of unused ``m`` are zero).

    ``level_i[m, l], level_q[m, l]``: point of label ``l``; ``label_at[m, i, j]``: square-QAM
    label at in-phase position ``i`` and quadrature position ``j`` (positions from the most
    negative level), both straight from :mod:`channels.modulation`.
    """
    level_i = np.zeros((MAX_M + 1, 1 << MAX_M))
    level_q = np.zeros((MAX_M + 1, 1 << MAX_M))
    side_max = 1 << (MAX_M // 2)
    label_at = np.zeros((MAX_M + 1, side_max, side_max), dtype=np.int64)
    for name, m in BITS_PER_SYMBOL.items():
        points = get_modulation(name).points
        level_i[m, : points.size] = points.real
        level_q[m, : points.size] = points.imag
        if m > 1:
            side = 1 << (m // 2)
            label_at[m, :side, :side] = label_of_position(m)
    return level_i, level_q, label_at


LEVEL_I, LEVEL_Q, LABEL_AT = _tables()


@numba.njit(parallel=True, cache=True)
def _link_frames(
    codes,
    bits_per_symbol,
    h_re,
    h_im,
    power,
    sigma,
    q,
    key0,
    key1,
    point,
    trials,
    level_i,
    level_q,
    label_at,
    codes_out,
    errors_out,
):  # noqa: ANN001, ANN201 (Numba-compiled)
    """The kernel of :func:`link_frames`, with ``q`` an int64 array ``[N]``."""
    n_frames, n_features, n_scalars = codes.shape
    first = np.empty(n_features, np.int64)  # first bit of each feature in its frame
    acc = 0
    for i in range(n_features):
        first[i] = acc
        acc += n_scalars * q[i]
    zero = np.uint64(0)
    for job in numba.prange(n_frames * n_features):
        b = job // n_features
        i = job - b * n_features
        qi = q[i]
        bits_per_feature = n_scalars * qi
        code_mask = (1 << qi) - 1
        m = bits_per_symbol[b, i]
        if m == 0:
            for l in range(n_scalars):
                codes_out[b, i, l] = -1
            errors_out[b, i] = 0
            continue
        trial = trials[b]
        amplitude = math.sqrt(power[b, i])
        g_re = h_re[b, i] * amplitude
        g_im = h_im[b, i] * amplitude
        g2 = g_re * g_re + g_im * g_im
        e_re, e_im, inv = 1.0, 0.0, 1.0  # no signal: decide on y itself
        if g2 > 0.0:
            e_re, e_im, inv = g_re, g_im, 1.0 / g2
        side = 1 << (m // 2)
        half_span = 0.5 * (side - 1)
        # unit-energy square QAM -> odd-integer grid (a = x / grid_scale); position (a+side-1)/2
        position_scale = 0.5 / math.sqrt(1.5 / ((1 << m) - 1)) if m > 1 else 0.5
        label_mask = (1 << m) - 1
        n_symbols = (bits_per_feature + m - 1) // m
        first_index = first[i]
        acc_in = 0  # transmitter bit reservoir: n_in pending bits, MSB first
        n_in = 0
        read = 0
        acc_out = 0  # receiver bit reservoir
        n_out = 0
        written = 0
        errors = 0
        for s in range(n_symbols):
            while n_in < m:
                if read < n_scalars:
                    acc_in = (acc_in << qi) | (codes[b, i, read] & code_mask)
                    read += 1
                    n_in += qi
                else:  # zero padding of the last symbol
                    acc_in <<= m - n_in
                    n_in = m
            n_in -= m
            label = (acc_in >> n_in) & label_mask
            acc_in &= (1 << n_in) - 1
            x_re = level_i[m, label]
            x_im = level_q[m, label]
            y_re = g_re * x_re - g_im * x_im
            y_im = g_re * x_im + g_im * x_re
            if sigma > 0.0:
                w0, w1, w2, w3 = philox(np.uint64(first_index + s), trial, point, zero, key0, key1)
                n_re, n_im = box_muller(uniform52(w1, w3), uniform32(w2))
                y_re += sigma * n_re
                y_im += sigma * n_im
            z_re = (y_re * e_re + y_im * e_im) * inv  # y conj(g) / |g|^2
            if m == 1:
                decided = 1 if z_re < 0.0 else 0
            else:
                z_im = (y_im * e_re - y_re * e_im) * inv
                pi = min(max(round(z_re * position_scale + half_span), 0.0), side - 1.0)
                pq = min(max(round(z_im * position_scale + half_span), 0.0), side - 1.0)
                decided = label_at[m, int(pi), int(pq)]
            valid = bits_per_feature - s * m
            if valid >= m:
                valid = m
            diff = (label ^ decided) >> (m - valid)
            errors += POPCOUNT[diff]
            acc_out = (acc_out << valid) | (decided >> (m - valid))
            n_out += valid
            while n_out >= qi:
                n_out -= qi
                codes_out[b, i, written] = (acc_out >> n_out) & code_mask
                written += 1
                acc_out &= (1 << n_out) - 1
        errors_out[b, i] = errors


def link_frames(
    codes,
    bits_per_symbol,
    h_re,
    h_im,
    power,
    sigma,
    q,
    key0,
    key1,
    point,
    trials,
    level_i,
    level_q,
    label_at,
    codes_out,
    errors_out,
):  # noqa: ANN001, ANN201 (arguments of the compiled kernel)
    """Transmit every feature of every frame (see the module docstring); parallel over both.

    Args:
        codes: int64 ``[B, N, L]``, values of feature ``i`` in ``0..2^Q_i - 1``.
        bits_per_symbol: int64 ``[B, N]`` in {0, 1, 2, 4, 6, 8}.
        h_re, h_im, power: float64 ``[B, N]``: gain ``h`` and per-symbol power ``p >= 0``.
        sigma: noise standard deviation per real dimension, ``sqrt(no / 2)``.
        q: bits per scalar, ``Q`` (an int) or ``Q_i`` (integers ``[N]``); key0, key1: seed key
            words; point: uint64 point index; trials: uint64 ``[B]`` trial index of each frame.
        level_i, level_q, label_at: the tables of :func:`_tables`.
        codes_out: int64 ``[B, N, L]`` output (``-1`` where not sent).
        errors_out: int64 ``[B, N]`` output bit errors.

    Unchecked (the Numba kernel runs on what it gets); :func:`transmit_codes` validates.
    """
    q = np.ascontiguousarray(bits_array(q, codes.shape[1]), dtype=np.int64)
    _link_frames(codes, bits_per_symbol, h_re, h_im, power, sigma, q, key0, key1, point, trials,
                 level_i, level_q, label_at, codes_out, errors_out)  # fmt: skip


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


__all__ = ["LinkOutput", "SUPPORTED_BITS_PER_SYMBOL", "link_frames", "transmit_codes"]
