"""DeepJSCC-style convolutional auto-encoder (docs/method.md §1.3).

Encoder (defaults: input 3x32x32, widths ``w = (32, 64)``, kernel 5, ``N = 16``)::

    Conv(C -> w0, k5, s2, p2) + norm + PReLU   -> w0 x H/2 x W/2
    Conv(w0 -> w1, k5, s2, p2) + norm + PReLU  -> w1 x H/4 x W/4
    Conv(w1 -> w1, k5, s1, p2) + PReLU         -> w1 x H/4 x W/4
    Conv(w1 -> c, k5, s1, p2)                  -> c  x H/4 x W/4      then tanh (in encode)

The decoder mirrors it with transposed convolutions (IGDN for GDN) and ends in a sigmoid.

Semantic features:
    * ``scalar_features=False`` (default): feature ``i`` is latent channel ``i``, ``c = N`` and
      ``L = (H/4)(W/4)`` (64 for 32x32 images): ``z[b, i, :] = latent[b, i].flatten()``.
    * ``scalar_features=True``: feature ``i`` is scalar ``i`` of the flattened latent
      (channel-major), ``L = 1``; ``N`` must be a multiple of ``(H/4)(W/4)`` and
      ``c = N / ((H/4)(W/4))`` (e.g. ``N = 64..256`` -> 1..4 latent channels for 32x32 images).

``norm`` is ``"gdn"`` (default: GDN/IGDN, batch-independent), ``"batch"`` (BatchNorm2d) or
``"none"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import check_choice, check_flag, check_int, fail
from semcom.channel_state import ChannelState
from semcom.models import options as opt
from semcom.models.base import SemanticModel
from semcom.models.gdn import GDN

NORMS = ("gdn", "batch", "none")


def _norm(kind: str, channels: int, inverse: bool) -> nn.Module:
    if kind == "gdn":
        return GDN(channels, inverse=inverse)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ConvAutoencoder(SemanticModel):
    """The ``"cnn"`` model; see the module docstring for the layers and the feature definition."""

    name = "cnn"
    DEFAULTS: dict[str, Any] = {
        "scalar_features": False,
        "norm": "gdn",
        "widths": [32, 64],
        "kernel_size": 5,
        "input_shape": [3, 32, 32],
        "num_classes": None,
    }

    @classmethod
    def resolve(cls, n_features: int, options: dict[str, Any]) -> dict[str, Any]:
        """Validate options against ``n_features``; return them with defaults filled in."""
        o = {**cls.DEFAULTS, **options}
        o["scalar_features"] = check_flag("scalar_features", o["scalar_features"])
        o["norm"] = check_choice("norm", o["norm"], NORMS)
        o["widths"] = opt.int_list("widths", o["widths"], 2)
        o["kernel_size"] = check_int("kernel_size", o["kernel_size"], 1, 15)
        if o["kernel_size"] % 2 == 0:
            raise fail("kernel_size", o["kernel_size"], "an odd integer in 1..15")
        o["input_shape"] = opt.image_shape(o["input_shape"])
        c, h, w = o["input_shape"]
        if h % 4 or w % 4:
            raise fail("input_shape", o["input_shape"], "[C, H, W] with H and W multiples of 4")
        o["num_classes"] = opt.num_classes(o["num_classes"])
        positions = (h // 4) * (w // 4)
        if o["scalar_features"] and n_features % positions:
            raise fail(
                "n_features",
                n_features,
                f"a multiple of {positions} (the latent's {h // 4}x{w // 4} positions) "
                "with scalar_features=True",
            )
        return o

    @classmethod
    def _own_parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        """Four (transposed) convolutions each way, ``k²·in·out + out`` each, PReLUs of one
        weight per channel, and the norms: GDN ``C + C²``, batch ``2C``, none 0."""
        c_in, h, w = options["input_shape"]
        positions = (h // 4) * (w // 4)
        latent = n_features // positions if options["scalar_features"] else n_features
        w0, w1 = options["widths"]
        k2 = options["kernel_size"] ** 2
        conv = lambda a, b: k2 * a * b + b  # noqa: E731
        norm = {"gdn": lambda ch: ch + ch * ch, "batch": lambda ch: 2 * ch, "none": lambda ch: 0}[
            options["norm"]
        ]
        encoder = (
            conv(c_in, w0) + norm(w0) + w0 + conv(w0, w1) + norm(w1) + w1
            + conv(w1, w1) + w1 + conv(w1, latent)
        )  # fmt: skip
        decoder = (
            conv(latent, w1) + w1 + conv(w1, w1) + w1 + conv(w1, w0) + norm(w0) + w0
            + conv(w0, c_in)
        )  # fmt: skip
        return encoder + decoder

    def __init__(self, n_features: int, **options: Any) -> None:
        o = self.resolve(n_features, options)
        c_in, h, w = o["input_shape"]
        positions = (h // 4) * (w // 4)
        scalar = o["scalar_features"]
        latent = n_features // positions if scalar else n_features
        super().__init__(n_features, 1 if scalar else positions, (c_in, h, w), o["num_classes"], o)
        self.latent_shape = (latent, h // 4, w // 4)
        w0, w1 = o["widths"]
        k, p = o["kernel_size"], o["kernel_size"] // 2
        norm = o["norm"]
        self.encoder = nn.Sequential(
            nn.Conv2d(c_in, w0, k, stride=2, padding=p),
            _norm(norm, w0, inverse=False),
            nn.PReLU(w0),
            nn.Conv2d(w0, w1, k, stride=2, padding=p),
            _norm(norm, w1, inverse=False),
            nn.PReLU(w1),
            nn.Conv2d(w1, w1, k, stride=1, padding=p),
            nn.PReLU(w1),
            nn.Conv2d(w1, latent, k, stride=1, padding=p),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent, w1, k, stride=1, padding=p),
            nn.PReLU(w1),
            nn.ConvTranspose2d(w1, w1, k, stride=1, padding=p),
            nn.PReLU(w1),
            nn.ConvTranspose2d(w1, w0, k, stride=2, padding=p, output_padding=1),
            _norm(norm, w0, inverse=True),
            nn.PReLU(w0),
            nn.ConvTranspose2d(w0, c_in, k, stride=2, padding=p, output_padding=1),
            nn.Sigmoid(),
        )

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        latent = self.encoder(x)  # [B, c, H/4, W/4]
        return latent.reshape(x.shape[0], self.n_features, self.scalars_per_feature)

    def decode(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """Features ``z`` ``[B, N, L]`` -> reconstruction ``x_hat`` ``[B, C, H, W]`` in [0, 1]."""
        self.check_features(z)
        return self.decoder(z.reshape(z.shape[0], *self.latent_shape))
