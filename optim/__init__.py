"""SI-UEP resource allocation (ISFR.md sec. 4-5); imports channels only.

Public API::

    Problem, Allocation, random_problem      optim.problem
    objective, feature_costs                 optim.distortion
    solve, SolveResult, available_methods    optim.methods  (METHODS: the registry)
    solve_hierarchical                       optim.hierarchical

>>> import optim
>>> result = optim.solve(optim.random_problem(8, 8, seed=3), method="hierarchical")
>>> result.feasible
True
"""

from optim.distortion import feature_costs, objective
from optim.hierarchical import solve_hierarchical
from optim.methods import METHODS, SolveResult, available_methods, solve
from optim.problem import Allocation, Problem, random_problem

__all__ = [
    "METHODS",
    "Allocation",
    "Problem",
    "SolveResult",
    "available_methods",
    "feature_costs",
    "objective",
    "random_problem",
    "solve",
    "solve_hierarchical",
]
