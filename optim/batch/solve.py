"""``solve_batch``: one allocation problem per frame, many frames in one compiled call.

A sweep over fading channels solves (P0) once per channel draw with everything but the gains
fixed. :func:`solve_batch` takes those shared fields as a *template* and the gains of all
frames as one array, checks everything before any work, and runs the frames in a
Numba-parallel loop (:mod:`optim.batch.pipeline`), with no Python per frame. Frame ``b`` of
the result equals ``optim.solve(template.replace(gains=gains[b]), method, **options)``: the
same selection, subchannels and modulations, the objective within rounding (the tests
assert 1e-9 relative over thousands of random frames).

Examples:
    >>> import numpy as np
    >>> from optim.problem import random_problem
    >>> template = random_problem(6, 6, seed=0)
    >>> gains = np.random.default_rng(1).exponential(size=(100, 6))
    >>> out = solve_batch(template, gains, "hierarchical", refine=False)
    >>> out.selected.shape, out.objective.shape
    ((100, 6), (100,))
    >>> frame = template.replace(gains=gains[7])
    >>> import optim
    >>> ref = optim.solve(frame, "hierarchical", refine=False)
    >>> bool(np.isclose(ref.objective, out.objective[7], rtol=1e-9))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from channels.errors import ConfigError, check_name, fail
from optim.batch.plan import (
    BATCH_METHODS,
    FIXED_METHODS,
    PIPELINE_METHODS,
    Plan,
    fixed_plan,
    model_arrays,
    pipeline_plan,
)
from optim.ber_model import ber_model
from optim.problem import Allocation, Problem
from optim.snr_range import check_gains_in_range


@dataclass(frozen=True)
class BatchResult:
    """Allocations of ``B`` frames, in feature order (``N`` features per frame).

    Attributes:
        method: the method name.
        selected: bool [B, N], feature sent.
        subchannel: int64 [B, N], its subchannel (-1 unsent).
        modulation: int64 [B, N], index into the template's ``modulations`` (-1 unsent).
        power: float64 [B, N], per-symbol power (0 unsent).
        objective: float64 [B], (P0) of each frame with the template's weights and models.
    """

    method: str
    selected: np.ndarray
    subchannel: np.ndarray
    modulation: np.ndarray
    power: np.ndarray
    objective: np.ndarray

    def __len__(self) -> int:
        return int(self.objective.size)

    def allocation(self, frame: int, modulations: tuple[str, ...]) -> Allocation:
        """Frame ``frame`` as an :class:`~optim.problem.Allocation` (``modulations``: the
        template's names)."""
        f = np.flatnonzero(self.selected[frame])
        return Allocation(
            f,
            self.subchannel[frame, f],
            tuple(modulations[m] for m in self.modulation[frame, f]),
            self.power[frame, f],
        )


def batch_methods() -> tuple[str, ...]:
    """Method names :func:`solve_batch` runs: the compiled ones, then those registered with
    their own batched function (:attr:`optim.methods.Method.batch`)."""
    from optim.methods import METHODS

    own = tuple(name for name, m in METHODS.items() if m.batch_loader is not None)
    return BATCH_METHODS + own


def check_gains(gains: Any, template: Problem | None = None) -> np.ndarray:
    """``gains`` as a C-contiguous float64 array [B, K] of finite numbers >= 0; with a
    ``template``, every positive entry also within the SNR range of its budget and noise
    (:mod:`optim.snr_range`), as ``template.replace(gains=gains[b])`` would require.

    Raises:
        ConfigError: not convertible, not two-dimensional, or an entry non-finite, negative
            or out of range (the message names the first such entry, e.g. ``gains[17, 3]``).
    """
    try:
        arr = np.array(gains, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail("gains", gains, "an array [B, K] of finite numbers >= 0", max_repr=80) from None
    if arr.ndim != 2:
        raise ConfigError(
            f"gains: shape {arr.shape} is invalid; allowed: an array [B, K] (frames, subchannels)"
        )
    bad = ~(np.isfinite(arr) & (arr >= 0))
    if bad.any():
        b, k = (int(v) for v in np.argwhere(bad)[0])
        raise fail(f"gains[{b}, {k}]", float(arr[b, k]), "finite numbers >= 0")
    if template is not None:
        check_gains_in_range(arr, float(template.power_budget), float(template.noise_power))
    return np.ascontiguousarray(arr)


def _perms(plan: Plan, frames: int, k: int, n: int) -> np.ndarray:
    """Random matchings: one shared permutation for an integer seed (every frame's
    ``optim.solve`` with that seed draws the same one), fresh ones per frame for None."""
    if not plan.random:
        return np.zeros((1, max(n, 1)), np.int64)
    if plan.seed is not None:
        perm = np.random.default_rng(plan.seed).permutation(k)[:n].astype(np.int64)
        return np.ascontiguousarray(perm.reshape(1, n) if n else np.zeros((1, 1), np.int64))
    rng = np.random.default_rng()
    out = rng.permuted(np.tile(np.arange(k, dtype=np.int64), (max(frames, 1), 1)), axis=1)
    return np.ascontiguousarray(out[:, : max(n, 1)]) if n else np.zeros((1, 1), np.int64)


def _writable(args: tuple) -> tuple:
    """The arguments with every read-only array copied: Numba types a read-only array apart
    from a writable one, and one type per argument keeps a single compiled (and cached)
    version of each kernel whatever the template's arrays are."""
    out = []
    for x in args:
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            x = x.copy()
        elif isinstance(x, tuple) and hasattr(x, "_fields"):
            x = type(x)(*_writable(tuple(x)))
        out.append(x)
    return tuple(out)


OUTPUTS = ("auto", "host", "device")


def _unsupported_on_cuda(method: str) -> ConfigError:
    return ConfigError(
        f"method: {method!r} is not supported by solve_batch with backend 'cuda'; allowed: "
        "backend 'cpu', or on 'cuda' the hierarchical family and the baselines"
    )


def _on_device(x: Any) -> bool:
    """Whether ``x`` lives on the GPU (``__cuda_array_interface__``, or the CUDA simulator's
    device array)."""
    if hasattr(x, "__cuda_array_interface__"):
        return True
    return not isinstance(x, np.ndarray) and hasattr(x, "copy_to_host")


def _refined(method: str, options: dict[str, Any]) -> bool:
    """Whether ``method`` with ``options`` runs the hierarchical refinement."""
    if method not in PIPELINE_METHODS:
        return False
    flag = options.get("refine", True)
    return not (isinstance(flag, (bool, np.bool_)) and not flag)


def faster_on_gpu(method: str, options: dict[str, Any]) -> bool:
    """Whether ``backend="auto"`` runs ``method`` with ``options`` on a GPU: the baselines and
    the hierarchical family without refinement; not ``exact``, the refined family (slower on
    the GPU than on the CPU, BENCHMARKS.md) or the methods with their own batched function
    (:attr:`optim.methods.Method.batch`)."""
    return method in BATCH_METHODS and method != "exact" and not _refined(method, options)


def _host_gains(gains: Any) -> Any:
    """Device input for the CPU: copied to the host (checked afterwards as any array)."""
    if hasattr(gains, "__cuda_array_interface__"):
        from numba import cuda

        return cuda.as_cuda_array(gains).copy_to_host()
    if _on_device(gains):
        return gains.copy_to_host()  # the CUDA simulator's device array
    return gains


def solve_batch(
    template: Problem,
    gains: Any,
    method: str = "hierarchical",
    *,
    backend: str = "cpu",
    out: str = "auto",
    **options: Any,
) -> BatchResult:
    """Solve (P0) for every frame of ``gains`` with the template's other fields.

    Args:
        template: a :class:`~optim.problem.Problem` giving everything but the gains
            (weights, distortion, budgets, quantiser, modulations, models); its own ``gains``
            are ignored, so any ``Problem`` will do (``K`` comes from ``gains``).
        gains: float array [B, K], finite and >= 0: frame ``b``'s subchannel power gains; a
            NumPy array (or anything convertible), or a device array exposing
            ``__cuda_array_interface__`` (a Numba device array, a CUDA torch tensor).
        method: one of :func:`batch_methods`: ``hierarchical``, ``passive``, ``ui-opt``,
            ``hungarian``, ``equal-power``, ``random-matching`` (the hierarchical family,
            with or without its refinement), ``lowest-order``, ``ui-ep``, and ``exact`` up
            to its enumeration limit (``max_candidates``, every ``N <= 8`` by default;
            :mod:`optim.batch.exact`); and a method registered with its own batched function
            (:attr:`optim.methods.Method.batch`: ``dhondt``, ``harmony``, ``polca``, the
            learned ``rl:<kind>``) runs that, on the CPU (``rl:<kind>``: on its ``device``).
        backend: ``"cpu"`` (default: a Numba-parallel loop over frames), ``"cuda"`` (one frame
            per GPU thread, :mod:`optim.batch.cuda`: every method but ``exact``), or ``"auto"``
            (``"cuda"`` when a GPU is present, for the baselines and the hierarchical family
            with ``refine=False``; ``"cpu"`` otherwise, and for ``exact`` and the refined
            family, which is slower on the GPU than on the CPU).
        out: where the result arrays live: ``"host"`` (NumPy), ``"device"`` (Numba device
            arrays; needs a GPU) or ``"auto"`` (where the gains were: device arrays for device
            gains, else NumPy).
        **options: the method's options as in ``optim.solve``. Batched: the refinement
            options (``refine``, ``refine_steps``, ``refine_starts``, ``dual_starts``, ...),
            ``power`` closed-form or equal, ``patterns`` auto (exhaustive at every prefix)
            or all, ``n_search`` auto/all (at most 128 features sent), no ``early_stop``,
            ``seed`` an integer (one random matching shared by all frames, as each frame's
            ``optim.solve`` with that seed) or None (a fresh one per frame); ``exact``:
            ``rtol``, ``atol``, ``max_candidates``, ``engine`` auto/enumerate, no
            ``time_limit`` or ``node_limit`` (every frame completes).

    Returns:
        :class:`BatchResult`; frame ``b`` equals
        ``optim.solve(template.replace(gains=gains[b]), method, **options)`` (on the GPU up to
        the rounding of its ``log``/``exp``/``erfc``, :mod:`optim.batch.cuda`).

    Raises:
        ConfigError: before any work, for a template that is not a Problem, gains of the
            wrong shape or with a NaN, infinite or negative entry (naming it), an unknown
            method, option, backend or output place, an option value the batched solver does
            not run, or a method and options the chosen backend does not run.
    """
    if not isinstance(template, Problem):
        raise ConfigError(f"problem: {type(template).__name__} is invalid; allowed: optim.Problem")
    from optim.methods import METHODS

    entry = METHODS[method]  # the registry's message for an unknown name
    place = check_name("out", out, OUTPUTS)
    from channels.kernels.backend import gpu_available, resolve_backend, simulator_enabled

    auto = isinstance(backend, str) and backend.strip().lower() == "auto"
    run = resolve_backend(backend)
    own = entry.batch
    if own is not None:  # a method with its own batched implementation
        if run == "cuda" and not auto:
            raise _unsupported_on_cuda(entry.name)
        if place == "device":
            raise fail("out", out, f"host or auto (method {entry.name!r} returns host arrays)")
        return own(template, _host_gains(gains), **options)  # it checks the gains itself
    name = check_name("method", entry.name, BATCH_METHODS)
    if place == "device" and not (gpu_available() or simulator_enabled()):
        raise fail("out", out, "host or auto (no CUDA GPU found)")
    if run == "cuda" and name == "exact" and not auto:
        raise _unsupported_on_cuda(name)
    if run == "cuda" and auto and not faster_on_gpu(name, options):
        run = "cpu"  # exact runs on the CPU only; the refined family is faster there
    on_device = _on_device(gains)
    to_device = run == "cpu" and (place == "device" or (place == "auto" and on_device))
    if run == "cuda":
        from optim.batch.cuda import device_gains

        arr = device_gains(gains if on_device else check_gains(gains, template), template)
    else:
        arr = check_gains(_host_gains(gains), template)
    frames, k = arr.shape
    if k != template.n_subchannels:
        template = template.replace(gains=np.zeros(k))
    if name == "exact":
        from optim.batch.exact import exact_batch, exact_plan

        x = exact_plan(template, k, dict(options))
        model = model_arrays(template)
        res = exact_batch(*_writable((
            arr, x["mod"], x["order"], x["alpha_r"], x["e_r"], x["sym"], x["smax"],
            x["budget"], x["noise"], x["base"], x["fixed"], x["row_n"], x["row_c"],
            x["n_rows"], x["rtol"], x["atol"], model["qw"], model["qs"], model["ba"],
            model["bb"], model["exact"], model["w"], model["floor"], model["slope"],
            model["drop"],
        )))  # fmt: skip
        if to_device:
            from numba import cuda

            res = tuple(cuda.to_device(x) for x in res)
        return BatchResult(name, *res)
    if name in PIPELINE_METHODS:
        plan = pipeline_plan(template, name, dict(options))
    else:
        assert name in FIXED_METHODS
        plan = fixed_plan(template, name, dict(options))
    model = model_arrays(template)
    noise, budget = float(template.noise_power), float(template.power_budget)
    a = plan.arrays
    coef_a, coef_b = model["ba"], model["bb"]
    obj_terms = (model["w"], model["floor"], model["slope"], model["drop"])
    ber_args = (model["qw"], model["qs"], coef_a, coef_b, model["exact"])
    if run == "cuda":
        from optim.batch import cuda as gpu

        if plan.kind == "pipeline" and "refine" in a:
            shared, cfg = a["refine"]
            perms = _perms(plan, frames, k, a["n_max"])
            res = gpu.run_refined(
                arr, perms, shared, cfg, a["order"], a["ws"], a["wf"], a["tail"], a["n_max"],
                a["pats"], a["row_w"], a["n_start"], a["n_count"], a["matching"], a["iters"],
                bool(template.uniform_bits), *obj_terms,
            )  # fmt: skip
        elif plan.kind == "pipeline":
            perms = _perms(plan, frames, k, a["n_max"])
            res = gpu.run_pipeline(
                arr, perms, noise, budget, a["order"], a["ws"], a["wf"], a["tail"], coef_a,
                coef_b, *ber_args, a["n_max"], a["pats"], a["row_w"], a["n_start"],
                a["n_count"], a["matching"], a["power_mode"], a["iters"], *obj_terms,
                ber_model(template),
            )  # fmt: skip
        else:
            perms = _perms(plan, frames, k, a["n"])
            res = gpu.run_fixed(
                arr, perms, noise, budget, a["n"], a["m"], a["alpha"], coef_a, coef_b,
                a["matching"], a["power_mode"], *obj_terms, *ber_args,
            )  # fmt: skip
        if place == "host" or (place == "auto" and not on_device):
            res = tuple(x.copy_to_host() for x in res)
        return BatchResult(name, *res)
    if plan.kind == "pipeline" and "refine" in a:
        from optim.batch.refine import hierarchical_batch

        shared, cfg = a["refine"]
        perms = _perms(plan, frames, k, a["n_max"])
        res = hierarchical_batch(*_writable((
            arr, perms, shared, cfg, a["order"], a["ws"], a["wf"], a["tail"], a["n_max"],
            a["pats"], a["row_w"], a["n_start"], a["n_count"], a["matching"], a["iters"],
            bool(template.uniform_bits), *obj_terms,
        )))  # fmt: skip
    elif plan.kind == "pipeline":
        from optim.batch.pipeline import pipeline_batch

        perms = _perms(plan, frames, k, a["n_max"])
        res = pipeline_batch(*_writable((
            arr, perms, noise, budget, a["order"], a["ws"], a["wf"], a["tail"], coef_a, coef_b,
            *ber_args, a["n_max"], a["pats"], a["row_w"], a["n_start"], a["n_count"],
            a["matching"], a["power_mode"], a["iters"], *obj_terms, *ber_model(template),
        )))  # fmt: skip
    else:
        from optim.batch.pipeline import fixed_batch

        perms = _perms(plan, frames, k, a["n"])
        res = fixed_batch(*_writable((
            arr, perms, noise, budget, a["n"], a["m"], a["alpha"], coef_a, coef_b,
            a["matching"], a["power_mode"], *obj_terms, *ber_args,
        )))  # fmt: skip
    if to_device:
        from numba import cuda

        res = tuple(cuda.to_device(x) for x in res)
    return BatchResult(name, *res)
