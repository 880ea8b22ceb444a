"""Helpers of the routing-method tests: a few manual optimisation steps through a method's
contract (build -> hook -> steps with ``sample_weights``/``extra_loss`` -> finalize -> apply),
the way the one training loop drives it, on scikit-learn's digits with mixed channel states."""

from __future__ import annotations

from typing import Any

import torch

from semcom.channel_state import ChannelState
from semcom.data import load_dataset
from semcom.routing import build_routing

SNRS = (-5.0, 20.0)
"""The two SNR groups (dB) of the training frames."""


def digits(n: int = 256) -> torch.Tensor:
    """The first ``n`` training digits ``[n, 1, 8, 8]``."""
    return load_dataset("digits", "train").images[:n]


def mixed_states(batch: int, generator: torch.Generator) -> ChannelState:
    """AWGN frames at -5 or 20 dB (half each, random order)."""
    snr = torch.tensor(SNRS)[torch.randint(2, (batch,), generator=generator)]
    return ChannelState(snr, torch.zeros(batch), torch.zeros(batch, dtype=torch.int64))


def awgn(z: torch.Tensor, state: ChannelState, generator: torch.Generator) -> torch.Tensor:
    """Per-frame AWGN at the frame's SNR on unit-power features (a stand-in channel)."""
    sigma = torch.pow(10.0, -state.snr_db / 20.0).view(-1, 1, 1)
    return z + sigma * torch.randn(z.shape, generator=generator)


def train_steps(
    method: str,
    options: dict[str, Any],
    steps: int = 30,
    n_features: int = 8,
    model_options: dict[str, Any] | None = None,
    lr: float = 3e-3,
    seed: int = 0,
) -> tuple[Any, torch.nn.Module, torch.Tensor]:
    """Train ``method``'s model a few steps; returns ``(method, deployed model, images)``."""
    torch.manual_seed(seed)
    routing = build_routing(method, options)
    model = routing.build("mlp", n_features, dict(model_options or {}), seed)
    hook = routing.hook()
    if hook is not None:
        hook.setup(256, 1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    images = digits()
    model.train()
    for step in range(steps):
        idx = torch.randint(images.shape[0], (32,), generator=gen)
        x, state = images[idx], mixed_states(32, gen)
        z = model.encode(x, state)
        x_hat = model.decode(awgn(z, state, gen), state)
        per_sample = ((x_hat - x) ** 2).flatten(1).mean(1)
        w = None if hook is None else hook.sample_weights(step, x, per_sample.detach())
        loss = per_sample.mean() if w is None else (w * per_sample).sum() / w.sum()
        extra = None if hook is None else hook.extra_loss(model, x, x_hat, z, state)
        if extra is not None:
            loss = loss + extra
        opt.zero_grad()
        loss.backward()
        opt.step()
    routing.finalize(model, images[:64], mixed_states(64, gen))
    return routing, routing.apply(model), images
