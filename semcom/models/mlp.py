"""Small fully connected auto-encoder for tiny images (scikit-learn digits, 1x8x8).

Encoder: ``flatten(x) [B, C·H·W] -> Linear(h0) -> PReLU -> Linear(h1) -> PReLU ->
Linear(N·L)``, reshaped to ``[B, N, L]`` (then tanh in ``encode``). Decoder: the mirror,
``Linear(h1) -> PReLU -> Linear(h0) -> PReLU -> Linear(C·H·W) -> sigmoid``. Feature ``i`` is the
``i``-th block of ``L`` consecutive outputs (default ``L = 4``, hidden widths ``(256, 128)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import check_int
from semcom.channel_state import ChannelState
from semcom.models import options as opt
from semcom.models.base import SemanticModel


class MLPAutoencoder(SemanticModel):
    """The ``"mlp"`` model; ``L`` is set by ``scalars_per_feature`` (alias ``L``)."""

    name = "mlp"
    DEFAULTS: dict[str, Any] = {
        "scalars_per_feature": 4,
        "hidden": [256, 128],
        "input_shape": [1, 8, 8],
        "num_classes": None,
    }

    @classmethod
    def resolve(cls, n_features: int, options: dict[str, Any]) -> dict[str, Any]:
        """Validate options; return them with defaults filled in."""
        o = {**cls.DEFAULTS, **opt.scalars_per_feature_alias(options)}
        o["scalars_per_feature"] = check_int(
            "scalars_per_feature", o["scalars_per_feature"], 1, 4096
        )
        o["hidden"] = opt.int_list("hidden", o["hidden"], 2)
        o["input_shape"] = opt.image_shape(o["input_shape"])
        o["num_classes"] = opt.num_classes(o["num_classes"])
        return o

    @classmethod
    def _own_parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        """Linear layers ``P -> h0 -> h1 -> N·L`` and back (weights and biases), four PReLUs."""
        c, h, w = options["input_shape"]
        pixels, (h0, h1) = c * h * w, options["hidden"]
        out = n_features * options["scalars_per_feature"]
        linear = lambda a, b: a * b + b  # noqa: E731
        one_way = linear(h0, h1) + 2
        return (
            linear(pixels, h0) + one_way + linear(h1, out)
            + linear(out, h1) + (linear(h1, h0) + 2) + linear(h0, pixels)
        )  # fmt: skip

    def __init__(self, n_features: int, **options: Any) -> None:
        o = self.resolve(n_features, options)
        c, h, w = o["input_shape"]
        L = o["scalars_per_feature"]
        super().__init__(n_features, L, (c, h, w), o["num_classes"], o)
        pixels = c * h * w
        h0, h1 = o["hidden"]
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(pixels, h0),
            nn.PReLU(),
            nn.Linear(h0, h1),
            nn.PReLU(),
            nn.Linear(h1, n_features * L),
        )
        self.decoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_features * L, h1),
            nn.PReLU(),
            nn.Linear(h1, h0),
            nn.PReLU(),
            nn.Linear(h0, pixels),
            nn.Sigmoid(),
        )

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).reshape(x.shape[0], self.n_features, self.scalars_per_feature)

    def decode(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """Features ``z`` ``[B, N, L]`` -> reconstruction ``x_hat`` ``[B, C, H, W]`` in [0, 1]."""
        self.check_features(z)
        return self.decoder(z).reshape(z.shape[0], *self.input_shape)
