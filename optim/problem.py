"""The SI-UEP allocation problem (P0) and its solutions (docs/method.md §4.3-§4.6 and §5.3).

A :class:`Problem` holds everything an allocator needs: per-feature importance ``w[N]`` and
drop distortion ``d_drop[N]``, the quantiser (``L`` scalars of ``Q`` bits per feature), the
subchannel power gains ``g[K]`` and noise power ``sigma^2``, the power budget ``P_tot`` and
symbol budget ``S_max``, the modulation set, and the two model switches (BER model, distortion
model). An :class:`Allocation` is one decision: which features are sent, on which subchannel,
with which modulation and per-symbol power.

(P0), with ``b_i = L Q_i`` bits of feature ``i`` and ``S_i(m) = ceil(b_i / beta(m))`` symbols::

    min   sum_i w_i [ x_i D_sent,i(Pb(m_i, g_k(i) p_i / sigma^2)) + (1 - x_i) D_drop,i ]
    s.t.  each selected feature on its own subchannel (injective matching)
          sum_{i selected} S_i(m_i) <= S_max,   sum_{i selected} p_i <= P_tot,   p_i >= 0

Bits per scalar ``Q`` are one number for every feature (``bits_per_scalar=8``, the paper's
setting: then ``b_i = b`` and ``S_i(m) = S(m)``) or one per feature (``bits_per_scalar=[...]``,
[OUR CHOICE], docs/method.md §4.5): a feature's ``Q_i`` sets its quantiser step
``Delta_i = span / 2^Q_i``, its distortion terms and its symbol counts, so it enters the symbol
budget of every solver (:attr:`Problem.symbol_table`).

The distortion terms are in :mod:`optim.distortion`; the solvers in :mod:`optim.hierarchical`,
:mod:`optim.baselines` and ``optim.exact``.

Examples:
    >>> p = random_problem(4, 4, seed=0)
    >>> p.n_features, p.n_subchannels, p.bits_per_feature
    (4, 4, 512)
    >>> Problem.from_dict(p.to_dict()) == p
    True
    >>> Allocation.send_nothing().symbols_needed(p)
    0
    >>> q = random_problem(3, 3, seed=0, bits_per_scalar=[4, 8, 8], scalars_per_feature=8)
    >>> q.bits_per_feature.tolist(), q.symbol_table[:, 0].tolist(), q.symbol_budget
    ([32, 64, 64], [32, 64, 64], 40.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from channels.coded import check_entry, entry_bits_per_symbol, entry_symbols, is_coded
from channels.errors import (
    ConfigError,
    check_int,
    check_name,
    check_real,
    check_vector,
    fail,
)
from channels.feature_bits import bits_array, check_bits_per_scalar, is_uniform
from channels.names import MODULATION_NAMES
from optim.feature_terms import feature_terms
from optim.snr_range import check_gains_in_range, check_power_budget

BER_MODELS = ("exact", "bound")
"""``exact``: exact Gray BER; ``bound``: ``A exp(-B gamma)`` (docs/method.md §4.4)."""

DISTORTION_MODELS = ("absolute", "normalised")
"""``absolute``: ``D = L d``; ``normalised``: ``D = d / d_drop`` (docs/method.md §4.5)."""

DEFAULT_MODULATIONS = ("bpsk", "qpsk", "16qam", "64qam")
FADING_TYPES = ("rayleigh", "awgn", "rician")
PROFILES = ("ordered", "flat", "random")
MAX_BITS_PER_SCALAR = 24
_MAX_REPR = 80  # longest value shown in an error message


@dataclass(frozen=True, eq=False)
class Problem:
    """One instance of (P0): importance, quantiser, subchannels, budgets and models.

    Attributes:
        weights (array [N], float >= 0): Importance ``w_i`` of each feature (finite; need
            not sum to 1).
        drop_distortion (array [N], float >= 0): ``d_drop,i``: per-scalar MSE when feature i is not
            sent (zero-filled at the receiver), i.e. ``E[z_l^2]`` over the feature's scalars. Must
            be > 0 under the normalised model.
        gains (array [K], float >= 0): Subchannel power gains ``g_k = |h_k|^2`` (perfect CSI).
            ``K = 0`` is allowed. A positive gain's SNR at the whole budget,
            ``g_k P_tot / sigma^2``, is in ``[1e-100, 1e100]`` (:mod:`optim.snr_range`).
        power_budget (float >= 0): ``P_tot``: bound on the sum of per-symbol powers of the selected
            features; 0 or in ``[1e-50, 1e50]``.
        symbol_budget (float >= 0): ``S_max``: bound on the total number of channel symbols of the
            selected features (``sum_i S_i(m_i)``).
        scalars_per_feature (int >= 1): ``L`` (default 64).
        bits_per_scalar (int in 1..24, or int array [N] of such): ``Q`` (default 8), uniform
            quantiser, natural binary index; or per-feature ``Q_i`` ([OUR CHOICE], module
            docstring), stored as a read-only int64 array. A vector of equal entries gives
            the same results as the scalar (every solver treats it alike).
        noise_power (float > 0): ``sigma^2`` (default 1); per-symbol SNR is
            ``gamma = g p / sigma^2`` (Es/N0).
        modulations (tuple of names): The modulation set (default bpsk, qpsk, 16qam, 64qam); stored
            sorted by bits/symbol.
        ber_model ("exact" | "bound"): How :func:`optim.distortion.objective` turns SNR into
            bit-error probability.
        distortion_model ("absolute" | "normalised"): docs/method.md §4.5: ``D_i = L d_err`` /
            ``L d_drop`` or ``d_err / d_drop`` / ``1``.
        quantiser_span (float > 0): Width of the quantiser's input range (default 2 for tanh outputs
            in [-1, 1]); the step is ``Delta = span / 2^Q``. [DEFAULT], a parameter of the
            distortion model.

    Validation happens once, in ``__post_init__``; any bad field raises
    :class:`channels.errors.ConfigError` with a one-line message. Arrays are stored read-only.
    """

    weights: np.ndarray
    drop_distortion: np.ndarray
    gains: np.ndarray
    power_budget: float
    symbol_budget: float
    scalars_per_feature: int = 64
    bits_per_scalar: int | np.ndarray = 8
    noise_power: float = 1.0
    modulations: tuple[str, ...] = DEFAULT_MODULATIONS
    ber_model: str = "exact"
    distortion_model: str = "absolute"
    quantiser_span: float = 2.0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("weights", "drop_distortion"):
            put(name, check_vector(name, getattr(self, name), 0, max_repr=_MAX_REPR))
        if self.drop_distortion.shape != self.weights.shape:
            raise fail(
                "drop_distortion",
                self.drop_distortion.tolist(),
                f"one value per feature ({self.weights.size} values, like weights)",
                max_repr=_MAX_REPR,
            )
        put("gains", check_vector("gains", self.gains, 0, max_repr=_MAX_REPR))
        for name in ("power_budget", "symbol_budget"):
            value = getattr(self, name)
            put(name, check_real(name, value, 0, coerce=True, max_repr=_MAX_REPR))
        put(
            "scalars_per_feature",
            check_int("scalars_per_feature", self.scalars_per_feature, 1, coerce=True,
                      max_repr=_MAX_REPR),
        )  # fmt: skip
        put(
            "bits_per_scalar",
            check_bits_per_scalar("bits_per_scalar", self.bits_per_scalar, self.weights.size,
                                  MAX_BITS_PER_SCALAR, coerce=True, max_repr=_MAX_REPR),
        )  # fmt: skip
        for name in ("noise_power", "quantiser_span"):
            value = getattr(self, name)
            put(name, check_real(name, value, 0, open_low=True, coerce=True, max_repr=_MAX_REPR))
        check_power_budget(self.power_budget)
        check_gains_in_range(self.gains, self.power_budget, self.noise_power)
        mods = self.modulations
        if isinstance(mods, str) or not isinstance(mods, Sequence) or len(mods) == 0:
            raise fail(
                "modulations",
                mods,
                f"a non-empty list of {', '.join(MODULATION_NAMES)}",
                max_repr=_MAX_REPR,
            )
        names = {check_entry(m, "modulations") for m in mods}
        put("modulations", tuple(sorted(names, key=lambda m: (entry_bits_per_symbol(m), m))))
        put("ber_model", check_name("ber_model", self.ber_model, BER_MODELS))
        if self.ber_model == "exact" and any(is_coded(m) for m in self.modulations):
            raise fail(
                "ber_model",
                "exact",
                "'bound' when the modulation set has coded entries (their BER is the "
                "exponential fit of the measured curve, channels.coded_table)",
            )
        put(
            "distortion_model",
            check_name("distortion_model", self.distortion_model, DISTORTION_MODELS),
        )
        if self.distortion_model == "normalised" and np.any(self.drop_distortion <= 0):
            raise fail(
                "drop_distortion",
                self.drop_distortion.tolist(),
                "values > 0 under distortion_model 'normalised'",
                max_repr=_MAX_REPR,
            )
        # Every cost term must stay finite: w_i * D_i with D_i <= max(D_drop, D_sent(Pb=1/2)).
        try:
            terms = feature_terms(self)
        except OverflowError:  # (span / 2^Q)^2 as a Python float
            terms = None
        if terms is None or not (np.isfinite(terms.floor).all() and np.isfinite(terms.slope).all()):
            if terms is not None and self.distortion_model == "normalised":  # d / drop overflowed
                raise fail(
                    "drop_distortion",
                    self.drop_distortion.tolist(),
                    "values large enough that the normalised terms d_err / drop stay finite",
                    max_repr=_MAX_REPR,
                )
            raise fail(
                "quantiser_span",
                self.quantiser_span,
                "a width small enough that the distortion terms, about L span^2, stay finite",
            )
        with np.errstate(over="ignore", invalid="ignore"):
            worst = self.weights * np.maximum(terms.drop, terms.floor + 0.5 * terms.slope)
            total = worst.sum()
        if not np.all(np.isfinite(worst)) or not np.isfinite(total):
            raise fail(
                "weights",
                self.weights.tolist(),
                "values small enough for a finite cost",
                max_repr=_MAX_REPR,
            )

    # ----------------------------------------------------------------- derived quantities
    @property
    def n_features(self) -> int:
        """N, the number of features."""
        return int(self.weights.size)

    @property
    def n_subchannels(self) -> int:
        """K, the number of subchannels."""
        return int(self.gains.size)

    @property
    def per_feature_bits(self) -> bool:
        """True when ``bits_per_scalar`` was given per feature (a vector, even a constant one)."""
        return isinstance(self.bits_per_scalar, np.ndarray)

    @property
    def uniform_bits(self) -> bool:
        """True when every feature has the same ``Q`` (a scalar, or a vector of equal entries):
        then ``S_i(m) = S(m)`` for all ``i`` (:attr:`symbols_per_feature`)."""
        return is_uniform(self.bits_per_scalar)

    @property
    def feature_bits_per_scalar(self) -> np.ndarray:
        """``Q_i`` of every feature, int64 [N] (a scalar ``Q`` repeated)."""
        return bits_array(self.bits_per_scalar, self.n_features)

    @property
    def mean_bits_per_scalar(self) -> float:
        """``Q`` itself, or the mean of ``Q_i`` (0 for a vector of no features)."""
        if not self.per_feature_bits:
            return float(self.bits_per_scalar)
        n = self.n_features
        return float(np.sum(self.bits_per_scalar)) / n if n else 0.0

    @property
    def bits_per_feature(self) -> int | np.ndarray:
        """``b = L Q`` bits per feature (int), or ``b_i = L Q_i`` (int64 [N]) per feature."""
        return self.scalars_per_feature * self.bits_per_scalar

    @property
    def feature_bits(self) -> np.ndarray:
        """``b_i = L Q_i`` of every feature, int64 [N]."""
        return self.scalars_per_feature * self.feature_bits_per_scalar

    @property
    def quantiser_step(self) -> float | np.ndarray:
        """``Delta = span / 2^Q`` (float), or ``Delta_i = span / 2^Q_i`` per feature ([N])."""
        return self.quantiser_span / 2.0**self.bits_per_scalar

    @cached_property
    def bits_per_symbol(self) -> np.ndarray:
        """``beta(m)`` for each modulation of :attr:`modulations`, int64 [M]; with coded
        entries (``"16qam-r1/2"``, :mod:`channels.coded`) the information bits per symbol
        ``beta(m) r``, float64 [M]."""
        ratios = [entry_bits_per_symbol(m) for m in self.modulations]
        if all(r.denominator == 1 for r in ratios):
            out = np.array([int(r) for r in ratios], dtype=np.int64)
        else:
            out = np.array([float(r) for r in ratios], dtype=np.float64)
        out.setflags(write=False)
        return out

    def _symbols(self, bits: np.ndarray) -> np.ndarray:
        """``ceil(b / beta(m))`` for bits ``[n]``: int64 [n, M] (exact for coded entries)."""
        out = np.empty((bits.size, len(self.modulations)), dtype=np.int64)
        for j, m in enumerate(self.modulations):
            ratio = entry_bits_per_symbol(m)
            out[:, j] = -(-(bits * ratio.denominator) // ratio.numerator)
        return out

    @cached_property
    def symbols_per_feature(self) -> np.ndarray:
        """``S(m) = ceil(b / beta(m))`` for each modulation, int64 [M] (non-increasing).

        Only when every feature has the same ``Q`` (:attr:`uniform_bits`); otherwise a
        ConfigError: per-feature counts are :attr:`symbol_table`.
        """
        if not self.uniform_bits:
            raise ConfigError(
                "bits_per_scalar: per-feature values differ, so symbols per feature depend on "
                "the feature; use Problem.symbol_table"
            )
        q = self.bits_per_scalar
        if isinstance(q, np.ndarray):
            q = int(q[0]) if q.size else 1
        out = self._symbols(np.array([self.scalars_per_feature * q], dtype=np.int64))[0]
        out.setflags(write=False)
        return out

    @cached_property
    def symbol_table(self) -> np.ndarray:
        """``S_i(m) = ceil(b_i / beta(m))``, int64 [N, M] (each row non-increasing in ``m``)."""
        out = self._symbols(self.feature_bits)
        out.setflags(write=False)
        return out

    def symbols_of(self, features: np.ndarray) -> np.ndarray:
        """Rows of :attr:`symbol_table` for ``features``, or :attr:`symbols_per_feature` [M]
        when every feature has the same ``Q``: the form the pattern searches take (a 1-D
        ``S[m]`` keeps their uniform fast paths; a table ``S[j, m]`` is per position)."""
        if self.uniform_bits:
            return self.symbols_per_feature
        return self.symbol_table[np.asarray(features, dtype=np.int64)]

    def modulation_index(self, name: str) -> int:
        """Position of a modulation name in :attr:`modulations` (ConfigError if absent)."""
        key = check_entry(name)
        if key not in self.modulations:
            raise ConfigError(
                f"modulation: {name!r} is not in this problem's set {', '.join(self.modulations)}"
            )
        return self.modulations.index(key)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (lists, floats, strings) that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "i":
                value = [int(v) for v in value]  # per-feature bits_per_scalar
            elif isinstance(value, np.ndarray):
                value = [float(v) for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        """Build from a mapping (unknown keys and missing required keys raise ConfigError)."""
        if not isinstance(data, Mapping):
            raise fail("problem", data, "a mapping of Problem fields", max_repr=_MAX_REPR)
        known = [f.name for f in fields(cls) if f.init]
        for key in data:
            if key not in known:
                raise ConfigError(f"problem: unknown field {key!r}; allowed: {', '.join(known)}")
        required = ["weights", "drop_distortion", "gains", "power_budget", "symbol_budget"]
        for key in required:
            if key not in data:
                raise ConfigError(
                    f"problem: missing field {key!r}; required: {', '.join(required)}"
                )
        return cls(**dict(data))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of :meth:`to_dict`; also written to ``path`` when given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> Problem:
        """Read a problem written by :meth:`to_yaml` (or by hand); errors are ConfigError."""
        import yaml

        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"problem: {str(path)!r} cannot be read ({err.strerror})") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise ConfigError(f"problem: {str(path)!r} is not valid YAML{line}") from None
        if isinstance(data, Mapping) and "problem" in data and len(data) == 1:
            data = data["problem"]
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Problem:
        """A copy with some fields changed (validated again)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        data.update(changes)
        return type(self)(**data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        for f in fields(self):
            if not f.compare:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if type(a) is not type(b) or a.shape != b.shape or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class Allocation:
    """One decision for (P0): selected features and, for each, subchannel, modulation, power.

    Attributes:
        selected (int array [n]): Indices of the features sent (distinct, in ``0..N-1``); order is
            the caller's.
        subchannel (int array [n]): Subchannel carrying ``selected[j]`` (distinct, in ``0..K-1``).
        modulation (tuple of n names): Modulation of ``selected[j]``.
        power (float array [n]): Per-symbol transmit power ``p_j >= 0`` of that subchannel (units of
            ``P_tot``).

    The shape checks (equal lengths, distinct indices, finite non-negative powers) run in
    ``__post_init__``; checks against a problem (index ranges, budgets) are
    :meth:`violations` / :meth:`is_feasible`.
    """

    selected: np.ndarray
    subchannel: np.ndarray
    modulation: tuple[str, ...]
    power: np.ndarray

    def __post_init__(self) -> None:
        sel = np.asarray(self.selected, dtype=np.int64).reshape(-1)
        sub = np.asarray(self.subchannel, dtype=np.int64).reshape(-1)
        mods = self.modulation
        if isinstance(mods, str):
            mods = (mods,)
        mods = tuple(check_entry(m) for m in mods)
        try:
            pw = np.array(self.power, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise fail(
                "power", self.power, "a list of finite numbers >= 0", max_repr=_MAX_REPR
            ) from None
        n = sel.size
        if not (sub.size == n and len(mods) == n and pw.size == n):
            raise ConfigError(
                "allocation: selected, subchannel, modulation and power must have equal lengths "
                f"(got {sel.size}, {sub.size}, {len(mods)}, {pw.size})"
            )
        if np.unique(sel).size != n or np.any(sel < 0):
            raise fail(
                "selected", sel.tolist(), "distinct feature indices >= 0", max_repr=_MAX_REPR
            )
        if np.unique(sub).size != n or np.any(sub < 0):
            raise fail(
                "subchannel", sub.tolist(), "distinct subchannel indices >= 0", max_repr=_MAX_REPR
            )
        if not np.all(np.isfinite(pw)) or np.any(pw < 0):
            raise fail("power", pw.tolist(), "finite numbers >= 0", max_repr=_MAX_REPR)
        for arr in (sel, sub, pw):
            arr.setflags(write=False)
        object.__setattr__(self, "selected", sel)
        object.__setattr__(self, "subchannel", sub)
        object.__setattr__(self, "modulation", mods)
        object.__setattr__(self, "power", pw)

    @classmethod
    def send_nothing(cls) -> Allocation:
        """The empty allocation: every feature dropped (always feasible)."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), (), np.zeros(0))

    @property
    def n_selected(self) -> int:
        """Number of features sent."""
        return int(self.selected.size)

    def symbols_needed(self, problem: Problem) -> int:
        """``sum_j ceil(b_j / beta(m_j))`` channel symbols (``b_j`` of feature ``selected[j]``).

        With per-feature ``Q`` an index outside ``0..N-1`` raises ConfigError.
        """
        if not problem.per_feature_bits:
            b = problem.bits_per_feature
            return int(sum(entry_symbols(b, m) for m in self.modulation))
        if self.n_selected and self.selected.max() >= problem.n_features:
            raise fail("selected", self.selected.tolist(),
                       f"indices < N = {problem.n_features}", max_repr=_MAX_REPR)  # fmt: skip
        bits = problem.feature_bits[self.selected]
        return int(
            sum(entry_symbols(int(b), m) for b, m in zip(bits, self.modulation, strict=True))
        )

    def power_used(self) -> float:
        """``sum_j p_j``."""
        return float(self.power.sum())

    def violations(self, problem: Problem, rtol: float = 1e-9) -> list[str]:
        """Constraints of (P0) this allocation breaks (empty list when feasible).

        The power budget is checked with relative tolerance ``rtol`` (solvers hit it exactly
        up to rounding); the symbol budget, indices and the modulation set exactly.
        """
        out = []
        if self.n_selected and self.selected.max() >= problem.n_features:
            out.append(f"selected index >= N = {problem.n_features}")
        if self.n_selected and self.subchannel.max() >= problem.n_subchannels:
            out.append(f"subchannel index >= K = {problem.n_subchannels}")
        bad = sorted(set(self.modulation) - set(problem.modulations))
        if bad:
            out.append(f"modulation {', '.join(bad)} not in the problem's set")
        in_range = not self.n_selected or self.selected.max() < problem.n_features
        symbols = self.symbols_needed(problem) if in_range or not problem.per_feature_bits else 0
        if symbols > problem.symbol_budget:
            out.append(f"symbols {symbols} > S_max = {problem.symbol_budget:g}")
        used = self.power_used()
        if used > problem.power_budget * (1 + rtol) + 1e-300:
            out.append(f"power {used:.6g} > P_tot = {problem.power_budget:.6g}")
        return out

    def is_feasible(self, problem: Problem, rtol: float = 1e-9) -> bool:
        """True when :meth:`violations` is empty."""
        return not self.violations(problem, rtol)

    def sorted(self) -> Allocation:
        """The same allocation with entries in increasing feature index."""
        order = np.argsort(self.selected, kind="stable")
        return Allocation(
            self.selected[order],
            self.subchannel[order],
            tuple(self.modulation[j] for j in order),
            self.power[order],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: selected, subchannel, modulation, power (plain lists)."""
        return {
            "selected": [int(v) for v in self.selected],
            "subchannel": [int(v) for v in self.subchannel],
            "modulation": list(self.modulation),
            "power": [float(v) for v in self.power],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Allocation):
            return NotImplemented
        return (
            np.array_equal(self.selected, other.selected)
            and np.array_equal(self.subchannel, other.subchannel)
            and self.modulation == other.modulation
            and np.array_equal(self.power, other.power)
        )

    __hash__ = None  # type: ignore[assignment]


# ------------------------------------------------------------------------- random instances
def random_weights(n: int, profile: str, rng: np.random.Generator) -> np.ndarray:
    """Importance ``w[n]`` summing to 1 for a profile.

    - ``ordered``: squared exponential draws sorted descending (steep, ISFR-like, [DEFAULT]);
    - ``random``: the same draws unsorted (a conventional model's unordered importance);
    - ``flat``: ``1/n`` each.
    """
    profile = check_name("profile", profile, PROFILES)
    if n == 0:
        return np.zeros(0)
    if profile == "flat":
        return np.full(n, 1.0 / n)
    raw = rng.exponential(size=n) ** 2 + 1e-12
    if profile == "ordered":
        raw = np.sort(raw)[::-1]
    return raw / raw.sum()


def random_problem(
    n: int,
    k: int,
    seed: int | np.random.Generator | None = 0,
    fading: str = "rayleigh",
    profile: str = "ordered",
    snr_db: float = 10.0,
    eta: float = 0.5,
    rician_k: float = 3.0,
    **overrides: Any,
) -> Problem:
    """A random instance of the model of docs/method.md §4.3-§4.6.

    Gains ``g_k = |h_k|^2`` from :func:`channels.fading.fading_coefficients` (``awgn``: 1;
    ``rayleigh``: ``h ~ CN(0,1)``; ``rician``: K-factor ``rician_k``), ``sigma^2 = 1``,
    ``P_tot = SNR * K * sigma^2`` with ``SNR = 10^(snr_db/10)`` (docs/method.md §4.3),
    ``S_max = eta * N * L * Q / 2`` (all N features in QPSK times ``eta``, docs/method.md §4.6;
    with per-feature ``bits_per_scalar`` ``Q`` is the mean of ``Q_i``, so ``eta = 1`` still
    fits all N features in QPSK up to rounding),
    weights from :func:`random_weights`, drop distortion ``d_drop ~ U(0.05, 0.35)`` per scalar
    (``E[z^2]`` of a tanh-bounded feature). ``overrides`` replace any :class:`Problem` field.
    """
    from channels.fading import fading_coefficients

    n = check_int("n", n, 0, coerce=True, max_repr=_MAX_REPR)
    k = check_int("k", k, 0, coerce=True, max_repr=_MAX_REPR)
    snr_db = check_real(
        "snr_db", snr_db, coerce=True, allowed="a finite number (dB)", max_repr=_MAX_REPR
    )
    eta = check_real("eta", eta, 0, coerce=True, max_repr=_MAX_REPR)
    rng = np.random.default_rng(seed)
    fading = check_name("fading", fading, FADING_TYPES)
    h = fading_coefficients(fading, (k,), rng=rng, k_factor=float(rician_k))
    gains = np.abs(np.asarray(h)) ** 2
    weights = random_weights(n, profile, rng)
    drop = rng.uniform(0.05, 0.35, size=n)
    noise = float(overrides.pop("noise_power", 1.0))
    L = overrides.get("scalars_per_feature", 64)
    Q = check_bits_per_scalar("bits_per_scalar", overrides.get("bits_per_scalar", 8), n,
                              MAX_BITS_PER_SCALAR, coerce=True, max_repr=_MAX_REPR)  # fmt: skip
    if isinstance(Q, np.ndarray):  # the mean Q_i (exactly Q for a constant vector)
        Q = float(Q.sum()) / n if n else 0.0
    data: dict[str, Any] = {
        "weights": weights,
        "drop_distortion": drop,
        "gains": gains,
        "power_budget": 10.0 ** (float(snr_db) / 10.0) * k * noise,
        "symbol_budget": eta
        * n
        * check_int("scalars_per_feature", L, 1, coerce=True, max_repr=_MAX_REPR)
        * Q
        / 2.0,
        "noise_power": noise,
    }
    data.update(overrides)
    return Problem(**data)
