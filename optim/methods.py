"""The registry of allocation methods and :func:`solve`, the one way to run them by name.

A method is ``f(problem, **options) -> Allocation``, or a result with an ``allocation`` and a
``status()`` dict (a certificate, e.g. ``optimal`` and ``gap`` of ``exact``: it becomes
:attr:`SolveResult.status`). :data:`METHODS` maps each name to a :class:`Method` (callable,
one-line description, source). ``exact`` is registered lazily: its module ``optim.exact`` is
imported only when the method is first used, so everything else works without it. Adding a
method is one function and one :meth:`MethodRegistry.register` line.

Examples:
    >>> from optim.problem import random_problem
    >>> result = solve(random_problem(4, 4, seed=0), "lowest-order")
    >>> result.method, result.allocation.n_selected
    ('lowest-order', 4)
    >>> "hierarchical" in available_methods()
    True
"""

from __future__ import annotations

import importlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from channels.errors import ConfigError, check_name
from optim import baselines
from optim.distortion import objective
from optim.problem import Allocation, Problem

Solver = Callable[..., Allocation]


@dataclass(frozen=True)
class Method:
    """A registered method: ``name``, one-line ``description``, ``source`` and its loader."""

    name: str
    description: str
    source: str
    loader: Callable[[], Solver]
    randomised: bool = False
    batch_loader: Callable[[], Callable[..., Any]] | None = None

    @property
    def func(self) -> Solver:
        """The solver function (imports a lazily registered module on first use)."""
        return self.loader()

    @property
    def batch(self) -> Callable[..., Any] | None:
        """The method's own ``solve_batch`` function ``f(template, gains, **options) ->
        BatchResult`` (imported on first use), or None: the compiled batch solvers of
        :mod:`optim.batch` run it, if any."""
        return None if self.batch_loader is None else self.batch_loader()

    def __call__(self, problem: Problem, **options: Any) -> Allocation:
        return _unpack(self.func(problem, **options))[0]


def _unpack(out: Any) -> tuple[Allocation, dict[str, Any] | None]:
    """A method's return value as ``(allocation, status or None)``."""
    if isinstance(out, Allocation):
        return out, None
    return out.allocation, dict(out.status())


class MethodRegistry(Mapping[str, Method]):
    """Name -> :class:`Method`; unknown names raise ConfigError listing the known ones."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def register(
        self, name: str, description: str, source: str, randomised: bool = False
    ) -> Callable[[Solver], Solver]:
        """Decorator registering ``func`` under ``name``."""

        def deco(func: Solver) -> Solver:
            self._add(Method(name, description, source, lambda: func, randomised))
            return func

        return deco

    def register_lazy(
        self,
        name: str,
        target: str,
        description: str,
        source: str,
        randomised: bool = False,
        batch: str | None = None,
    ) -> None:
        """Register ``"module:function"`` without importing it until first use; ``batch``:
        the ``"module:function"`` :func:`optim.solve_batch` runs for it (:attr:`Method.batch`).
        """

        def loader(spec: str) -> Callable[[], Any]:
            module_name, _, attr = spec.partition(":")

            def load() -> Any:
                try:
                    module = importlib.import_module(module_name)
                except ModuleNotFoundError as err:
                    if err.name != module_name:
                        raise
                    raise ConfigError(
                        f"method: {name!r} is unavailable ({module_name} is not installed)"
                    ) from None
                return getattr(module, attr)

            return load

        batch_loader = None if batch is None else loader(batch)
        self._add(Method(name, description, source, loader(target), randomised, batch_loader))

    def _add(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"method {method.name!r} is already registered")
        self._methods[method.name] = method

    def __getitem__(self, name: str) -> Method:
        return self._methods[check_name("method", name, tuple(self._methods))]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)


METHODS = MethodRegistry()
_SRC = "docs/method.md §6.2; optim.baselines"
METHODS.register(
    "hierarchical",
    "Proposed SP1-SP4 hierarchical decoupling with the ordered prior",
    "docs/method.md §5.4; optim.hierarchical",
)(baselines.hierarchical)
METHODS.register(
    "ui-ep",
    "Uniform importance, equal power, one modulation, random matching",
    _SRC,
    randomised=True,
)(baselines.ui_ep)
METHODS.register("ui-opt", "Uniform importance for every decision, same SP1-SP4 solver", _SRC)(
    baselines.ui_opt
)
METHODS.register("passive", "Features sorted by importance, then the SP1-SP4 solver", _SRC)(
    baselines.passive
)
METHODS.register("hungarian", "SP1-SP4 with Hungarian-improved channel matching", _SRC)(
    baselines.hungarian
)
METHODS.register("equal-power", "SP1-SP3 with equal power P_tot/n per selected feature", _SRC)(
    baselines.equal_power_method
)
METHODS.register(
    "random-matching", "SP2-SP4 with a seeded random channel matching", _SRC, randomised=True
)(baselines.random_matching_method)
METHODS.register(
    "lowest-order", "Largest prefix that fits, all at the lowest order that fits; SP4 power", _SRC
)(baselines.lowest_order)
METHODS.register_lazy(
    "exact",
    "optim.exact:solve_exact_result",
    "Reference optimum: enumeration (N <= 8) / certified branch and bound",
    "issue 3 item 4; optim.exact",
)
METHODS.register_lazy(
    "dhondt",
    "optim.apportion:dhondt",
    "D'Hondt apportionment of symbols and power levels by importance votes",
    "arXiv:2411.05196; optim.apportion",
    batch="optim.apportion:dhondt_batch",
)
METHODS.register_lazy(
    "harmony",
    "optim.harmony:harmony",
    "Bayesian decision on a forecast of the true gains under imperfect CSI",
    "arXiv:2408.01000; optim.harmony",
    randomised=True,
    batch="optim.harmony:harmony_batch",
)
METHODS.register_lazy(
    "polca",
    "optim.polca:polca",
    "UCB priority-queue search over allocations with an epsilon-net memory",
    "arXiv:2603.14769; optim.polca",
    randomised=True,
    batch="optim.polca:polca_batch",
)

# Learned allocation (optim.learned): a policy trained with one of the RL objectives decides
# every frame; torch is imported on first use.
RL_KINDS = {
    "pg": ("plain advantage-weighted policy gradient (PPO-style epochs)", "arXiv:1707.06347"),
    "revibranch": ("importance-weighted reward redistribution", "arXiv:2508.17452"),
    "alp": ("adaptive layer-wise perturbation in the ratio", "arXiv:2603.19470"),
    "hapo": ("entropy-adaptive clipping and token-level advantages", "arXiv:2509.16591"),
    "grpo-guard": ("ratio normalisation and gradient reweighting", "arXiv:2510.22319"),
    "policyflow": ("approximate flow-policy ratios, Brownian regulariser", "arXiv:2602.01156"),
    "spa-rl": ("stepwise progress attribution (learned per-step credit)", "arXiv:2505.20732"),
    "drpo": ("decoupled positive/negative rewards with length weights", "arXiv:2510.04474"),
    "dhpo": ("mixed token- and sequence-level ratios, branch clipping", "arXiv:2601.05607"),
}
"""``rl:<kind>`` methods: kind -> (what trains the policy, paper)."""
for _kind, (_what, _paper) in RL_KINDS.items():
    _py = _kind.replace("-", "_")
    METHODS.register_lazy(
        f"rl:{_kind}",
        f"optim.learned.method:solve_{_py}",
        f"Learned policy deciding feature by feature, trained by {_what}",
        f"{_paper}; optim.learned",
        batch=f"optim.learned.method:batch_{_py}",
    )


def available_methods() -> dict[str, str]:
    """Registered method names -> one-line descriptions, in registration order."""
    return {name: m.description for name, m in METHODS.items()}


@dataclass(frozen=True)
class SolveResult:
    """Outcome of :func:`solve`.

    ``objective`` is :func:`optim.distortion.objective` of ``allocation`` (the problem's own
    weights, distortion and BER model), ``seconds`` the wall time of the method alone,
    ``feasible`` whether the allocation meets every constraint of (P0). ``status``: the
    method's certificate when it gives one, else None; for ``exact``: ``optimal`` (proven
    optimal within its tolerance), ``lower_bound`` (proven, on the optimum), ``gap``
    (``(objective - lower_bound) / objective``) and ``stopped_by`` (None, ``"time_limit"`` or
    ``"node_limit"``: a limit stopped the search, and ``optimal`` says whether the bound
    proves the answer anyway).
    """

    method: str
    objective: float
    allocation: Allocation
    seconds: float
    feasible: bool
    status: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: method, objective, selected, subchannel, modulation, power, seconds,
        then the ``status`` entries if any."""
        out: dict[str, Any] = {"method": self.method, "objective": float(self.objective)}
        out.update(self.allocation.to_dict())
        out["seconds"] = float(self.seconds)
        out.update(self.status or {})
        return out


def _accepts(func: Solver, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


def solve(problem: Problem, method: str = "hierarchical", **options: Any) -> SolveResult:
    """Run a registered method on ``problem`` and score its allocation.

    ``options`` go to the method (e.g. ``seed`` for randomised ones, ``refine`` for the
    hierarchical family); an option the method does not accept raises ConfigError, except
    ``seed=None``, which is dropped. Raises ConfigError for an unknown method.
    """
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem: {type(problem).__name__} is invalid; allowed: optim.Problem")
    entry = METHODS[method]
    func = entry.func
    if options.get("seed", 0) is None and not _accepts(func, "seed"):
        options.pop("seed")
    try:
        inspect.signature(func).bind(problem, **options)
    except TypeError as err:
        raise ConfigError(f"option: {err} (method {entry.name!r})") from None
    except ValueError:
        pass
    start = time.perf_counter()
    allocation, status = _unpack(func(problem, **options))
    seconds = time.perf_counter() - start
    value = objective(problem, allocation)
    if not math.isfinite(value):  # pragma: no cover - objective() is finite by construction
        raise ConfigError(f"objective: {value!r} is invalid; allowed: finite values")
    return SolveResult(
        entry.name, value, allocation, seconds, allocation.is_feasible(problem), status
    )
