"""Block-fading coefficients of a batch of trials, each from its own NumPy stream, compiled for
the CPU (a Numba-parallel loop) and the GPU (one CUDA thread per trial).

Trial ``t`` of prefix ``P`` draws ``2K`` normals from ``default_rng((*P, t))``
(:mod:`channels.kernels.normal_stream`): ``a = z[:K]``, ``b = z[K:]``, then, with NumPy's own
arithmetic for ``complex_normal`` and the line of sight (complex division by ``sqrt 2`` is a
multiplication by ``1 / sqrt 2``; a real scalar times a complex array scales both parts):

- ``w = (a c, b c)``, ``c = 1 / sqrt 2``;
- Rayleigh (or Rician with ``K = 0``): ``h = w``;
- Rician: ``h = (s_los + s_sc w_re, s_sc w_im)``, ``s_los = sqrt(K/(K+1))``,
  ``s_sc = sqrt(1/(K+1))`` (line-of-sight phase 0).

The CPU kernel's ``h`` equals :func:`channels.fading.fading_coefficients` drawn from
``default_rng((*P, t))`` bit for bit. The GPU kernel runs the same source; it also returns the
power gains ``|h|^2`` as NumPy's complex ``abs`` computes them (``l sqrt(1 + (s/l)^2)``,
``l = max(|re|, |im|)``, ``s = min``, with a fused multiply-add as NumPy's SIMD loop has on
any x86-64 with FMA), squared. The products that precede a sum are unfused on the GPU
(``libdevice.dmul_rn``), so only CUDA's ``log1p`` and ``exp`` can round a last bit
differently from the host's libm: they enter the ziggurat's tail (``|z| > 3.65``, about 3 in
10,000 draws) and its wedge test (a decision that flips only for a uniform within an ulp of
the bound). Every other normal is integer arithmetic and one exact product.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import cuda
from numba.cuda import libdevice

from channels.kernels.normal_stream import make_trial_normals, product
from channels.kernels.ziggurat_tables import FI, KI, WI

INV_SQRT2 = 1.0 / math.sqrt(2.0)
SCRATCH = 8  # uint64 words of a trial's stream state (normal_stream's scratch layout)

# a product the GPU compiler cannot fuse with the sum after it (the simulator has no libdevice)
device_product = (
    cuda.jit(device=True)(product) if numba.config.ENABLE_CUDASIM else libdevice.dmul_rn
)
trial_normals_cpu = make_trial_normals(numba.njit(inline="always"))
trial_normals_cuda = make_trial_normals(cuda.jit(device=True), device_product)


def amplitudes(model: str, k_factor: float) -> tuple[float, float, bool]:
    """``(s_los, s_sc, rician)`` of a fading model (module docstring)."""
    if model == "rician" and k_factor != 0:
        return math.sqrt(k_factor / (k_factor + 1.0)), math.sqrt(1.0 / (k_factor + 1.0)), True
    return 0.0, 1.0, False


@numba.njit(parallel=True, cache=True)
def fading_trials_cpu(prefix_words, trials, los, scatter, rician, ki, wi, fi, h_re, h_im):  # noqa: ANN001, ANN201
    """Fill ``h_re, h_im [T, K]`` (float64) for ``trials [T]`` (uint64), threads over trials."""
    k = h_re.shape[1]
    for t in numba.prange(trials.shape[0]):
        scratch = np.empty(SCRATCH, dtype=np.uint64)
        z = np.empty(2 * k)
        trial_normals_cpu(prefix_words, trials[t], ki, wi, fi, scratch, z)
        for j in range(k):
            w_re, w_im = z[j] * INV_SQRT2, z[k + j] * INV_SQRT2
            if rician:
                h_re[t, j] = los + scatter * w_re
                h_im[t, j] = scatter * w_im
            else:
                h_re[t, j] = w_re
                h_im[t, j] = w_im


@cuda.jit
def fading_trials_kernel(
    prefix_words, trials, los, scatter, rician, ki, wi, fi, z, h_re, h_im, gains
):  # noqa: ANN001, ANN201, E501 (CUDA kernel)
    """One thread per trial: ``z [T, 2K]`` is its normals' workspace; fills ``h_re, h_im`` and
    ``gains = |h|^2`` (``[T, K]``, float64)."""
    t = cuda.grid(1)
    if t >= trials.shape[0]:
        return
    scratch = cuda.local.array(SCRATCH, dtype=numba.uint64)
    row = z[t]
    trial_normals_cuda(prefix_words, trials[t], ki, wi, fi, scratch, row)
    k = h_re.shape[1]
    for j in range(k):
        w_re, w_im = row[j] * INV_SQRT2, row[k + j] * INV_SQRT2
        if rician:
            re = los + device_product(scatter, w_re)
            im = scatter * w_im
        else:
            re, im = w_re, w_im
        h_re[t, j] = re
        h_im[t, j] = im
        a, b = abs(re), abs(im)
        larger, smaller = max(a, b), min(a, b)
        ratio = smaller / larger if larger > 0.0 else 0.0
        magnitude = math.sqrt(cuda.fma(ratio, ratio, 1.0)) * larger
        gains[t, j] = magnitude * magnitude


_DEVICE_TABLES: dict[int, tuple[Any, Any, Any]] = {}


def device_tables() -> tuple[Any, Any, Any]:
    """The ziggurat tables on the current GPU (copied once per context)."""
    key = 0 if numba.config.ENABLE_CUDASIM else id(cuda.current_context())
    if key not in _DEVICE_TABLES:
        _DEVICE_TABLES[key] = (cuda.to_device(KI), cuda.to_device(WI), cuda.to_device(FI))
    return _DEVICE_TABLES[key]


__all__ = [
    "amplitudes",
    "device_product",
    "device_tables",
    "fading_trials_cpu",
    "fading_trials_kernel",
    "trial_normals_cpu",
    "trial_normals_cuda",
]
