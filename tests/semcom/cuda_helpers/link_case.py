"""The frames both backends of ``tests/semcom/test_link_cuda_allocation.py`` send: a random
``mlp`` codec (N = 4 features), 6 images of 8x8, K = 4 Rayleigh subchannels at 5 dB,
hierarchical without refinement (the batched solver's GPU family)."""

from __future__ import annotations

import numpy as np
import torch

from semcom.link import SemanticLink
from semcom.models import build_model


def frames(backend: str) -> dict:
    """What the link allocated per frame (sent, bits per symbol, objective, allocated power)."""
    torch.manual_seed(0)
    model = build_model("mlp", n_features=4).eval()
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    link = SemanticLink(model, np.array([0.4, 0.3, 0.2, 0.1]), np.full(4, 0.05),
                        channel="rayleigh", snr_db=5.0, n_subchannels=4, eta=0.5,
                        method_options={"refine": False}, backend=backend)  # fmt: skip
    out = link.simulate(images, draw=1)
    return {
        "sent": np.asarray(out.sent).tolist(),
        "bits_per_symbol": np.asarray(out.bits_per_symbol).tolist(),
        "objective": np.asarray(out.objective).tolist(),
    }
