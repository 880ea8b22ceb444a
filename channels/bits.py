"""Bits of quantised semantic features: uniform quantiser, bit packing, BSC, analytic MSE.

Features are real scalars ``z`` in ``[-1, 1]`` (the encoder ends in ``tanh``). With ``Q`` bits
per scalar (``bits_per_scalar``, 1..16) the uniform mid-rise quantiser has step

    Δ = 2 / 2^Q,   index i = clip(floor((z + 1) / Δ), 0, 2^Q - 1),   ẑ = -1 + (i + 1/2) Δ.

The index is sent as ``Q`` bits, most significant first, either as the natural-binary index
(``code="binary"``) or as its reflected Gray code ``g = i ^ (i >> 1)`` (``code="gray"``).
Bit errors are independent flips (a binary symmetric channel, BSC) with a probability that may
differ per feature; :func:`mse_bit_errors` gives the exact per-scalar mean-squared error of
quantise -> BSC(p) -> de-quantise for ``z`` uniform on ``[-1, 1]`` (docs/method.md §4.5, §2.4).

Shapes follow the project's batch-first convention: ``z`` is ``[..., n]`` with any leading
dimensions (e.g. ``[B, N, L]``: batch, feature, scalar), indices have the shape of ``z`` and the
bits of one index add a trailing axis, ``[..., n, Q]``.

Examples:
    >>> z = np.array([-1.0, -0.3, 0.0, 0.99])
    >>> quantize(z, bits_per_scalar=3)
    array([0, 2, 4, 7])
    >>> dequantize(quantize(z, 3), 3)
    array([-0.875, -0.375,  0.125,  0.875])
    >>> indices_to_bits(np.array([5]), 3)
    array([[1, 0, 1]], dtype=uint8)
    >>> bits = indices_to_bits(quantize(z, 3), 3)
    >>> bool(np.array_equal(bsc(bits, 0.0, rng=0), bits))
    True
"""

from __future__ import annotations

import functools
import operator

import numpy as np

from channels.errors import check_choice, check_int, fail

CODES = ("binary", "gray")
_CODE_RULE = " or ".join(repr(c) for c in CODES)
MAX_BITS_PER_SCALAR = 16
MAX_ENUMERATION_BITS = 12


# ---------------------------------------------------------------------------------------------
# validation (every public function raises ConfigError naming the argument)


def _check_prob(flip_prob: float | np.ndarray, field: str = "flip_prob") -> np.ndarray:
    try:
        p = np.asarray(flip_prob, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(field, flip_prob, "real probabilities in [0, 1]") from None
    bad = ~((p >= 0.0) & (p <= 1.0))  # also catches NaN
    if bad.any():
        raise fail(field, float(p[bad].flat[0]), "probabilities in [0, 1]")
    return p


def _check_integers(
    values: np.ndarray, high: int, field: str, allowed: str, dtype: type = np.int64
) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.integer):
        raise fail(field, f"array of dtype {values.dtype}", f"an integer array, {allowed}")
    if values.size:
        bad = (values < 0) | (values > high)
        if bad.any():
            raise fail(field, int(values[bad].flat[0]), allowed)
    return values.astype(dtype, copy=False)


def _check_indices(indices: np.ndarray, q: int) -> np.ndarray:
    top = (1 << q) - 1
    return _check_integers(indices, top, "indices", f"values in 0..{top} for {q} bits")


def _check_bits(bits: np.ndarray) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.dtype == np.bool_:
        return bits.astype(np.uint8)
    return _check_integers(bits, 1, "bits", "values 0 or 1", dtype=np.uint8)


def _check_broadcast(p: np.ndarray, shape: tuple[int, ...]) -> None:
    try:
        fits = np.broadcast_shapes(p.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise fail("flip_prob", f"array of shape {p.shape}", f"a shape broadcastable to {shape}")


def _as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool | np.bool_) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise fail("rng", rng, "a numpy.random.Generator or a non-negative int seed")


def _normalize_axis(axis: int, ndim: int) -> int:
    try:
        ax = operator.index(axis)
    except TypeError:
        raise fail("feature_axis", axis, f"an integer axis in -{ndim}..{ndim - 1}") from None
    if not -ndim <= ax < ndim:
        raise fail("feature_axis", axis, f"an integer axis in -{ndim}..{ndim - 1}")
    return ax % ndim


# ---------------------------------------------------------------------------------------------
# quantiser and Gray code


def quantization_step(bits_per_scalar: int) -> float:
    """Step ``Δ = 2 / 2^Q`` of the ``Q``-bit uniform quantiser on ``[-1, 1]``."""
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    return 2.0 / (1 << q)


def gray_encode(indices: np.ndarray) -> np.ndarray:
    """Reflected binary Gray code ``g = i ^ (i >> 1)`` of non-negative integer ``indices``.

    Shape and integer dtype are kept. Neighbouring indices ``i, i+1`` get codes that differ in
    exactly one bit.
    """
    indices = np.asarray(indices)
    return indices ^ (indices >> 1)


def gray_decode(codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`gray_encode` for codes of up to 16 bits (shape and dtype kept).

    Bit ``j`` of the index is the XOR of the code bits ``j, j+1, ...`` (a prefix XOR from the
    most significant bit), computed with shifts 1, 2, 4, 8.
    """
    indices = np.array(codes, copy=True)
    shift = 1
    while shift < MAX_BITS_PER_SCALAR:
        indices ^= indices >> shift
        shift <<= 1
    return indices


def quantize(z: np.ndarray | float, bits_per_scalar: int = 8, code: str = "binary") -> np.ndarray:
    """Uniform ``Q``-bit quantiser on ``[-1, 1]``: scalars ``[..., n]`` -> indices ``[..., n]``.

    ``i = clip(floor((z + 1) / Δ), 0, 2^Q - 1)`` with ``Δ = 2 / 2^Q``: bin ``i`` is
    ``[-1 + iΔ, -1 + (i+1)Δ)`` and ``z = +1`` falls into the top bin. Values outside ``[-1, 1]``
    (including ±inf) are clipped to it first; NaN raises :class:`ConfigError`.

    Args:
        z: real array_like ``[..., n]``.
        bits_per_scalar: ``Q`` in 1..16.
        code: ``"binary"`` returns the natural-binary index ``i``; ``"gray"`` returns its Gray
            code ``i ^ (i >> 1)``.

    Returns:
        int64 array of the shape of ``z`` with values in ``0..2^Q - 1`` (int64 rather than
        uint16 so that differences of indices cannot wrap around).
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    check_choice("code", code, CODES, _CODE_RULE)
    z = np.asarray(z, dtype=np.float64)
    nan = np.isnan(z)
    if nan.any():
        raise fail("z", float("nan"), "real values (those outside [-1, 1] are clipped); not NaN")
    levels = 1 << q
    scaled = (np.clip(z, -1.0, 1.0) + 1.0) * (levels / 2.0)  # (z + 1) / Δ, exact scaling
    indices = np.minimum(np.floor(scaled), levels - 1).astype(np.int64)
    return gray_encode(indices) if code == "gray" else indices


def dequantize(indices: np.ndarray, bits_per_scalar: int = 8, code: str = "binary") -> np.ndarray:
    """Bin midpoints ``ẑ = -1 + (i + 1/2) Δ``: indices ``[..., n]`` -> float64 ``[..., n]``.

    Args:
        indices: integer array_like with values in ``0..2^Q - 1``; Gray codes when
            ``code="gray"`` (decoded to the natural-binary index first).
        bits_per_scalar: ``Q`` in 1..16.
        code: ``"binary"`` or ``"gray"``.

    The midpoints lie inside ``(-1, 1)``, so the value needs no further clipping.
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    check_choice("code", code, CODES, _CODE_RULE)
    indices = _check_indices(indices, q)
    if code == "gray":
        indices = gray_decode(indices)
    return -1.0 + (indices + 0.5) * (2.0 / (1 << q))


# ---------------------------------------------------------------------------------------------
# bits


def indices_to_bits(indices: np.ndarray, bits_per_scalar: int) -> np.ndarray:
    """Write indices ``[...]`` as bits ``[..., Q]`` (uint8 0/1), most significant bit first.

    ``bits[..., k] = (i >> (Q - 1 - k)) & 1``, so ``i = Σ_k bits[..., k] · 2^(Q-1-k)``.
    Indices must be integers in ``0..2^Q - 1``.
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    indices = _check_indices(indices, q)
    shifts = np.arange(q - 1, -1, -1, dtype=np.int64)
    return ((indices[..., None] >> shifts) & 1).astype(np.uint8)


def bits_to_indices(bits: np.ndarray, bits_per_scalar: int) -> np.ndarray:
    """Inverse of :func:`indices_to_bits`: bits ``[..., Q]`` (0/1, MSB first) -> int64 ``[...]``."""
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    bits = _check_bits(bits)
    if bits.ndim == 0 or bits.shape[-1] != q:
        raise fail("bits", f"array of shape {bits.shape}", f"shape [..., {q}] (bits_per_scalar)")
    weights = np.left_shift(1, np.arange(q - 1, -1, -1, dtype=np.int64))
    return bits.astype(np.int64) @ weights


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack bits ``[..., n]`` (0/1) into bytes ``[..., ceil(n/8)]`` (uint8), first bit = MSB.

    The last byte is zero-padded; :func:`unpack_bits` needs ``n`` to undo it. For the bits of
    indices, ``[..., L, Q]``, reshape to ``[..., L*Q]`` first to pack them densely.
    """
    bits = _check_bits(bits)
    if bits.ndim == 0:
        raise fail("bits", "a 0-d array", "an array with a last (bit) axis")
    return np.packbits(bits, axis=-1, bitorder="big")


def unpack_bits(packed: np.ndarray, num_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: bytes ``[..., m]`` -> the first ``num_bits`` bits ``[..., n]``.

    ``n = num_bits`` is at most ``8 m``; the result is uint8 0/1, most significant bit first.
    """
    packed = _check_integers(packed, 255, "packed", "byte values 0..255", dtype=np.uint8)
    if packed.ndim == 0:
        raise fail("packed", "a 0-d array", "an array with a last (byte) axis")
    capacity = 8 * packed.shape[-1]
    if isinstance(num_bits, bool) or not isinstance(num_bits, int | np.integer):
        raise fail("num_bits", num_bits, f"an integer in 0..{capacity}")
    if not 0 <= num_bits <= capacity:
        raise fail("num_bits", num_bits, f"an integer in 0..{capacity}")
    return np.unpackbits(packed, axis=-1, count=int(num_bits), bitorder="big")


# ---------------------------------------------------------------------------------------------
# binary symmetric channel


def bsc(
    bits: np.ndarray,
    flip_prob: float | np.ndarray,
    rng: np.random.Generator | int,
    feature_axis: int | None = None,
) -> np.ndarray:
    """Binary symmetric channel: flip every bit independently with its own probability.

    ``out = bits XOR f`` with independent ``f ~ Bernoulli(p)``, drawn as ``f = (u < p)`` for
    ``u ~ U[0, 1)`` (so ``p = 0`` never flips and ``p = 1`` always flips).

    Args:
        bits: 0/1 array ``[...]`` (integer or bool), e.g. ``[B, N, L, Q]``.
        flip_prob: probabilities in ``[0, 1]``. Without ``feature_axis`` it broadcasts against
            ``bits`` (a scalar, or e.g. ``[N, 1, 1]`` for one probability per feature of
            ``[B, N, L, Q]``). With ``feature_axis`` it is 1-D, one entry per position of that
            axis of ``bits`` (e.g. shape ``[N]`` with ``feature_axis=1``).
        rng: a ``numpy.random.Generator`` or a non-negative int seed.
        feature_axis: optional axis of ``bits`` that ``flip_prob`` runs along.

    Returns:
        uint8 array of the shape of ``bits``.
    """
    bits = _check_bits(bits)
    p = _check_prob(flip_prob)
    generator = _as_generator(rng)
    if feature_axis is not None:
        ax = _normalize_axis(feature_axis, bits.ndim)
        if p.shape != (bits.shape[ax],):
            raise fail(
                "flip_prob",
                f"array of shape {p.shape}",
                f"shape ({bits.shape[ax]},) to run along feature_axis={feature_axis}",
            )
        p = p.reshape(p.shape + (1,) * (bits.ndim - ax - 1))
    _check_broadcast(p, bits.shape)
    flips = generator.random(bits.shape) < p
    return bits ^ flips.astype(np.uint8)


def transmit_bsc(
    z: np.ndarray,
    flip_prob: float | np.ndarray,
    bits_per_scalar: int,
    rng: np.random.Generator | int,
    code: str = "binary",
    feature_axis: int | None = None,
) -> np.ndarray:
    """Quantise ``z`` ``[..., n]``, send each index's ``Q`` bits over a BSC, de-quantise.

    ``dequantize(bits_to_indices(bsc(indices_to_bits(quantize(z)))))`` with the same ``code``
    at both ends. ``flip_prob`` is given per *scalar*: it broadcasts against ``z`` (all ``Q``
    bits of a scalar share its probability), e.g. ``[N, 1]`` for ``z`` of shape ``[B, N, L]``;
    or it is 1-D along ``feature_axis`` of ``z``. Returns float64 of the shape of ``z``.
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    indices = quantize(z, q, code)
    bits = indices_to_bits(indices, q)
    if feature_axis is None:
        p = _check_prob(flip_prob)
        _check_broadcast(p, indices.shape)
        received = bsc(bits, p[..., None], rng)
    else:
        ax = _normalize_axis(feature_axis, indices.ndim)
        received = bsc(bits, flip_prob, rng, feature_axis=ax)
    return dequantize(bits_to_indices(received, q), q, code)


# ---------------------------------------------------------------------------------------------
# analytic distortion


def mse_bit_errors(
    flip_prob: float | np.ndarray, bits_per_scalar: int = 8, code: str = "binary"
) -> np.ndarray:
    """Exact per-scalar MSE ``E[(z - ẑ)^2]`` of quantise -> BSC(p) -> de-quantise, z ~ U[-1, 1].

    Write ``z - ẑ = e + Δ (i - i')``: ``e = z - (-1 + (i + 1/2)Δ)`` is the quantisation error,
    ``i`` the sent index, ``i'`` the received one. For ``z`` uniform on ``[-1, 1]`` every bin has
    probability ``2^-Q``, so ``i`` is uniform on ``0..2^Q - 1`` (its bits ``b_j`` are independent
    fair coins) and, given ``i``, ``e`` is uniform on ``[-Δ/2, Δ/2]``. Hence ``E[e^2] = Δ^2/12`` and
    ``E[e (i - i')] = 0`` (``e`` has mean 0 given ``i`` and the flips).

    Natural binary (``code="binary"``). With flips ``f_j ~ Bernoulli(p)`` on bit ``j``
    (0 = LSB), ``i - i' = Σ_j 2^j f_j (2 b_j - 1)``, so

        E[(i - i')^2] = Σ_j Σ_k 2^(j+k) E[f_j f_k] E[(2b_j - 1)(2b_k - 1)].

    For ``j != k`` the bits are independent and ``E[2 b_j - 1] = 0`` (equivalently
    ``E[1 - 2 b_j] = 0``): all cross terms vanish. The diagonal gives ``Σ_j 4^j p``, so exactly

        d(p) = Δ^2/12 + p Δ^2 (4^Q - 1) / 3        (docs/method.md §4.5).

    Gray (``code="gray"``), computed here in closed form as well. The Gray decoder ``G^-1`` is
    linear over GF(2), so the received index is ``i' = G^-1(G(i) XOR f) = i XOR h`` with
    ``h = G^-1(f)`` independent of ``i``: bit ``j`` of ``h`` is the parity of the ``Q - j``
    flips ``f_j .. f_{Q-1}``, ``P(h_j = 1) = (1 - (1 - 2p)^(Q-j)) / 2 = p Σ_{k<Q-j} (1-2p)^k``.
    The same cross-term argument then gives

        d(p) = Δ^2/12 + Δ^2 Σ_j 4^j P(h_j = 1),

    which :func:`mse_bit_errors_enumerated` confirms by brute force. Both codes give
    ``Δ^2/12 + Δ^2 (4^Q - 1)/6`` at ``p = 1/2``.

    Args:
        flip_prob: bit-flip probabilities ``p`` in ``[0, 1]``, any shape.
        bits_per_scalar: ``Q`` in 1..16.
        code: ``"binary"`` or ``"gray"``.

    Returns:
        float64 of the shape of ``flip_prob`` (a NumPy scalar for a scalar input).
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    check_choice("code", code, CODES, _CODE_RULE)
    p = _check_prob(flip_prob)
    step = 2.0 / (1 << q)
    return (step**2 / 12.0 + step**2 * _mean_squared_index_error(p, q, code))[()]


def mse_gaussian_equivalent_variance(
    flip_prob: float | np.ndarray, bits_per_scalar: int = 8, code: str = "binary"
) -> np.ndarray:
    """Variance ``σ^2`` of the analogue alternative (docs/method.md §2.4): the bit-error MSE part.

    ``σ^2 = p Δ^2 (4^Q - 1) / 3`` for natural binary, i.e. ``mse_bit_errors(p) - Δ^2/12``
    (for ``code="gray"``, the same difference for the Gray code). Float64 of ``flip_prob``'s
    shape.
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    check_choice("code", code, CODES, _CODE_RULE)
    p = _check_prob(flip_prob)
    step = 2.0 / (1 << q)
    return (step**2 * _mean_squared_index_error(p, q, code))[()]


def _mean_squared_index_error(p: np.ndarray, q: int, code: str) -> np.ndarray:
    """``E[(i - i')^2]`` in index units (closed forms derived in :func:`mse_bit_errors`)."""
    if code == "binary":
        return p * ((4.0**q - 1.0) / 3.0)
    x = 1.0 - 2.0 * p[..., None]
    partial = np.cumsum(x ** np.arange(q), axis=-1)  # [..., m-1] = Σ_{k<m} x^k, m = 1..Q
    prob_h = p[..., None] * partial[..., ::-1]  # P(h_j = 1); bit j (0 = LSB) uses m = Q - j
    return prob_h @ (4.0 ** np.arange(q))


@functools.lru_cache(maxsize=32)
def _squared_index_error_by_weight(q: int, code: str) -> np.ndarray:
    """``S[w] = Σ_{f: |f| = w} mean_i (i - i'(i, f))^2`` by brute force over indices and flips.

    ``i'`` is the natural-binary index decoded after the flip pattern ``f`` (a ``Q``-bit
    integer) is XORed onto the transmitted code of ``i``. float64 ``[Q + 1]``, read-only.
    """
    levels = 1 << q
    index = np.arange(levels, dtype=np.int64)
    sent = gray_encode(index) if code == "gray" else index
    patterns = np.arange(levels, dtype=np.int64)
    mean_sq = np.empty(levels)
    chunk = max(1, (1 << 20) // levels)  # bound the [chunk, 2^Q] table to ~1M entries
    for start in range(0, levels, chunk):
        f = patterns[start : start + chunk, None]
        received = sent[None, :] ^ f
        decoded = gray_decode(received) if code == "gray" else received
        mean_sq[start : start + chunk] = ((index[None, :] - decoded) ** 2).mean(axis=1)
    weight = indices_to_bits(patterns, q).sum(axis=-1)
    by_weight = np.bincount(weight, weights=mean_sq, minlength=q + 1)
    by_weight.setflags(write=False)
    return by_weight


def mse_bit_errors_enumerated(
    flip_prob: float | np.ndarray, bits_per_scalar: int = 8, code: str = "binary"
) -> np.ndarray:
    """Reference for :func:`mse_bit_errors` by enumeration (``Q`` ≤ 12): no algebra assumed.

    ``d(p) = Δ^2/12 + Δ^2 Σ_f p^|f| (1-p)^(Q-|f|) · 2^-Q Σ_i (i - i'(i, f))^2``, summing over
    all ``2^Q`` indices ``i`` (equally likely for ``z ~ U[-1, 1]``) and all ``2^Q`` flip
    patterns ``f`` of independent bit flips. Only the split ``Δ^2/12`` + index error (the
    quantisation error is uniform and independent of the index) is used. Vectorised over
    ``flip_prob``; float64 of its shape.
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    if q > MAX_ENUMERATION_BITS:
        raise fail("bits_per_scalar", bits_per_scalar, f"1..{MAX_ENUMERATION_BITS} to enumerate")
    check_choice("code", code, CODES, _CODE_RULE)
    p = _check_prob(flip_prob)[..., None]
    w = np.arange(q + 1)
    pattern_prob = p**w * (1.0 - p) ** (q - w)  # probability of one pattern of weight w
    step = 2.0 / (1 << q)
    index_error = pattern_prob @ _squared_index_error_by_weight(q, code)
    return (step**2 / 12.0 + step**2 * index_error)[()]
