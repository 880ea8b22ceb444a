"""The ``harmony`` method: a Bayesian decision on a forecast of the true gains (imperfect CSI).

After HARMONY (Y. Luo et al., arXiv:2408.01000): forecast the full predictive distribution of
the quantity a decision depends on, then choose the provision by a Bayesian decision over that
distribution under a service-level constraint, instead of acting on a point estimate. Here
the uncertain quantity is the gain of each subchannel, known to the allocator only through an
imperfect estimate. [OUR CHOICE] in every step below: the paper provisions cloud resources
from a learned (Transformer + RealNVP) forecaster, and its decision's exact cost form is not
public; the forecaster here is the exact Gaussian posterior of the channel.

**Estimation model.** The allocator is handed the true gains ``g_k = |h_k|^2`` (the link has no
CSI-error option), so it draws its own estimate with a seeded generator (``seed``): the phase
``theta_k ~ U(0, 2 pi)`` makes ``h_k = sqrt(g_k) e^{j theta_k}``, and with ``e_k ~ CN(0, 1)``
the estimate is ``h^_k = a h_k + b e_k``:

- ``error="gaussian"``: ``a = 1``, ``b = sigma_e`` (``h^ = h + e``, ``e ~ CN(0, error_var)``);
- ``error="outdated"``: ``a = rho``, ``b = sqrt(1 - rho^2)`` (an estimate correlated ``rho``
  with the current channel, e.g. outdated by the Doppler correlation ``rho``).

**Forecast.** With the Rayleigh prior ``h ~ CN(0, 1)``, the posterior is
``h | h^ ~ CN(m h^, s^2)``, ``m = a / (a^2 + b^2)``, ``s^2 = b^2 / (a^2 + b^2)``; the true gain
``|h|^2`` is a scaled non-central chi-square. ``n_samples`` draws ``g_k^(t) = |m h^_k + s z_t|^2``
(``z_t ~ CN(0, 1)``) are the forecast of each subchannel.

**Decision.** The demand of subchannel ``k`` is ``y = 1 / g_k`` (the power it needs per unit of
SNR); provisioning ``A`` for it costs ``c_over (A - y)_+ + c_under (y - A)_+``, and the
service level asks ``P(y > A) <= sla_eps``. :func:`bayes_action` gives
``A* = max(F^-1(c_under / (c_over + c_under)), F^-1(1 - sla_eps))`` over the forecast, and the
allocator plans with the *design gain* ``g*_k = 1 / A*_k``: the base method (``base``, default
``hierarchical``) solves (P0) with the design gains, so each sent feature's modulation and power
give at least its planned SNR, and so at most its planned BER, unless the true gain falls below
the design gain: that outage has probability at most ``sla_eps`` under the forecast (the SLA
quantile is the distribution-free order statistic, :func:`bayes_action`). ``decision="plug-in"``
plans with the estimate ``|h^_k|^2`` instead (the point-forecast baseline). The allocation is
then scored on the true gains; budgets do not depend on gains, so it is feasible.

Batches (:func:`harmony_batch`): an integer ``seed`` draws the same ``theta``, ``e`` and ``z`` for
every frame (frame ``b`` equals ``harmony`` of that frame with that seed; ``None``: fresh
draws per frame), the design gains of all frames are computed at once and the base method runs
through ``optim.solve_batch``.

Examples:
    >>> import numpy as np
    >>> from optim.problem import random_problem
    >>> p = random_problem(6, 6, seed=0)
    >>> harmony(p, seed=1).is_feasible(p)
    True
    >>> bool(np.allclose(design_gains(p.gains[None], error_var=0.0)[0], p.gains))
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from channels.errors import ConfigError, check_int, check_name, check_real, check_seed, fail
from optim.batch.score import frame_objectives
from optim.batch.solve import BatchResult, check_gains, solve_batch
from optim.problem import Allocation, Problem

ERROR_MODELS = ("gaussian", "outdated")
DECISIONS = ("bayes", "plug-in")
BASES = ("hierarchical", "passive", "ui-opt", "hungarian", "equal-power", "lowest-order")
"""Deterministic methods ``harmony`` may plan with (each batched by ``optim.solve_batch``)."""
_DEFAULTS = {
    "error": "gaussian",
    "error_var": 0.1,
    "rho": 0.9,
    "c_over": 1.0,
    "c_under": 1.0,
    "sla_eps": 0.1,
    "n_samples": 999,
    "decision": "bayes",
}
_CHUNK = 1 << 21  # forecast samples held at once (n_samples x frames x K)


def bayes_action(
    samples: Any,
    c_over: float = 1.0,
    c_under: float = 1.0,
    sla_eps: float | None = None,
    axis: int = 0,
) -> np.ndarray:
    """The Bayes provision of a demand forecast by ``samples`` along ``axis``.

    ``A* = max(A_cost, A_sla)``. ``A_cost`` minimises the expected cost
    ``E[c_over (A - y)_+ + c_under (y - A)_+]`` under the empirical distribution of the
    samples: the smallest sample with empirical CDF ``>= c_under / (c_over + c_under)`` (the
    newsvendor quantile). ``A_sla`` is the ``ceil((1 - sla_eps)(n + 1))``-th smallest of the
    ``n`` samples, so a fresh draw from the same distribution exceeds it with probability
    ``<= sla_eps`` (exactly ``floor(sla_eps (n + 1)) / (n + 1)`` for continuous distributions);
    ``+inf`` when ``n`` is too small for that (``(1 - sla_eps)(n + 1) > n``); no constraint
    for ``sla_eps=None``.

    Args:
        samples: float array, the forecast (NaN not allowed).
        c_over: cost per unit of over-provision, ``> 0``.
        c_under: cost per unit of under-provision, ``> 0``.
        sla_eps: allowed violation probability in ``(0, 1)``, or None.
        axis: the sample axis.

    Returns:
        float64 array: ``samples``' shape without ``axis``.

    Examples:
        >>> float(bayes_action(np.arange(1.0, 100.0), c_over=1.0, c_under=3.0))
        75.0
        >>> float(bayes_action(np.arange(1.0, 100.0), sla_eps=0.1))
        90.0
    """
    c_over = check_real("c_over", c_over, 0, open_low=True)
    c_under = check_real("c_under", c_under, 0, open_low=True)
    if sla_eps is not None:
        sla_eps = check_real("sla_eps", sla_eps, 0, 1, open_low=True, open_high=True)
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise fail("samples", samples, "at least one sample along axis")
    level = c_under / (c_over + c_under)
    # smallest sample with empirical CDF >= level (a tiny slack absorbs level * n rounding)
    rank = min(max(math.ceil(level * n - 1e-9 * n), 1), n)
    out = np.take(x, rank - 1, axis=axis)
    if sla_eps is not None:
        rank = math.ceil((1.0 - sla_eps) * (n + 1) - 1e-9 * (n + 1))
        sla = np.take(x, rank - 1, axis=axis) if rank <= n else np.full(out.shape, np.inf)
        out = np.maximum(out, sla)
    return np.asarray(out, dtype=np.float64)


def estimate_coefficients(error: str, error_var: float, rho: float) -> tuple[float, float]:
    """``(a, b)`` of the estimate ``h^ = a h + b e`` (module docstring)."""
    if error == "gaussian":
        return 1.0, math.sqrt(error_var)
    return rho, math.sqrt(max(0.0, 1.0 - rho * rho))


def posterior(a: float, b: float) -> tuple[float, float]:
    """``(m, s)``: ``h | h^ ~ CN(m h^, s^2)`` under the prior ``h ~ CN(0, 1)``."""
    power = a * a + b * b
    return a / power, math.sqrt(b * b / power)


def _complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``CN(0, 1)`` draws of ``shape``."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * math.sqrt(0.5)


def design_gains(
    gains: Any,
    *,
    error: str = "gaussian",
    error_var: float = 0.1,
    rho: float = 0.9,
    c_over: float = 1.0,
    c_under: float = 1.0,
    sla_eps: float | None = 0.1,
    n_samples: int = 999,
    decision: str = "bayes",
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """The gains ``harmony`` plans with, for true gains ``[B, K]`` (module docstring).

    An integer ``seed`` (or a Generator) draws one phase, estimation noise and forecast noise
    ``[K]`` / ``[n_samples, K]`` shared by every frame (so frame ``b`` is what one frame with
    that seed gets); ``None`` draws them afresh for every frame (independent frames).

    Returns:
        float64 [B, K], the design gains (``>= 0``).
    """
    opts = check_options(error, error_var, rho, c_over, c_under, sla_eps, n_samples, decision)
    arr = check_gains(gains)
    frames, k = arr.shape
    rng = np.random.default_rng(check_seed("seed", seed, generator=True))
    shared = seed is not None
    shape = (k,) if shared else (frames, k)
    theta = rng.uniform(0.0, 2.0 * math.pi, size=shape)
    e = _complex_normal(rng, shape)
    z = _complex_normal(rng, (opts["n_samples"], 1, k)) if shared else None
    a, b = estimate_coefficients(opts["error"], opts["error_var"], opts["rho"])
    h_hat = a * (np.sqrt(arr) * np.exp(1j * theta)) + b * e  # [B, K]
    if opts["decision"] == "plug-in":
        return np.abs(h_hat) ** 2
    m, s = posterior(a, b)
    if s == 0.0:  # perfect CSI: the forecast is the true gain
        return np.abs(m * h_hat) ** 2
    out = np.empty((frames, k))
    step = max(1, _CHUNK // max(1, opts["n_samples"] * k))
    for lo in range(0, frames, step):
        rows = h_hat[lo : lo + step]
        noise = z if shared else _complex_normal(rng, (opts["n_samples"], *rows.shape))
        forecast = np.abs(m * rows[None] + s * noise) ** 2
        with np.errstate(divide="ignore"):
            need = bayes_action(1.0 / forecast, c_over, c_under, sla_eps, axis=0)
            out[lo : lo + step] = 1.0 / need
    return out


def check_options(
    error: Any,
    error_var: Any,
    rho: Any,
    c_over: Any,
    c_under: Any,
    sla_eps: Any,
    n_samples: Any,
    decision: Any,
) -> dict[str, Any]:
    """The estimation and decision options, validated (one-line ConfigError)."""
    return {
        "error": check_name("error", error, ERROR_MODELS),
        "error_var": check_real("error_var", error_var, 0),
        "rho": check_real("rho", rho, 0, 1),
        "c_over": check_real("c_over", c_over, 0, open_low=True),
        "c_under": check_real("c_under", c_under, 0, open_low=True),
        "sla_eps": None
        if sla_eps is None
        else check_real("sla_eps", sla_eps, 0, 1, open_low=True, open_high=True),
        "n_samples": check_int("n_samples", n_samples, 1, 100_000),
        "decision": check_name("decision", decision, DECISIONS),
    }


def _base(base: Any, base_options: Any) -> tuple[str, dict[str, Any]]:
    name = check_name("base", base, BASES)
    if base_options is None:
        return name, {}
    if not isinstance(base_options, Mapping):
        raise fail("base_options", base_options, "a mapping of the base method's options")
    return name, dict(base_options)


def harmony(
    problem: Problem,
    *,
    error: str = "gaussian",
    error_var: float = 0.1,
    rho: float = 0.9,
    c_over: float = 1.0,
    c_under: float = 1.0,
    sla_eps: float | None = 0.1,
    n_samples: int = 999,
    decision: str = "bayes",
    base: str = "hierarchical",
    base_options: Mapping[str, Any] | None = None,
    seed: int | np.random.Generator | None = 0,
) -> Allocation:
    """The ``harmony`` allocation of one problem (module docstring).

    Args:
        problem: the instance; its gains are the true ones, which the method does not see.
        error: estimation model, ``gaussian`` (``h^ = h + e``) or ``outdated`` (correlation
            ``rho``).
        error_var: ``sigma_e^2 >= 0`` of the gaussian model.
        rho: correlation in ``[0, 1]`` of the outdated model.
        c_over, c_under: costs ``> 0`` of over- and under-provisioning.
        sla_eps: allowed outage probability per subchannel in ``(0, 1)``, or None.
        n_samples: forecast samples per subchannel (``1..100000``).
        decision: ``bayes`` (the Bayes action) or ``plug-in`` (the estimate as if true).
        base: the method that plans with the design gains, one of :data:`BASES`.
        base_options: options of ``base``.
        seed: seed of the estimate and forecast draws (int, Generator or None).

    Returns:
        A feasible :class:`~optim.problem.Allocation`.

    Raises:
        ConfigError: a bad option value, before any work.
    """
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem: {type(problem).__name__} is invalid; allowed: optim.Problem")
    name, options = _base(base, base_options)
    design = design_gains(
        problem.gains[None, :], error=error, error_var=error_var, rho=rho, c_over=c_over,
        c_under=c_under, sla_eps=sla_eps, n_samples=n_samples, decision=decision, seed=seed,
    )  # fmt: skip
    from optim.methods import solve

    return solve(problem.replace(gains=design[0]), name, **options).allocation


def harmony_batch(template: Problem, gains: Any, **options: Any) -> BatchResult:
    """``harmony`` for every frame of ``gains [B, K]``: design gains at once, the base method
    through ``optim.solve_batch``, objectives on the true gains."""
    allowed = (
        "error", "error_var", "rho", "c_over", "c_under", "sla_eps", "n_samples", "decision",
        "base", "base_options", "seed",
    )  # fmt: skip
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"option: {key!r} is not accepted by method 'harmony'; allowed: "
                + ", ".join(allowed)
            )
    name, base_options = _base(
        options.pop("base", "hierarchical"), options.pop("base_options", None)
    )
    arr = check_gains(gains, template)
    check_options(**{key: options.get(key, value) for key, value in _DEFAULTS.items()})
    solve_batch(template, np.zeros((0, arr.shape[1])), name, **base_options)  # its checks
    design = design_gains(arr, **options)
    out = solve_batch(template, design, name, **base_options)
    if arr.shape[1] != template.n_subchannels:
        template = template.replace(gains=np.zeros(arr.shape[1]))
    objective = frame_objectives(
        template, arr, out.selected, out.subchannel, out.modulation, out.power
    )
    return BatchResult(
        "harmony", out.selected, out.subchannel, out.modulation, out.power, objective
    )
