"""Generalised divisive normalisation (GDN) and its inverse (Ballé, Laparra & Simoncelli, 2016).

For a feature map ``x`` ``[B, C, H, W]`` and every position,

    GDN:   y_c = x_c / sqrt(β_c + Σ_k γ_ck x_k²),
    IGDN:  y_c = x_c · sqrt(β_c + Σ_k γ_ck x_k²).

Positivity is kept by the parametrisation ``β = b² + β_min`` and ``γ = G²`` (element-wise), with
``b = 1`` and ``G = sqrt(γ_0) I`` at initialisation (``γ_0 = 0.1``), so GDN starts close to
``x / sqrt(1 + 0.1 x²)``. GDN is the usual normalisation of DeepJSCC encoders; unlike batch
normalisation it does not depend on the batch, so encoding is the same in train and eval mode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GDN(nn.Module):
    """GDN (``inverse=False``) or IGDN (``inverse=True``) over ``channels`` channels."""

    def __init__(
        self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1
    ) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.b = nn.Parameter(torch.ones(channels))
        self.g = nn.Parameter(math.sqrt(gamma_init) * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.b**2 + self.beta_min
        gamma = (self.g**2)[:, :, None, None]
        norm = torch.sqrt(F.conv2d(x * x, gamma, beta))
        return x * norm if self.inverse else x / norm

    def extra_repr(self) -> str:
        return f"channels={self.b.numel()}, inverse={self.inverse}"
