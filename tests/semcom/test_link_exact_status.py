"""semcom.link.SemanticLink with the ``exact`` method: an answer a limit left unproven is
refused, not silently used as "the exact optimum"."""

from __future__ import annotations

import numpy as np
import pytest

from channels.errors import ConfigError
from tests.semcom.test_link import TanhModel, flat_link, images


def test_unproven_exact_allocation_is_refused() -> None:
    model = TanhModel(n=6)
    options = {"engine": "bnb", "node_limit": 1}
    link = flat_link(model, method="exact", method_options=options, channel="rayleigh",
                     n_subchannels=6, snr_db=5.0, eta=1.0)  # fmt: skip
    with pytest.raises(ConfigError, match="not proven optimal"):
        link.simulate(images(2))


def test_proven_exact_allocation_is_used() -> None:
    link = flat_link(TanhModel(n=4), method="exact", channel="rayleigh", n_subchannels=4,
                     snr_db=5.0, eta=1.0)  # fmt: skip
    frames = link.simulate(images(2))
    assert np.all(np.isfinite(np.asarray(frames.objective)))
