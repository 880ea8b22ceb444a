"""From a batch's allocation to the link kernel's per-feature inputs, on the GPU.

A frame's allocation (:func:`optim.solve_batch` with ``out="device"``) says, per feature ``i``,
whether it is ``selected``, its ``subchannel`` ``k``, its ``modulation`` (an index into the
link's modulation list) and its ``power``. The link kernel
(:func:`channels.kernels.cuda_link.link_frames_device`) takes, per feature, the bits per symbol
``m``, the coefficient ``h[k]`` of its subchannel and its power; a feature not selected, or
selected at zero power, is not sent (``m = 0``, ``h = 0``, ``p = 0``: the receiver knows the
allocation and zero-fills it). :func:`allocated_features` maps one to the other, one thread per
feature, and :func:`chunk_plan_device` computes
:func:`channels.kernels.cuda_link.chunk_plan` from the device's ``m``, so nothing but the
number of threads to launch comes back to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

THREADS = (8, 32)  # frames x features per block


@cuda.jit
def allocated_features_kernel(
    selected, subchannel, modulation, power, h_re, h_im, mod_bits, m_out, hf_re, hf_im, p_out
):  # noqa: ANN001, ANN201, E501 (CUDA kernel)
    """Thread ``(b, i)``: feature ``i`` of frame ``b`` (module docstring)."""
    b, i = cuda.grid(2)
    if b >= selected.shape[0] or i >= selected.shape[1]:
        return
    m, re, im, p = 0, 0.0, 0.0, 0.0
    if selected[b, i]:
        k = subchannel[b, i]
        p = power[b, i]
        if p > 0.0:
            m = mod_bits[max(modulation[b, i], 0)]
            re, im = h_re[b, k], h_im[b, k]
        else:  # NaN or zero power: not sent
            p = 0.0
    m_out[b, i] = m
    hf_re[b, i] = re
    hf_im[b, i] = im
    p_out[b, i] = p


def allocated_features(
    selected: Any,
    subchannel: Any,
    modulation: Any,
    power: Any,
    h_re: Any,
    h_im: Any,
    mod_bits: np.ndarray,
    stream: Any = 0,
) -> tuple[Any, Any, Any, Any]:
    """``(m int8, h_re, h_im, power float64)``, device arrays ``[B, N]``, of the allocation
    ``selected, subchannel, modulation, power [B, N]`` over the coefficients
    ``h_re, h_im [B, K]``; ``mod_bits[j]`` is the bits per symbol of modulation ``j``."""
    b, n = selected.shape
    m = cuda.device_array((b, n), np.int8, stream=stream)
    hf_re = cuda.device_array((b, n), np.float64, stream=stream)
    hf_im = cuda.device_array((b, n), np.float64, stream=stream)
    p = cuda.device_array((b, n), np.float64, stream=stream)
    if b and n:
        blocks = (-(-b // THREADS[0]), -(-n // THREADS[1]))
        allocated_features_kernel[blocks, THREADS, stream](
            selected, subchannel, modulation, power, h_re, h_im,
            cuda.to_device(np.asarray(mod_bits, dtype=np.int64), stream=stream),
            m, hf_re, hf_im, p,
        )  # fmt: skip
    return m, hf_re, hf_im, p


def chunk_plan_device(
    bits_per_symbol: Any, n_scalars: int, q: int | np.ndarray, chunk: int | np.ndarray
) -> tuple[Any, Any, int]:
    """:func:`channels.kernels.cuda_link.chunk_plan` (grouped) of a device array
    ``bits_per_symbol [B, N]``: ``(order int32 [B·N], offsets int64 [B·N + 1], threads)`` as
    CUDA torch tensors, computed on the device (a stable sort by ``m``, then prefix sums);
    only ``threads = offsets[-1]`` comes to the host."""
    import torch

    m2 = torch.as_tensor(bits_per_symbol, device="cuda")
    n_features = m2.shape[-1] if m2.dim() else 1
    m = m2.reshape(-1).to(torch.int64)
    order = torch.sort(m, stable=True).indices
    m = m[order]
    q_t = torch.as_tensor(np.asarray(q, dtype=np.int64), device=m.device)
    c_t = torch.as_tensor(np.asarray(chunk, dtype=np.int64), device=m.device)
    if q_t.dim() or c_t.dim():  # per feature: the feature of job k is order[k] % N
        feature = order % max(n_features, 1)
        q_t = torch.broadcast_to(q_t, (n_features,))[feature]
        c_t = torch.broadcast_to(c_t, (n_features,))[feature]
    symbols = torch.where(m > 0, -torch.div(-(n_scalars * q_t), m.clamp(min=1),
                                            rounding_mode="floor"), 0)  # fmt: skip
    chunks = -torch.div(-symbols, c_t, rounding_mode="floor")
    offsets = torch.zeros(m.numel() + 1, dtype=torch.int64, device=m.device)
    torch.cumsum(chunks, 0, out=offsets[1:])
    return order.to(torch.int32), offsets, int(offsets[-1])


__all__ = ["allocated_features", "allocated_features_kernel", "chunk_plan_device"]
