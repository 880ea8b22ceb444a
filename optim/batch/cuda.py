"""The GPU twin of the batched solver: one frame per CUDA thread, the CPU's per-frame code.

The per-frame functions of :mod:`optim.batch.pipeline` and :mod:`optim.batch.refine` (and
everything they call: :mod:`~optim.batch.arith`, :mod:`~optim.batch.hungarian`,
:mod:`~optim.batch.dual`, :mod:`~optim.batch.local`, and the per-frame solver's kernels in
:mod:`optim.ber_model`, :mod:`optim.optimal_power`, :mod:`optim.assignment`,
:mod:`optim.slots` and :mod:`optim.dual`) are compiled a
second time as CUDA device functions (:mod:`optim.twin`); the kernels below only pick the
thread's frame, hand it its part of the preallocated workspace and write its output row.
Everything is float64, so a frame's result equals the CPU's: the same discrete choices and the
objective to the last bits, except where the GPU's ``log``, ``exp``, ``erfc`` and ``sqrt``
(libdevice) round differently from the CPU's libm by an ulp, which can move the objective by
about ``1e-15`` relative and, in principle, flip an exact tie between two candidates. One
deliberate difference: water-filling rows of more than 32 useful entries sort ties by index on
the GPU (:func:`optim.water_fill.sort_decreasing`).

Kernels:

- the pipeline (the hierarchical family with ``refine=False``) and the fixed baselines: each
  scratch array is ``[..., F]`` with the frame last and thread ``b`` works on the strided view
  ``[..., b]``, so a warp's threads touch consecutive addresses (coalesced). Measured on one
  H100 at ``N = K = 16``: about 1e6 frames/s for 65,536 frames, 57x the 16-core CPU backend
  (``benchmarks/bench_solve_batch_gpu.py``).
- the refined family (dual starts, local search, polish): each thread gets a contiguous
  workspace row (about 0.9 MB at ``N = K = 16``) that it carves into arrays; batches larger
  than :data:`WORKSPACE_BYTES` run in several launches. Correct (it equals the CPU under the
  CUDA simulator) but slow: its compilation took 144 s on an H100 and 4,096 frames did not
  finish within 130 s there (the frames of a warp take different paths through the local
  search, so the warp serialises them; a per-warp design would be needed), so
  ``backend="auto"`` runs it on the CPU.

Inputs and outputs live on the device: :func:`run_pipeline`, :func:`run_fixed` and
:func:`run_refined` take a device array of gains (checked by :func:`device_gains`) and return
device arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from optim.batch.pipeline import (
    fixed_frame_into,
    frame_objective,
    pipeline_float_size,
    pipeline_frame_into,
    pipeline_int_size,
)
from optim.batch.power_memo import PowerMemo
from optim.batch.refine import (
    Config,
    Shared,
    hierarchical_float_size,
    hierarchical_frame_into,
    hierarchical_int_size,
)
from optim.ber_model import BerModel
from optim.problem import Problem
from optim.snr_range import gain_bounds, gain_rule
from optim.twin import cuda_kernel

THREADS_PER_BLOCK = 64
WORKSPACE_BYTES = 4 << 30
"""Device memory the refined kernel's per-frame workspaces may take at once: larger batches
run in several launches of as many frames as fit."""
_KERNELS: dict[str, Any] = {}


def _pipeline_kernel(gains, perms, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                     n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                     w, floor, slope, drop, m_kind, m_a, m_b, m_qw, m_qb, m_nt, m_f0, m_lnmu0,
                     m_h, m_lng, m_h_tab, m_lng0, m_dlng, m_tg, m_tf, m_td, fw, iw, lt, ct, cost,
                     terms, best_v, best_row, best_p, best_s, cost_n, sel, sub, mod, pw, obj):  # noqa: ANN001, ANN202  # fmt: skip
    b = cuda.grid(1)
    if b >= gains.shape[0]:
        return
    bm = BerModel(m_kind, m_a, m_b, m_qw, m_qb, m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab,
                  m_lng0, m_dlng, m_tg, m_tf, m_td)  # fmt: skip
    pb = b if perms.shape[0] > 1 else 0
    for i in range(order.size):
        sel[b, i] = False
        sub[b, i] = -1
        mod[b, i] = -1
        pw[b, i] = 0.0
    g = gains[b]
    pipeline_frame_into(g, perms[pb], noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                        bm, n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                        fw[:, b], iw[:, b], lt[:, :, b], ct[:, :, b], cost[:, :, b],
                        terms[:, :, b], best_v[:, b], best_row[:, b], best_p[:, :, b],
                        best_s[:, :, b], sel[b], sub[b], mod[b], pw[b])  # fmt: skip
    obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], g, noise, w, floor, slope, drop, qw,
                             qs, ba, bb, exact, cost_n[:, b])  # fmt: skip


def _fixed_kernel(gains, perms, noise, P, n, m, alpha, A, B, matching, power_mode, w, floor,
                  slope, drop, qw, qs, ba, bb, exact, iw, fw, cost_n, sel, sub, mod, pw, obj):  # noqa: ANN001, ANN202  # fmt: skip
    b = cuda.grid(1)
    if b >= gains.shape[0]:
        return
    pb = b if perms.shape[0] > 1 else 0
    for i in range(w.size):
        sel[b, i] = False
        sub[b, i] = -1
        mod[b, i] = -1
        pw[b, i] = 0.0
    g = gains[b]
    fixed_frame_into(g, perms[pb], noise, P, n, m, alpha, A, B, matching, power_mode, iw[:, b],
                     fw[:, b], sel[b], sub[b], mod[b], pw[b])  # fmt: skip
    obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], g, noise, w, floor, slope, drop, qw,
                             qs, ba, bb, exact, cost_n[:, b])  # fmt: skip


def _refined_kernel(gains, perms, w, slope, floor, drop, ws, wf, wd, e, wd_sum, dot_drop, S,
                    smax, P, noise, A, B, qw, qs, ba, bb, exact, m_kind, m_a, m_b, m_qw, m_qb,
                    m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab, m_lng0, m_dlng, m_tg, m_tf, m_td,
                    drop_rank, offsets, x_a, x_v, x_m, x_n, x_budget, x_p, x_val, x_lev, x_state,
                    refine, r_iters,
                    st_power, st_mod, st_match, st_sel, refine_starts, margin, local_max,
                    n_dual_starts, dual_applies, equal, exact_first, order, ws_r, wf_r, tail,
                    n_max, pats, row_w, n_start, n_count, matching, iters, uniform, w0, floor0,
                    slope0, drop0, first, fb, ib, wb, outs, cost_n, sel, sub, mod, pw, obj):  # noqa: ANN001, ANN202  # fmt: skip
    t = cuda.grid(1)
    b = first + t
    if t >= fb.shape[0] or b >= gains.shape[0]:
        return
    bm = BerModel(m_kind, m_a, m_b, m_qw, m_qb, m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab,
                  m_lng0, m_dlng, m_tg, m_tf, m_td)  # fmt: skip
    memo = PowerMemo(x_a, x_v, x_m, x_n, x_budget, x_p, x_val, x_lev, x_state)  # empty, shared
    c = Shared(w, slope, floor, drop, ws, wf, wd, e, wd_sum, dot_drop, S, smax, P, noise, A, B,
               qw, qs, ba, bb, exact, bm, drop_rank, offsets, memo)  # fmt: skip
    cfg = Config(refine, r_iters, st_power, st_mod, st_match, st_sel, refine_starts, margin,
                 local_max, n_dual_starts, dual_applies, equal, exact_first)  # fmt: skip
    pb = b if perms.shape[0] > 1 else 0
    g = gains[b]
    f_out = outs[t, 0]
    s_out = outs[t, 1]
    p_out = outs[t, 2]
    w_out = wb[t]
    n_out = hierarchical_frame_into(c, cfg, g, perms[pb], order, ws_r, wf_r, tail, n_max, pats,
                                    row_w, n_start, n_count, matching, iters, uniform, f_out,
                                    s_out, p_out, w_out, fb[t], ib[t])  # fmt: skip
    for i in range(order.size):
        sel[b, i] = False
        sub[b, i] = -1
        mod[b, i] = -1
        pw[b, i] = 0.0
    for j in range(n_out):
        i = f_out[j]
        sel[b, i] = True
        sub[b, i] = s_out[j]
        mod[b, i] = p_out[j]
        pw[b, i] = w_out[j]
    obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], g, noise, w0, floor0, slope0, drop0,
                             qw, qs, ba, bb, exact, cost_n[:, t])  # fmt: skip


def _check_kernel(gains, out, first, low, high):  # noqa: ANN001, ANN202
    """Copy ``gains`` [F, K] (any float dtype and strides) into ``out`` (float64, contiguous)
    and lower ``first[0]`` to the flat index of the row's first non-finite or negative entry,
    or positive entry outside ``[low, high]`` (:func:`optim.snr_range.gain_bounds`)."""
    b = cuda.grid(1)
    if b >= gains.shape[0]:
        return
    k = gains.shape[1]
    for j in range(k):
        v = gains[b, j] * 1.0
        out[b, j] = v
        if not (math.isfinite(v) and v >= 0.0) or (v > 0.0 and (v < low or v > high)):
            cuda.atomic.min(first, 0, b * k + j)
            return


def _kernel(name: str) -> Any:
    if name not in _KERNELS:
        src = {"pipeline": _pipeline_kernel, "fixed": _fixed_kernel, "check": _check_kernel,
               "refined": _refined_kernel}  # fmt: skip
        _KERNELS[name] = cuda_kernel(src[name])
    return _KERNELS[name]


def _grid(frames: int) -> tuple[int, int]:
    return (max(1, math.ceil(frames / THREADS_PER_BLOCK)), THREADS_PER_BLOCK)


def is_device_array(x: Any) -> bool:
    """Whether ``x`` lives on the GPU: it exposes ``__cuda_array_interface__`` (a Numba device
    array, a CUDA torch tensor, a CuPy array, ...), or is the CUDA simulator's device array."""
    if hasattr(x, "__cuda_array_interface__"):
        return True
    return not isinstance(x, np.ndarray) and hasattr(x, "copy_to_host")


def device_gains(gains: Any, template: Problem) -> Any:
    """``gains`` on the device as a C-contiguous float64 array [F, K] of finite entries >= 0,
    each positive one within the SNR range of ``template``'s budget and noise
    (:mod:`optim.snr_range`).

    Host input (a NumPy array already checked by :func:`optim.batch.solve.check_gains`) is
    copied; device input is checked and copied by a kernel, and only the first bad entry (if
    any) comes back to the host.

    Raises:
        ConfigError: the same one-line messages as the CPU path (shape, or ``gains[b, k]``).
    """
    from channels.errors import ConfigError, fail

    if not is_device_array(gains):
        return cuda.to_device(np.ascontiguousarray(gains, dtype=np.float64))
    arr = cuda.as_cuda_array(gains) if hasattr(gains, "__cuda_array_interface__") else gains
    if arr.ndim != 2:
        raise ConfigError(
            f"gains: shape {tuple(arr.shape)} is invalid; allowed: an array [B, K] "
            "(frames, subchannels)"
        )
    if arr.dtype.kind not in "fiu":
        raise ConfigError(
            f"gains: dtype {arr.dtype} is invalid; allowed: an array [B, K] of finite numbers >= 0"
        )
    frames, k = arr.shape
    out = cuda.device_array((frames, k), np.float64)
    if frames * k == 0:
        return out
    first = cuda.to_device(np.array([frames * k], np.int64))
    power, noise = float(template.power_budget), float(template.noise_power)
    low, high = gain_bounds(power, noise)
    _kernel("check")[_grid(frames)](arr, out, first, low, high)
    idx = int(first.copy_to_host()[0])
    if idx < frames * k:
        b, j = divmod(idx, k)
        value = float(out[b : b + 1, j : j + 1].copy_to_host()[0, 0])
        finite = math.isfinite(value) and value >= 0.0
        raise fail(f"gains[{b}, {j}]", value,
                   gain_rule(power, noise) if finite else "finite numbers >= 0")  # fmt: skip
    return out


def _outputs(frames: int, nf: int) -> tuple:
    return (
        cuda.device_array((frames, nf), np.bool_),
        cuda.device_array((frames, nf), np.int64),
        cuda.device_array((frames, nf), np.int64),
        cuda.device_array((frames, nf), np.float64),
        cuda.device_array(frames, np.float64),
    )


def _dev(x: Any) -> Any:
    return cuda.to_device(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


def run_pipeline(gains, perms, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                 n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                 w, floor, slope, drop, model) -> tuple:  # noqa: ANN001  # fmt: skip
    """:func:`optim.batch.pipeline.pipeline_batch` on the GPU (``gains``: a checked device
    array [F, K]; the other arrays on the host; ``model``: the problem's
    :data:`optim.ber_model.BerModel`); returns device arrays ``(selected, subchannel,
    modulation, power, objective)``."""
    frames, k = gains.shape
    nf = order.size
    wmax = max(n_max, 1)
    n_mod = A.size
    f = max(frames, 1)
    work = (
        cuda.device_array((pipeline_float_size(n_max, k), f)),
        cuda.device_array((pipeline_int_size(n_max, k), f), np.int64),
        cuda.device_array((wmax, n_mod, f)),
        cuda.device_array((wmax, n_mod, f)),
        cuda.device_array((wmax, max(k, 1), f)),
        cuda.device_array((wmax, n_mod, f)),
        cuda.device_array((n_max + 1, f)),
        cuda.device_array((n_max + 1, f), np.int64),
        cuda.device_array((n_max + 1, wmax, f)),
        cuda.device_array((n_max + 1, wmax, f), np.int64),
        cuda.device_array((max(nf, 1), f)),
    )
    out = _outputs(frames, nf)
    if frames:
        args = (gains, perms, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                n_max, pats, row_w, n_start, n_count, matching, power_mode, iters, w, floor,
                slope, drop, *model)  # fmt: skip
        _kernel("pipeline")[_grid(frames)](*(_dev(x) for x in args), *work, *out)
    return out


def run_fixed(gains, perms, noise, P, n, m, alpha, A, B, matching, power_mode,
              w, floor, slope, drop, qw, qs, ba, bb, exact) -> tuple:  # noqa: ANN001  # fmt: skip
    """:func:`optim.batch.pipeline.fixed_batch` on the GPU (as :func:`run_pipeline`)."""
    frames, k = gains.shape
    nf = w.size
    f = max(frames, 1)
    work = (
        cuda.device_array((max(k, 1) + max(n, 1), f), np.int64),
        cuda.device_array((3 * max(n, 1), f)),
        cuda.device_array((max(nf, 1), f)),
    )
    out = _outputs(frames, nf)
    if frames:
        args = (gains, perms, noise, P, n, m, alpha, A, B, matching, power_mode, w, floor, slope,
                drop, qw, qs, ba, bb, exact)  # fmt: skip
        _kernel("fixed")[_grid(frames)](*(_dev(x) for x in args), *work, *out)
    return out


def run_refined(gains, perms, shared, cfg, order, ws_r, wf_r, tail, n_max, pats, row_w, n_start,
                n_count, matching, iters, uniform, w0, floor0, slope0, drop0) -> tuple:  # noqa: ANN001  # fmt: skip
    """:func:`optim.batch.refine.hierarchical_batch` on the GPU, one frame per thread (the
    refined hierarchical family); as :func:`run_pipeline`. The per-frame workspace is a
    contiguous row per thread; batches whose workspaces exceed :data:`WORKSPACE_BYTES` run in
    several launches."""
    frames, k = gains.shape
    nf = order.size
    n_mod = shared.A.size
    n_fs = hierarchical_float_size(nf, k, n_mod, n_max, shared.offsets.size, cfg.refine_starts,
                                   cfg.dual_starts)  # fmt: skip
    n_is = hierarchical_int_size(nf, k, n_mod, n_max, shared.offsets.size, cfg.refine_starts,
                                 cfg.dual_starts)  # fmt: skip
    W = max(nf, 1) + 1
    per_frame = 8 * (n_fs + n_is + 4 * W + nf)
    chunk = max(THREADS_PER_BLOCK, min(max(frames, 1), WORKSPACE_BYTES // per_frame))
    out = _outputs(frames, nf)
    if not frames:
        return out
    fb = cuda.device_array((chunk, n_fs))
    ib = cuda.device_array((chunk, n_is), np.int64)
    wb = cuda.device_array((chunk, W))
    outs = cuda.device_array((chunk, 3, W), np.int64)
    cost_n = cuda.device_array((max(nf, 1), chunk))
    args = (gains, perms, *shared[:21], *shared.mod, *shared[22:24], *shared.memo, *cfg, order,
            ws_r, wf_r, tail, n_max, pats, row_w, n_start, n_count, matching, iters, uniform, w0,
            floor0, slope0, drop0)  # fmt: skip
    dev = tuple(_dev(x) for x in args)
    kernel = _kernel("refined")
    for first in range(0, frames, chunk):
        count = min(chunk, frames - first)
        kernel[_grid(count)](*dev, first, fb, ib, wb, outs, cost_n, *out)
    return out
