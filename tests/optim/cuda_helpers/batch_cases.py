"""Cases shared by the CUDA twin's simulator run and its test: small templates, frame gains
and the (method, options) pairs the GPU runs."""

from __future__ import annotations

import numpy as np

from optim.problem import random_problem

CUDA_CASES = [
    ("hierarchical", {"refine": False}),
    ("passive", {"refine": False}),
    ("ui-opt", {"refine": False}),
    ("hungarian", {"refine": False}),
    ("hungarian", {"refine": False, "matching_iters": 1}),
    ("equal-power", {"refine": False}),
    ("random-matching", {"refine": False, "seed": 4}),
    ("hierarchical", {"refine": False, "power": "equal", "patterns": "all"}),
    ("lowest-order", {}),
    ("lowest-order", {"power": "equal"}),
    ("ui-ep", {"seed": 3}),
]
"""Every method the GPU twin runs, with option variants that change its code path."""

FRAMES = 12

REFINED_CASES = [
    ("hierarchical", {}),
    ("random-matching", {"seed": 4}),
    ("equal-power", {}),
    ("hierarchical", {"dual_starts": 0, "refine_starts": 2, "refine_steps": ["power", "matching"]}),
]
"""The refined hierarchical family (refinement on): dual starts, local search and polish;
slow under the simulator, so they run on :data:`REFINED_FRAMES` frames of two templates."""
REFINED_FRAMES = 2


def templates() -> list:
    """Small templates (N, K <= 6): both BER models, both distortion models, K < N and K > N,
    per-feature bits, a low SNR and a tight symbol budget."""
    return [
        random_problem(5, 6, seed=1, ber_model="exact", snr_db=10.0),
        random_problem(
            6,
            4,
            seed=2,
            ber_model="bound",
            distortion_model="normalised",
            profile="random",
            eta=0.5,
        ),  # fmt: skip
        random_problem(4, 6, seed=3, ber_model="exact", snr_db=-5.0, profile="flat", eta=0.25),
        random_problem(
            6, 5, seed=4, bits_per_scalar=[2, 8, 4, 6, 3, 5], scalars_per_feature=8, snr_db=5.0
        ),  # fmt: skip
    ]


def frame_gains(template, seed: int) -> np.ndarray:  # noqa: ANN001
    """Rayleigh ``|h|^2`` per frame, with exact zeros and exact ties."""
    rng = np.random.default_rng(seed)
    g = rng.exponential(size=(FRAMES, template.n_subchannels))
    g[::4, 0] = 0.0
    g[::3, -1] = g[::3, 0]
    g[5] = 1.0  # every subchannel tied
    return g


BAD_INPUTS = [
    ("nan", {"method": "hierarchical", "options": {"refine": False}}),
    ("negative", {"method": "lowest-order", "options": {}}),
    ("inf", {"method": "ui-ep", "options": {}}),
    ("one_dim", {"method": "hierarchical", "options": {"refine": False}}),
    ("unknown_method", {"method": "nope", "options": {}}),
    ("unknown_option", {"method": "hierarchical", "options": {"refine": False, "bogus": 1}}),
    ("bad_power", {"method": "hierarchical", "options": {"refine": False, "power": "cvxpy"}}),
    ("snr_too_low", {"method": "hierarchical", "options": {"refine": False}}),
    ("snr_too_high", {"method": "lowest-order", "options": {}}),
]
"""Bad input that both backends must refuse with the same message."""


def bad_gains(kind: str, template) -> np.ndarray:  # noqa: ANN001
    """The gains of a :data:`BAD_INPUTS` case."""
    g = frame_gains(template, 0)
    if kind == "nan":
        g[7, 2] = np.nan
        g[9, 1] = np.nan
    elif kind == "negative":
        g[3, 4] = -0.5
    elif kind == "inf":
        g[0, 1] = np.inf
    elif kind == "one_dim":
        g = g[0]
    elif kind == "snr_too_low":  # positive, but below the SNR range (optim.snr_range)
        g[6, 3] = 1e-300
        g[8, 0] = 1e-300
    elif kind == "snr_too_high":
        g[2, 1] = 1e300
    return g
