"""SI-UEP resource allocation: which features to send, on which subchannel, with which
modulation and power (docs/method.md); imports ``channels`` only.

Every public name is importable from the package; its submodule loads on first use, so
``import optim`` does not import SciPy or compile Numba kernels.

Examples:
    >>> import optim
    >>> problem = optim.random_problem(8, 8, seed=3)
    >>> result = optim.solve(problem, method="hierarchical")
    >>> result.feasible
    True
    >>> "exact" in optim.available_methods()
    True
"""

from channels.lazy import lazy_exports

_EXPORTS = {
    "Problem": "optim.problem",
    "Allocation": "optim.problem",
    "random_problem": "optim.problem",
    "random_weights": "optim.problem",
    "objective": "optim.distortion",
    "feature_costs": "optim.distortion",
    "bit_error_rate": "optim.distortion",
    "solve": "optim.methods",
    "SolveResult": "optim.methods",
    "available_methods": "optim.methods",
    "METHODS": "optim.methods",
    "Method": "optim.methods",
    "MethodRegistry": "optim.methods",
    "solve_hierarchical": "optim.hierarchical",
    "solve_exact": "optim.exact",
    "solve_batch": "optim.batch",
    "solve_bnb": "optim.bnb",
    "water_filling": "optim.power",
    "greedy_matching": "optim.matching",
    "hungarian_matching": "optim.matching",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
