"""Frame-independent set-up of the batched solver: options checked, method resolved, and the
arrays every frame shares (ranking, prefix limit, pattern lists, decision weights) built once.

A batch shares its template :class:`optim.problem.Problem` (all fields but the gains), so
everything the per-frame solver derives from those fields is the same for every frame; only
the matching, the powers and the scores depend on the gains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from channels.errors import ConfigError, check_flag, check_int, check_name, check_real, check_seed
from channels.theory import ber_terms, bound_coefficients
from optim.baselines import SOLVER_OPTIONS
from optim.distortion import feature_terms
from optim.modulation import count_monotone_patterns, monotone_patterns
from optim.problem import Problem
from optim.selection import max_selectable, priority_order

MATCHINGS = ("greedy", "hungarian", "random")
POWERS = ("closed-form", "bisection", "cvxpy", "equal")
REFINE_STEPS = ("power", "modulation", "matching", "selection")
PIPELINE_METHODS = {
    "hierarchical": {},
    "passive": {"ordered_prior": False},
    "ui-opt": {"uniform": True},
    "hungarian": {"matching": "hungarian"},
    "equal-power": {"power": "equal"},
    "random-matching": {"matching": "random", "refine_steps": ("power", "modulation", "selection")},
}
"""The hierarchical family: method name -> the options it fixes."""
FIXED_METHODS = ("lowest-order", "ui-ep")
BATCH_METHODS = (*PIPELINE_METHODS, *FIXED_METHODS, "exact")
_CHUNK_ELEMENTS = 1 << 17  # the per-frame solver scores padded patterns in chunks this size


@dataclass
class Plan:
    """What :func:`optim.batch.solve.solve_batch` runs: ``kind`` ("pipeline" | "fixed"), the
    shared arrays in ``arrays`` and the seed of the random matchings (``random``)."""

    kind: str
    arrays: dict[str, Any] = field(default_factory=dict)
    random: bool = False
    seed: int | None = None


def _unsupported(name: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{name}: {value!r} is not supported by solve_batch; allowed: {allowed}")


def _check_options(method: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"option: {key!r} is not accepted by method {method!r}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )


def _batch_seed(seed: Any) -> int | None:
    seed = check_seed("seed", seed, generator=True)
    if isinstance(seed, np.random.Generator):
        raise _unsupported("seed", "Generator", "an integer >= 0 or None")
    return None if seed is None else int(seed)


def model_arrays(problem: Problem) -> dict[str, Any]:
    """BER tables (Q-term weights and scales [M, T], bound ``A``, ``B`` [M]) and the
    problem's own objective terms (``w``, ``floor``, ``slope``, ``drop`` [N])."""
    terms = [ber_terms(m) for m in problem.modulations]
    width = max(len(w) for w, _ in terms)
    qw = np.zeros((len(terms), width))
    qs = np.zeros((len(terms), width))
    for i, (w, b) in enumerate(terms):
        qw[i, : len(w)] = w
        qs[i, : len(b)] = b
    coef = np.array([bound_coefficients(m) for m in problem.modulations], dtype=np.float64)
    ft = feature_terms(problem)
    return {
        "qw": qw,
        "qs": qs,
        "ba": np.ascontiguousarray(coef[:, 0]),
        "bb": np.ascontiguousarray(coef[:, 1]),
        "exact": problem.ber_model == "exact",
        "w": np.ascontiguousarray(problem.weights, dtype=np.float64),
        "floor": np.ascontiguousarray(ft.floor, dtype=np.float64),
        "slope": np.ascontiguousarray(ft.slope, dtype=np.float64),
        "drop": np.ascontiguousarray(ft.drop, dtype=np.float64),
    }


def pipeline_plan(problem: Problem, method: str, options: dict[str, Any]) -> Plan:
    """Check the hierarchical family's options as the per-frame solver does, refuse those the
    batched kernel does not run, and build the shared arrays."""
    fixed = PIPELINE_METHODS[method]
    allowed = tuple(
        k for k in SOLVER_OPTIONS
        if not (k in fixed or (k == "refine_steps" and method == "random-matching"))
    )  # fmt: skip
    _check_options(method, options, allowed)
    get = options.get
    matching = check_name("matching", fixed.get("matching", get("matching", "greedy")), MATCHINGS)
    power = check_name("power", fixed.get("power", get("power", "closed-form")), POWERS)
    patterns = check_name("patterns", get("patterns", "auto"), ("auto", "all", "fast"))
    n_search = check_name("n_search", get("n_search", "auto"), ("auto", "all", "coarse"))
    early_stop = bool(check_flag("early_stop", get("early_stop", False), allowed="true, false"))
    refine = check_flag("refine", get("refine", True), none_ok=True,
                        allowed="true, false or null (auto)")  # fmt: skip
    check_int("patience", get("patience", 2), 1)
    check_int("refine_iters", get("refine_iters", 10), 0)
    steps = get("refine_steps", REFINE_STEPS)
    steps = (steps,) if isinstance(steps, str) else steps
    try:
        for s in steps:
            check_name("refine_steps", s, REFINE_STEPS)
    except TypeError:
        raise ConfigError(f"refine_steps: {steps!r} is invalid; allowed: a list of "
                          f"{', '.join(REFINE_STEPS)}") from None  # fmt: skip
    iters = check_int("matching_iters", get("matching_iters", 5), 0)
    if get("refine_starts") is not None:
        check_int("refine_starts", get("refine_starts"), 1)
    margin = get("start_margin")
    check_real("start_margin", np.inf if margin is None else margin, 0, allow_inf=True)
    check_int("local_search_max", get("local_search_max", 64), 0)
    if get("dual_starts") is not None:
        check_int("dual_starts", get("dual_starts"), 0)
    check_int("dual_max", get("dual_max", 64), 0)
    max_patterns = check_int("max_patterns", get("max_patterns", 1500), 1)
    seed = _batch_seed(get("seed"))
    if power not in ("closed-form", "equal"):
        raise _unsupported("power", power, "closed-form, equal")
    if early_stop:
        raise _unsupported("early_stop", True, "false")
    if patterns == "fast":
        raise _unsupported("patterns", patterns, "auto, all")
    # -- the frame-independent part of solve_hierarchical
    n_feat = problem.n_features
    weights = problem.weights if not fixed.get("uniform") else np.full(
        n_feat, 1.0 / max(n_feat, 1))  # fmt: skip
    weights = np.asarray(weights, dtype=np.float64)
    order = priority_order(weights, fixed.get("ordered_prior", True))
    if not problem.uniform_bits:  # a feature that fits in no modulation is ranked last
        fits = problem.symbol_table[order, -1] <= problem.symbol_budget + 1e-9
        order = np.concatenate([order[fits], order[~fits]])
    n_max = max_selectable(problem, order)
    if n_search == "coarse" or n_max > 128:
        raise _unsupported("n_search", n_search, "auto or all with at most 128 features sent")
    symbols = problem.symbols_of(order)
    n_mod = len(problem.modulations)
    lists = []
    for n in range(n_max + 1):
        if patterns == "auto" and count_monotone_patterns(n, n_mod) > max_patterns:
            raise _unsupported(
                "patterns", patterns,
                f"'all', or at most max_patterns = {max_patterns} monotone patterns per prefix "
                f"(n = {n} has {count_monotone_patterns(n, n_mod)})",
            )  # fmt: skip
        lists.append(np.asarray(monotone_patterns(n, symbols, problem.symbol_budget)))
    pats, row_w, n_start, n_count = _pattern_rows(lists, n_max)
    terms = feature_terms(problem)
    w_r = weights[order]
    wdrop = w_r * terms.drop[order]
    tail = np.concatenate([np.cumsum(wdrop[::-1])[::-1], [0.0]])
    arrays = {
        "order": order.astype(np.int64),
        "ws": np.ascontiguousarray(w_r * terms.slope[order]),
        "wf": np.ascontiguousarray(w_r * terms.floor[order]),
        "tail": np.ascontiguousarray(tail, dtype=np.float64),
        "n_max": int(n_max),
        "pats": pats,
        "row_w": row_w,
        "n_start": n_start,
        "n_count": n_count,
        "matching": {"greedy": 0, "random": 1, "hungarian": 2}[matching],
        "power_mode": 1 if power == "equal" else 0,
        "iters": int(iters),
    }
    if refine is None or refine:
        arrays["refine"] = _refine_config(
            problem, fixed, options, weights, n_max, matching, power, tuple(steps)
        )
    return Plan("pipeline", arrays, matching == "random", seed)


def _refine_config(problem, fixed, options, weights, n_max, matching, power, steps):  # noqa: ANN001, ANN202
    """(Shared, Config) of :mod:`optim.batch.refine` for the resolved options."""
    from optim.batch.power_memo import no_memo
    from optim.batch.refine import Config, Shared
    from optim.ber_model import ber_model
    from optim.dual import DEFAULT_OFFSETS, WIDE_MAX, WIDE_OFFSETS

    get = options.get
    if "refine_steps" in fixed:
        steps = tuple(fixed["refine_steps"])
    equal = power == "equal"
    st_power = "power" in steps and not equal
    refine_starts = get("refine_starts")
    if refine_starts is None:
        refine_starts = 5 if n_max <= 6 else 3 if n_max <= 10 else 1
    dual = get("dual_starts")
    if dual is None:
        dual = 3 if n_max <= 10 else 1
    margin = get("start_margin")
    kp = min(problem.n_features, problem.n_subchannels)
    applies = (
        not equal
        and matching != "random"
        and all(s in steps for s in ("modulation", "matching", "selection"))
        and kp <= int(get("dual_max", 64))
    )
    cfg = Config(
        True, int(get("refine_iters", 10)), st_power, "modulation" in steps,
        "matching" in steps, "selection" in steps, int(refine_starts),
        float(np.inf if margin is None else margin), int(get("local_search_max", 64)),
        int(dual), bool(applies), bool(equal), bool(n_max <= 8),
    )  # fmt: skip
    terms = feature_terms(problem)
    w = np.ascontiguousarray(weights, dtype=np.float64)

    def arr(x):  # noqa: ANN001, ANN202
        return np.ascontiguousarray(x, dtype=np.float64)

    coef = np.array([bound_coefficients(m) for m in problem.modulations], dtype=np.float64)
    tables = model_arrays(problem)
    shared = Shared(
        w, arr(terms.slope), arr(terms.floor), arr(terms.drop), arr(w * terms.slope),
        arr(w * terms.floor), arr(w * terms.drop), arr(w * (terms.floor - terms.drop)),
        float((w * terms.drop).sum()), float(w @ terms.drop), arr(problem.symbol_table),
        float(problem.symbol_budget), float(problem.power_budget), float(problem.noise_power),
        arr(coef[:, 0]), arr(coef[:, 1]), tables["qw"], tables["qs"], tables["ba"], tables["bb"],
        bool(tables["exact"]), ber_model(problem),
        np.argsort(-(w * terms.drop), kind="stable").astype(np.int64),
        arr(WIDE_OFFSETS if kp <= WIDE_MAX else DEFAULT_OFFSETS), no_memo(problem.n_features + 1),
    )  # fmt: skip
    return shared, cfg


def _pattern_rows(lists: list[np.ndarray], n_max: int):  # noqa: ANN202
    """Pad every prefix's patterns into one table [R, W] (-1 beyond ``n``) with each row's
    scoring width: the widest prefix of its chunk, exactly as the per-frame solver groups
    prefixes into padded chunks of about ``_CHUNK_ELEMENTS`` entries (the width sets the
    rounding of its sums)."""
    wmax = max(n_max, 1)
    total = sum(len(p) for p in lists)
    pats = np.full((max(total, 1), wmax), -1, np.int64)
    row_w = np.zeros(max(total, 1), np.int64)
    n_start = np.zeros(n_max + 1, np.int64)
    n_count = np.zeros(n_max + 1, np.int64)
    r = 0
    pending: list[int] = []
    size = 0

    def flush() -> None:
        width = max(pending)
        for n in pending:
            row_w[n_start[n] : n_start[n] + n_count[n]] = width
        pending.clear()

    for n, p in enumerate(lists):
        n_start[n] = r
        n_count[n] = len(p)
        if len(p) == 0:
            continue
        pats[r : r + len(p), :n] = p
        r += len(p)
        width = max([n, *pending])
        if pending and (size + len(p)) * width > _CHUNK_ELEMENTS:
            flush()
            size = 0
        pending.append(n)
        size += len(p)
    if pending:
        flush()
    return pats, row_w, n_start, n_count


def _lowest_fitting(problem: Problem, n: int) -> int:
    """The lowest order whose symbols fit for the first ``n`` features (as lowest-order)."""
    if problem.uniform_bits:
        fits = np.flatnonzero(n * problem.symbols_per_feature <= problem.symbol_budget + 1e-9)
    else:
        fits = np.flatnonzero(problem.symbol_table[:n].sum(axis=0) <= problem.symbol_budget + 1e-9)
    return int(fits[0])


def fixed_plan(problem: Problem, method: str, options: dict[str, Any]) -> Plan:
    """``lowest-order`` (options power, seed) and ``ui-ep`` (option seed)."""
    allowed = ("power", "seed") if method == "lowest-order" else ("seed",)
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"option: got an unexpected keyword argument {key!r} (method {method!r})"
            )
    power = "equal"
    seed = None
    if method == "lowest-order":
        power = str(options.get("power", "closed-form")).strip().lower()
        if power not in POWERS:
            raise ConfigError(
                f"power: {power!r} is not one of closed-form, bisection, cvxpy, equal"
            )
        if power not in ("closed-form", "equal"):
            raise _unsupported("power", power, "closed-form, equal")
    else:
        seed = options.get("seed")
        if seed is not None:
            if isinstance(seed, np.random.Generator):
                raise _unsupported("seed", "Generator", "an integer >= 0 or None")
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ConfigError(f"seed: {seed!r} is invalid; allowed: an integer >= 0")
            seed = int(seed)
    n = max_selectable(problem, np.arange(problem.n_features))
    m = _lowest_fitting(problem, n) if n else 0
    terms = feature_terms(problem)
    coef = np.array([bound_coefficients(x) for x in problem.modulations], dtype=np.float64)
    w = problem.weights
    alpha = np.ascontiguousarray(w[:n] * terms.slope[:n] * coef[m, 0], dtype=np.float64)
    arrays = {
        "n": int(n),
        "m": int(m),
        "alpha": alpha if n else np.zeros(1),
        "matching": 1 if method == "ui-ep" else 0,
        "power_mode": 1 if power == "equal" else 0,
    }
    return Plan("fixed", arrays, method == "ui-ep", seed)
