"""The batched pipeline's per-frame rank tables for one frame, as the tests of its bounds use
them (:func:`optim.batch.pipeline._rate_tables`)."""

from __future__ import annotations

import numpy as np

from optim.batch.pipeline import _rate_tables
from optim.batch.plan import model_arrays
from optim.ber_model import ber_model
from optim.matching import subchannel_order


def rank_tables(p, a: dict, g: np.ndarray) -> tuple:  # noqa: ANN001
    """``(model arrays, BER model, n_max, W, M, rate [W], lt [W, M], ct [W, M])`` of problem
    ``p`` with the pipeline plan's arrays ``a`` and gains ``g`` (greedy matching)."""
    m = model_arrays(p)
    mod = ber_model(p)
    n_max, wmax, n_mod = a["n_max"], max(a["n_max"], 1), len(p.modulations)
    chan = subchannel_order(g).astype(np.int64)
    rate, lt, ct = np.zeros(wmax), np.zeros((wmax, n_mod)), np.zeros((wmax, n_mod))
    _rate_tables(g, chan, n_max, p.noise_power, a["ws"], m["ba"], m["bb"], rate, lt, ct)
    return m, mod, n_max, wmax, n_mod, rate, lt, ct
