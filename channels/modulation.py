"""Gray-labelled BPSK and square M-QAM constellations: mapping, hard and soft demapping.

Labelling (identical to Sionna's ``Constellation("qam", m)`` and ``Constellation("pam", 1)``):
a label ``l`` in ``0..M-1`` is written as ``m`` bits ``b_0 b_1 ... b_{m-1}``, most significant
first. For square QAM the even-indexed bits ``b_0, b_2, ...`` choose the in-phase amplitude and
the odd-indexed bits ``b_1, b_3, ...`` the quadrature amplitude, each through the Gray PAM map

    pam(b_0 ... b_{n-1}) = (1 - 2 b_0) (2^{n-1} - pam(b_1 ... b_{n-1})),   pam(b) = 1 - 2 b,

which gives the odd integers ``-(2^n - 1) .. 2^n - 1`` with neighbours one bit apart. The points
are scaled to unit average energy, ``E|x|^2 = 1``. BPSK maps ``b -> 1 - 2b`` (real).

Soft outputs are log-likelihood ratios with Sionna's sign convention,
``llr_j = ln P(b_j = 1 | y) - ln P(b_j = 0 | y)``, for ``y = x + n``, ``n ~ CN(0, no)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

from channels.errors import ConfigError
from channels.names import BITS_PER_SYMBOL, check_modulation

LLR_METHODS = ("app", "maxlog")


def gray_pam_levels(num_bits: int) -> np.ndarray:
    """Unnormalised Gray PAM amplitude of every ``num_bits``-bit label (MSB first).

    Returns an int64 array of shape ``[2**num_bits]`` whose entry ``i`` is ``pam(bits(i))``.
    """
    levels = np.array([1, -1], dtype=np.int64)  # pam(b) = 1 - 2b
    for n in range(2, num_bits + 1):
        # prepend a new MSB b0: pam(b0, rest) = (1 - 2 b0) (2^{n-1} - pam(rest))
        inner = (1 << (n - 1)) - levels
        levels = np.concatenate([inner, -inner])
    return levels


def label_bits(num_bits: int) -> np.ndarray:
    """Bits of every label, shape ``[2**num_bits, num_bits]``, uint8, most significant first."""
    labels = np.arange(1 << num_bits)
    shifts = np.arange(num_bits - 1, -1, -1)
    return ((labels[:, None] >> shifts) & 1).astype(np.uint8)


def _constellation(num_bits: int) -> np.ndarray:
    """Unit-energy points indexed by label, complex128 ``[2**num_bits]``."""
    if num_bits == 1:
        return np.array([1.0 + 0j, -1.0 + 0j])
    half = num_bits // 2
    bits = label_bits(num_bits)
    weights = 1 << np.arange(half - 1, -1, -1)
    i_index = bits[:, 0::2] @ weights  # label of the in-phase PAM component
    q_index = bits[:, 1::2] @ weights
    pam = gray_pam_levels(half).astype(np.float64)
    points = pam[i_index] + 1j * pam[q_index]
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


@dataclass(frozen=True)
class Modulation:
    """A Gray-labelled constellation with unit average symbol energy.

    Attributes:
        name: "bpsk", "qpsk", "16qam", "64qam" or "256qam".
        bits_per_symbol: m = log2(M).
        points: complex128 ``[M]``, ``points[l]`` is the symbol of label ``l``.
        bits: uint8 ``[M, m]``, the bits of each label, most significant first.

    Examples:
        >>> mod = get_modulation("16qam")
        >>> bits = np.array([0, 1, 1, 0, 1, 1, 1, 1], dtype=np.uint8)
        >>> x = mod.map(bits)                       # two symbols
        >>> bool(np.array_equal(mod.demap_hard(x), bits))
        True
    """

    name: str
    bits_per_symbol: int
    points: np.ndarray = field(repr=False)
    bits: np.ndarray = field(repr=False)

    @property
    def order(self) -> int:
        """Constellation size M."""
        return 1 << self.bits_per_symbol

    @property
    def is_real(self) -> bool:
        """True for BPSK, whose points lie on the real axis."""
        return self.bits_per_symbol == 1

    def _check_bits(self, bits: np.ndarray) -> np.ndarray:
        bits = np.asarray(bits)
        if bits.shape[-1] % self.bits_per_symbol:
            raise ConfigError(
                f"bits: last dimension {bits.shape[-1]} is not a multiple of "
                f"bits_per_symbol={self.bits_per_symbol}"
            )
        if bits.size and (bits.min() < 0 or bits.max() > 1):
            raise ConfigError("bits: values must be 0 or 1")
        return bits

    def labels_from_bits(self, bits: np.ndarray) -> np.ndarray:
        """Group bits ``[..., n*m]`` into labels ``[..., n]`` (int64), MSB first."""
        bits = self._check_bits(bits)
        m = self.bits_per_symbol
        grouped = bits.reshape(*bits.shape[:-1], -1, m).astype(np.int64)
        return grouped @ (1 << np.arange(m - 1, -1, -1))

    def map(self, bits: np.ndarray) -> np.ndarray:
        """Map bits ``[..., n*m]`` (0/1) to symbols ``[..., n]`` (complex128)."""
        return self.points[self.labels_from_bits(bits)]

    def detect(self, y: np.ndarray) -> np.ndarray:
        """Maximum-likelihood (nearest-point) labels ``[..., n]`` for AWGN observations ``y``.

        Square QAM is detected per dimension by rounding to the nearest PAM level, which
        equals the nearest point of the whole constellation.
        """
        y = np.asarray(y)
        if self.is_real:
            return (np.real(y) < 0).astype(np.int64)
        side = 1 << (self.bits_per_symbol // 2)
        # undo the unit-energy scaling (odd-integer square M-QAM has E|x|^2 = 2(M-1)/3), then
        # level a = 2j - (side-1) sits at position j = 0..side-1 counted from the left
        scale = np.sqrt(2.0 * (self.order - 1) / 3.0)

        def position(v: np.ndarray) -> np.ndarray:
            j = np.rint((v * scale + (side - 1)) / 2.0)
            return np.clip(j, 0, side - 1).astype(np.int64)

        table = label_of_position(self.bits_per_symbol)
        return table[position(np.real(y)), position(np.imag(y))]

    def demap_hard(self, y: np.ndarray) -> np.ndarray:
        """Hard decisions: bits ``[..., n*m]`` (uint8) of the nearest point to each ``y``."""
        labels = self.detect(y)
        return self.bits[labels].reshape(*labels.shape[:-1], -1)

    def demap_llr(self, y: np.ndarray, no: float | np.ndarray, method: str = "app") -> np.ndarray:
        """Bit LLRs ``[..., n*m]`` (float64) for ``y = x + n``, ``n ~ CN(0, no)``.

        ``method="app"`` is exact log-MAP:
            llr_j = ln sum_{x: b_j=1} exp(-|y-x|^2/no) - ln sum_{x: b_j=0} exp(-|y-x|^2/no);
        ``method="maxlog"`` replaces each log-sum-exp by its largest term. ``no`` (noise variance
        per complex symbol, > 0) broadcasts against ``y``. Equal priors are assumed.
        """
        if method not in LLR_METHODS:
            raise ConfigError(f"method: {method!r} is not one of {', '.join(LLR_METHODS)}")
        y = np.asarray(y)
        no_arr = np.asarray(no, dtype=np.float64)
        if np.any(~np.isfinite(no_arr)) or np.any(no_arr <= 0):
            raise ConfigError(f"no: {no!r} is invalid; allowed: finite values > 0")
        metric = -(np.abs(y[..., None] - self.points) ** 2) / np.asarray(no_arr)[..., None]
        ones = self.bits.T.astype(bool)  # [m, M]
        reduce = logsumexp if method == "app" else np.max
        llr = np.stack(
            [
                reduce(np.where(ones[j], metric, -np.inf), axis=-1)
                - reduce(np.where(~ones[j], metric, -np.inf), axis=-1)
                for j in range(self.bits_per_symbol)
            ],
            axis=-1,
        )
        return llr.reshape(*llr.shape[:-2], -1)


@functools.cache
def label_of_position(bits_per_symbol: int) -> np.ndarray:
    """Square QAM table ``[side, side]``: label of the point at I position i, Q position j.

    Positions count PAM levels from the most negative one (``side = 2**(m/2)``).
    """
    half = bits_per_symbol // 2
    side = 1 << half
    pam = gray_pam_levels(half)
    pam_label_at = np.empty(side, dtype=np.int64)
    pam_label_at[(pam + side - 1) // 2] = np.arange(side)  # PAM label at each position
    i_lab, q_lab = pam_label_at[:, None], pam_label_at[None, :]
    label = np.zeros((side, side), dtype=np.int64)
    for k in range(half):  # interleave: I bit k -> label bit 2k, Q bit k -> label bit 2k+1
        shift = half - 1 - k
        label |= ((i_lab >> shift) & 1) << (2 * half - 1 - 2 * k)
        label |= ((q_lab >> shift) & 1) << (2 * half - 2 - 2 * k)
    label.setflags(write=False)
    return label


_CACHE: dict[str, Modulation] = {}


def get_modulation(name: str) -> Modulation:
    """The constellation called ``name`` ("bpsk", "qpsk", "16qam", "64qam", "256qam")."""
    key = check_modulation(name)
    if key not in _CACHE:
        m = BITS_PER_SYMBOL[key]
        points = _constellation(m)
        points.setflags(write=False)
        bits = label_bits(m)
        bits.setflags(write=False)
        _CACHE[key] = Modulation(key, m, points, bits)
    return _CACHE[key]
