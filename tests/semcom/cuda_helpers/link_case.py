"""The frames both backends of ``tests/semcom/test_link_cuda_allocation.py`` send: a random
``mlp`` codec (N = 4 features), 6 images of 8x8, K = 4 Rayleigh subchannels at 5 dB,
hierarchical without refinement (the batched solver's GPU family)."""

from __future__ import annotations

import numpy as np
import torch

from semcom.link import SemanticLink
from semcom.models import build_model


def link(backend: str) -> SemanticLink:
    """The link of the case on ``backend`` (its model on the CPU)."""
    torch.manual_seed(0)
    model = build_model("mlp", n_features=4).eval()
    return SemanticLink(model, np.array([0.4, 0.3, 0.2, 0.1]), np.full(4, 0.05),
                        channel="rayleigh", snr_db=5.0, n_subchannels=4, eta=0.5,
                        method_options={"refine": False}, backend=backend)  # fmt: skip


def frames(backend: str) -> dict:
    """What the link allocated per frame (sent, bits per symbol, objective, allocated power)."""
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = link(backend).simulate(images, draw=1)
    return {
        "sent": np.asarray(out.sent).tolist(),
        "bits_per_symbol": np.asarray(out.bits_per_symbol).tolist(),
        "objective": np.asarray(out.objective).tolist(),
    }


def resident_frames() -> dict:
    """The GPU-resident chain of a CUDA link (what ``SemanticLink.simulate`` hands the link
    kernel there) for the frames of :func:`frames`: fading drawn on the device, solved there,
    mapped to per-feature inputs there; brought to the host only to print."""
    import optim
    from channels.fading import trial_fading_device
    from channels.kernels.cuda_frames import allocated_features

    cuda_link = link("cuda")
    trials = np.arange(6)
    h_re, h_im, gains = trial_fading_device("rayleigh", 4, (cuda_link.seed,
                                            cuda_link.draw_point(1)), trials)  # fmt: skip
    alloc = optim.solve_batch(cuda_link._problem, gains, cuda_link.method, backend="cuda",
                              out="device", **cuda_link.method_options)  # fmt: skip
    m, hf_re, hf_im, p = allocated_features(
        alloc.selected, alloc.subchannel, alloc.modulation, alloc.power, h_re, h_im,
        cuda_link._mod_bits,
    )  # fmt: skip
    return {
        "bits_per_symbol": m.copy_to_host().tolist(),
        "objective": alloc.objective.copy_to_host().tolist(),
        "gains": gains.copy_to_host().tolist(),
        "power": p.copy_to_host().tolist(),
        "h": [hf_re.copy_to_host().tolist(), hf_im.copy_to_host().tolist()],
    }
