"""Orthogonal rotations that spread weight outliers before quantisation (QuaRot-style).

A layer ``y = W x`` is unchanged by an orthogonal ``R`` (``R Rᵀ = I``): ``y = (W R)(Rᵀ x)``.
Quantising ``W R`` instead of ``W`` mixes every input column into every rotated column, so a
few large weights no longer set a row's scale. The codes stored are those of ``W R``; at run
time the input is rotated on line (``Rᵀ x``), which is what the de-quantised weight
``quant(W R) Rᵀ`` computes in one dense product.

``R = diag(s) H_n / sqrt(n)`` is a randomised Hadamard matrix (Sylvester construction, random
signs ``s``) when ``n`` is a power of two; otherwise ``R`` is a random orthogonal matrix (QR of a
Gaussian matrix with the signs of ``diag(R_qr)`` fixed, i.e. Haar-distributed).
"""

from __future__ import annotations

import math

import torch

from channels.errors import fail


def is_power_of_two(n: int) -> bool:
    """``n`` is ``1, 2, 4, 8, ...``."""
    return n >= 1 and n & (n - 1) == 0


def hadamard(n: int) -> torch.Tensor:
    """Sylvester Hadamard matrix ``H_n`` (float64, entries ±1, ``H Hᵀ = n I``), ``n = 2^k``.

    Examples:
        >>> hadamard(2).tolist()
        [[1.0, 1.0], [1.0, -1.0]]
    """
    if not is_power_of_two(n):
        raise fail("n", n, "a power of two")
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def random_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random orthogonal ``[n, n]`` float64 matrix (QR of a Gaussian, signs fixed)."""
    g = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diag(r)).unsqueeze(0)


def rotation(n: int, generator: torch.Generator) -> tuple[torch.Tensor, str]:
    """Orthogonal ``R`` ``[n, n]`` (float64) and its kind, ``"hadamard"`` or ``"orthogonal"``.

    Examples:
        >>> r, kind = rotation(8, torch.Generator().manual_seed(0))
        >>> kind, torch.allclose(r @ r.T, torch.eye(8, dtype=torch.float64))
        ('hadamard', True)
    """
    if is_power_of_two(n):
        signs = torch.randint(0, 2, (n,), generator=generator).to(torch.float64) * 2 - 1
        return signs.unsqueeze(1) * hadamard(n) / math.sqrt(n), "hadamard"
    return random_orthogonal(n, generator), "orthogonal"


def online_rotation_flops(n: int, kind: str) -> float:
    """FLOPs of rotating one input vector of length ``n`` at run time: ``n log2 n`` additions
    with the fast Walsh-Hadamard transform, ``2 n²`` for a dense orthogonal matrix."""
    return float(n * math.log2(n)) if kind == "hadamard" else 2.0 * n * n
