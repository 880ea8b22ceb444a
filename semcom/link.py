"""The end-to-end semantic link (docs/architecture.md data flow; docs/method.md §4-§5).

Per image (one *frame*)::

    x [C, H, W] --encoder--> z [N, L] in [-1, 1] --quantiser (Q_i bits, channels.bits)--> codes
      --channel draw: h_k, k = 1..K (channels.fading: awgn | rayleigh | rician), g_k = |h_k|^2
      --optim.solve(Problem(w, d_drop, L, Q, g, sigma^2 = 1, P_tot, S_max), method)
            -> selected features, subchannel, modulation, per-symbol power
      --link kernel (channels.kernels.link_cpu, or its CUDA twin): bits -> Gray symbols
            -> h sqrt(p) x + n -> zero forcing -> hard decisions -> received codes
      --de-quantiser; dropped features zero-filled--> ẑ --decoder--> x̂

Budgets (docs/method.md §4.3, §4.6, σ² = 1): ``P_tot = 10^(snr_db/10) · K`` (so the average SNR
``P_tot / (K σ²)`` is ``snr_db``) and ``S_max = η · N · L · Q / 2`` (``η = 1``: all ``N``
features fit in QPSK).

**Bits per feature.** ``bits_per_scalar`` is one ``Q`` for every feature or a sequence of
``N`` values ``Q_i`` ([OUR CHOICE], docs/method.md §4.5): feature ``i`` is quantised with
``Q_i`` bits (its codes in ``0..2^Q_i - 1``, :func:`quantize_torch` / :func:`dequantize_torch`
or :func:`channels.bits.quantize` per feature), the allocation problem gets ``Q[N]`` (so a
feature's bits set its symbols in the budget) and the kernels carry each feature's
``L·Q_i`` bits. ``S_max`` then uses the mean ``Q`` (docs/method.md §4.6). A sequence of equal
values gives exactly the results of the single ``Q`` (same problem, bits, noise and channel
draws). The kernel's noise variance per complex symbol is ``no = σ² = 1`` and
the allocation's powers are per-symbol powers in the same units, so feature ``i`` on
subchannel ``k`` sees ``γ = g_k p_i / σ²`` (docs/conventions.md).

**Zero-power features.** A feature that the allocation selects with power ``p_i = 0``
carries no energy, so it is not transmitted: the receiver, which knows the allocation, zero-fills
it like a dropped feature, and it counts neither as sent nor in the BER. Decoding the pure noise
instead would hand the decoder uniformly random codes (bit-error rate 1/2). This case arises when
``w_i = 0``: the objective is then indifferent to that feature's errors, and the solver can select
it at zero power. An example is an ISFR model whose tail features have clipped masking weights
of exactly 0 (docs/isfr_training.md).

**Selection step.** With ``selection`` (a token-reducing importance estimator,
:mod:`semcom.importance.reduction`) and ``keep``, each image first goes through
``selection.reduce(model, images, keep)``: its features outside the per-image ``keep`` mask are
not sent (zero-filled at the receiver, like any unsent feature), the kept ones carry the
reduction's ``features`` (a merged feature its group's merged value), and the frame's
allocation is the problem restricted to the kept features (weights ``w ⊙ keep`` with the
dropped features forced unselected; budgets unchanged). The frame's objective is that of the
full problem, the dropped features counted at their drop distortion. Without ``selection``
nothing changes.

**Batched allocation.** :meth:`SemanticLink.simulate` draws every frame's gains first (each
from its own generator, as above), then solves all of the batch's problems in one compiled,
thread-parallel call, :func:`optim.solve_batch`, which equals ``optim.solve`` frame by frame.
A selection step (a per-frame kept set), a randomised method without a ``seed`` option (a seed
per frame) or an option the batched solver does not run take the per-frame ``optim.solve``
loop instead, with the same frames. Frames with equal gains (every AWGN frame) are solved once.
With ``backend="cuda"`` the batched solver runs where it is faster
(:func:`optim.batch.faster_on_gpu`): the baselines and the hierarchical family without
refinement on the GPU (one frame per thread, the same
allocations as the CPU; see :func:`optim.solve_batch`), the refined family and ``exact`` on
the CPU, where they are faster. The per-frame streams (below, *Randomness*) are seeded and
drawn in compiled kernels (:func:`channels.fading.trial_fading`, bit for bit NumPy's), so no
generator object is built per frame.

**Channel state.** Every frame gets a :class:`~semcom.channel_state.ChannelState`: the link's
``snr_db`` and channel class and ``gain_db = 10 log10(mean_k g_k)`` of its drawn gains (the
noiseless link: AWGN at its SNR, 300 dB when infinite, gain 0). All frames' gains are drawn
before encoding, so a ``conditioned`` model (channel-conditioned experts) encodes and decodes
each frame with its state; models without a true ``conditioned`` attribute are called without
one. The selection step's ``reduce`` sees no state. :attr:`LinkFrames.state` holds the states.

**Noiseless link.** ``channel="noiseless"`` or ``snr_db=inf`` is the ideal digital link, the
quantisation-only reference: every feature is selected (no budgets, no optimiser), each is sent
over a unit gain at unit power without noise (highest-order modulation of the set, through
the same kernel), so ``transmit(x) == decode(dequantise(quantise(encode(x))))`` exactly.

**Randomness.** Every draw of frame ``(draw, image)`` comes from ``(seed, point(draw), trial)``
with ``trial`` = the image's index in the data set (``first_image + b``) and
``point(draw)`` a CRC-32 of the link's parameters and the draw index
(:func:`channels.montecarlo.point_index`): the fading of a frame from
``numpy.random.default_rng((seed, point, trial))``, the seed of a randomised allocation method
from the same generator, the noise from the kernel's Philox stream keyed by the seed with
counter ``(symbol, trial, point, 0)``. A frame's result does not depend on batch size, thread
count or which other frames run.

**Backends.** ``backend="cpu"`` runs the link kernel on the CPU (Numba). ``"cuda"`` runs its
Numba-CUDA twin (:mod:`channels.kernels.cuda_link`, float32 fast mode: the CPU's noise within
float32 rounding, statistically the CPU's results). When the model is on a CUDA device the
frames stay there: quantisation (:func:`quantize_torch`, the codes of
:func:`channels.bits.quantize`), the link kernel on the tensors (zero-copy through
``__cuda_array_interface__``) and de-quantisation (:func:`dequantize_torch`) run on the GPU,
and only the per-frame allocation (modulation, gain and power per feature) and the bit-error
counts cross PCIe. Where the solver runs on the GPU too (a CUDA model, the GPU family of
:func:`optim.batch.faster_on_gpu`, no per-frame seed, selection step or LDPC-coded entry), the
batch never leaves the GPU: each frame's fading is drawn there from its own stream
(:func:`channels.fading.trial_fading_device`: NumPy's normals, the last bit of CUDA's
``log1p``/``exp`` aside), the allocation is solved there (``optim.solve_batch(...,
out="device")``), mapped to per-feature inputs and chunk plan there
(:mod:`channels.kernels.cuda_frames`) and sent; only the frames' results (bits per symbol, bit
errors, objective, gains: ``[B, N]`` and ``[B, K]`` arrays) come back. ``"auto"`` is
``"cuda"`` when a GPU is present (:func:`channels.kernels.backend.resolve_backend`).

**Intervals.** :meth:`SemanticLink.evaluate` sends every image through ``n_draws`` independent
channel draws. The images are the independent units: each image's metric is averaged over its
draws, and the Student-t interval is taken over the images (over the draws when there is one
image). The BER interval is Wilson's with the effective sample size of correlated errors
(:func:`channels.montecarlo.block_interval`, one block per sent feature of ``L·Q`` bits; with
per-feature ``Q_i`` the blocks differ in size: :func:`channels.montecarlo.ratio_block_interval`).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

import optim
from channels.bits import CODES, dequantize, quantize
from channels.coded import is_coded, parse_entry
from channels.coded_link import transmit_coded
from channels.errors import ConfigError, check_int, check_real, fail
from channels.fading import fading_coefficients, trial_fading
from channels.feature_bits import bits_array, check_bits_per_scalar, is_uniform
from channels.kernels.backend import resolve_backend
from channels.kernels.link_cpu import transmit_codes
from channels.montecarlo import point_index
from channels.names import BITS_PER_SYMBOL
from optim.batch import faster_on_gpu
from optim.distortion import objective as allocation_objective
from optim.problem import DEFAULT_MODULATIONS, Problem
from semcom.channel_state import CHANNEL_CLASSES, ChannelState
from semcom.evaluation import LinkEvaluation, LinkResult
from semcom.importance.base import as_images, check_model, eval_mode, model_dtype_device
from semcom.importance.reduction import check_keep
from semcom.limits import MAX_RICIAN_K, SNR_DB_LIMIT
from semcom.registry import ALLOCATION

CHANNELS = ("awgn", "rayleigh", "rician", "noiseless")
"""Channel models: those of :mod:`channels.fading` and the ideal ``noiseless`` link."""

NOISE_POWER = 1.0
"""σ², the noise variance per complex symbol (docs/method.md §4.3 normalisation)."""
REDUCTION_CACHE = 64
"""Image batches whose selection-step result a link keeps (most recent first out last)."""

MAX_BITS_PER_SCALAR = 16


def drop_distortion(model: Any, images: Any, batch_size: int = 256) -> np.ndarray:
    """Per-scalar distortion of dropping each feature, ``d_drop,i = E[z_l^2]``, float64 ``[N]``.

    The mean of ``z_l^2`` over the images and the ``L`` scalars of feature ``i``
    (docs/method.md §4.5: a dropped feature is zero-filled at the receiver), with
    ``z = model.encode(images)``.
    """
    check_model(model)
    images = as_images(images)
    dtype, device = model_dtype_device(model, images)
    total = np.zeros(int(model.n_features))
    with eval_mode(model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            z = model.encode(images[start : start + batch_size].to(device=device, dtype=dtype))
            total += z.to(torch.float64).pow(2).mean(dim=2).sum(dim=0).cpu().numpy()
    return total / images.shape[0]


def _per_feature(q: Any, like: torch.Tensor) -> torch.Tensor:
    """``Q_i`` as a float64 column ``[N, 1]`` of ``2^Q_i`` on ``like``'s device (exact)."""
    levels = 2.0 ** np.asarray(q, dtype=np.float64).reshape(-1, 1)
    return torch.as_tensor(levels, dtype=torch.float64, device=like.device)


def quantize_torch(z: torch.Tensor, bits_per_scalar: Any, code: str = "binary") -> torch.Tensor:
    """:func:`channels.bits.quantize` on a tensor, on its device: the same codes.

    ``i = min(floor((clip(z, -1, 1) + 1) · 2^Q / 2), 2^Q - 1)`` in float64 (exact: the
    operations are those of the NumPy version, in IEEE float64), Gray-coded for
    ``code="gray"``. Returns int16 (int32 for ``Q = 16``) ``[..., n]``. NaN is not checked here.
    ``bits_per_scalar`` is one ``Q`` or ``Q_i`` per feature (``[N]``, for ``z [..., N, L]``:
    feature ``i`` gets the codes of ``quantize(z[..., i, :], Q_i)``).
    """
    if np.ndim(bits_per_scalar) == 0:
        levels = 1 << int(bits_per_scalar)
        scaled = (z.to(torch.float64).clamp(-1.0, 1.0) + 1.0) * (levels / 2.0)
        indices = torch.floor(scaled).clamp_max(levels - 1).to(torch.int32)
    else:
        levels = _per_feature(bits_per_scalar, z)
        scaled = (z.to(torch.float64).clamp(-1.0, 1.0) + 1.0) * (levels / 2.0)
        indices = torch.minimum(torch.floor(scaled), levels - 1.0).to(torch.int32)
    if code == "gray":
        indices = indices ^ (indices >> 1)
    return indices.to(torch.int16 if np.max(bits_per_scalar) <= 15 else torch.int32)


def dequantize_torch(
    codes: torch.Tensor, bits_per_scalar: Any, code: str = "binary"
) -> torch.Tensor:
    """:func:`channels.bits.dequantize` on a tensor, with ``-1`` (feature not sent) -> 0.

    ``ẑ = -1 + (i + 1/2) · 2 / 2^Q`` in float64 (Gray codes decoded first), ``ẑ = 0`` where
    ``codes == -1``: the CPU path's ``where(sent, dequantize(max(codes, 0)), 0)``. With
    per-feature ``Q_i`` (``[N]``, ``codes [..., N, L]``), feature ``i``'s step is ``2 / 2^Q_i``.
    """
    c = codes.to(torch.int32).clamp_min(0)
    if code == "gray":
        for shift in (1, 2, 4, 8):
            c = c ^ (c >> shift)
    if np.ndim(bits_per_scalar) == 0:
        step = 2.0 / (1 << int(bits_per_scalar))
    else:
        step = 2.0 / _per_feature(bits_per_scalar, codes)
    z_hat = (c.to(torch.float64) + 0.5) * step + -1.0
    return torch.where(codes >= 0, z_hat, torch.zeros_like(z_hat))


def quantize_features(z: np.ndarray, bits_per_scalar: Any, code: str = "binary") -> np.ndarray:
    """:func:`channels.bits.quantize` of ``z [..., N, L]`` with one ``Q`` or ``Q_i`` per feature
    (each feature's codes those of ``quantize(z[..., i, :], Q_i)``), int64."""
    if np.ndim(bits_per_scalar) == 0:
        return quantize(z, int(bits_per_scalar), code)
    q = np.asarray(bits_per_scalar)
    out = np.empty(z.shape, dtype=np.int64)
    for value in np.unique(q):
        idx = np.flatnonzero(q == value)
        out[..., idx, :] = quantize(z[..., idx, :], int(value), code)
    return out


def dequantize_features(
    codes: np.ndarray, bits_per_scalar: Any, code: str = "binary"
) -> np.ndarray:
    """:func:`channels.bits.dequantize` of ``codes [..., N, L]`` with one ``Q`` or ``Q_i`` per
    feature, float64."""
    if np.ndim(bits_per_scalar) == 0:
        return dequantize(codes, int(bits_per_scalar), code)
    q = np.asarray(bits_per_scalar)
    out = np.empty(codes.shape, dtype=np.float64)
    for value in np.unique(q):
        idx = np.flatnonzero(q == value)
        out[..., idx, :] = dequantize(codes[..., idx, :], int(value), code)
    return out


@dataclass(frozen=True)
class LinkFrames:
    """Everything one batch of frames produced (:meth:`SemanticLink.simulate`).

    Shapes: ``B`` frames, ``N`` features, ``L`` scalars, ``K`` subchannels.
    """

    x_hat: torch.Tensor
    """Decoded images ``[B, C, H, W]`` (model dtype and device)."""
    received: np.ndarray | torch.Tensor
    """Received features ``[B, N, L]`` float64 as computed: a NumPy array, or a tensor on the
    model's CUDA device (GPU path); :attr:`z_hat` is always NumPy."""
    sent: np.ndarray
    """bool ``[B, N]``: feature transmitted (selected by the allocation, with power > 0)."""
    bits_per_symbol: np.ndarray
    """int64 ``[B, N]``: modulation of each feature (0 if dropped)."""
    bit_errors: np.ndarray
    """int64 ``[B, N]``: bit errors per feature."""
    objective: np.ndarray
    """float64 ``[B]``: the allocation's objective (NaN for the noiseless link)."""
    gains: np.ndarray
    """float64 ``[B, K]``: subchannel power gains ``|h_k|^2``."""
    state: ChannelState | None = None
    """The frames' channel states (:meth:`SemanticLink.frame_states`), given to the encoder
    and decoder of a ``conditioned`` model."""

    @cached_property
    def z_hat(self) -> np.ndarray:
        """Received features ``[B, N, L]`` float64 (dequantised; dropped features 0), NumPy
        (copied from the device on first use on the GPU path)."""
        if isinstance(self.received, torch.Tensor):
            return self.received.detach().cpu().numpy()
        return self.received


def _transmit_on_device(
    codes: torch.Tensor,
    m: Any,
    h: np.ndarray | tuple[Any, Any],
    power: Any,
    no: float,
    q: int | np.ndarray,
    seed: int,
    point: int,
    trials: np.ndarray,
) -> tuple[torch.Tensor, np.ndarray]:
    """The link kernel on CUDA tensors: ``codes [B, N, L]`` (``quantize_torch``) -> received
    codes (a tensor on the same device, ``-1`` for features not sent) and the bit errors
    ``[B, N]`` (NumPy). ``m, h, power [B, N]`` are NumPy (``h`` complex; they and the chunk plan
    are copied to the device) or already there (Numba device arrays: ``m`` int8, ``h`` as
    ``(h_re, h_im)`` float64, ``power`` float64; the chunk plan is then computed there too).
    Only the bit errors come back. The kernels run on PyTorch's current stream, after the work
    that produced ``codes`` (hence ``sync=False``: no host wait for it).
    """
    from numba import cuda

    from channels.kernels import philox
    from channels.kernels.cuda_frames import chunk_plan_device
    from channels.kernels.cuda_link import (
        chunk_plan,
        chunk_sizes,
        device_tables,
        link_frames_device,
    )

    b, n, length = codes.shape
    codes = codes.contiguous()
    codes_hat = torch.empty_like(codes)
    if codes.numel() == 0:
        return codes_hat, np.zeros((b, n), dtype=np.int64)
    chunk = chunk_sizes(q)  # one C, or C_i per feature
    resident = isinstance(h, tuple)
    if resident:
        order, offsets, threads = chunk_plan_device(m, length, q, chunk)
        h_re, h_im = h
    else:
        order, offsets = chunk_plan(m, length, q, chunk)
        threads, h_re, h_im = int(offsets[-1]), h.real, h.imag
    key0, key1 = philox.seed_key(seed)
    with cuda.gpus[codes.device.index or 0]:
        stream = cuda.external_stream(torch.cuda.current_stream(codes.device).cuda_stream)

        def put(array: Any, dtype: type) -> Any:
            if torch.is_tensor(array):
                return cuda.as_cuda_array(array, sync=False)
            if resident:
                return array
            return cuda.to_device(np.ascontiguousarray(array, dtype=dtype), stream=stream)

        errors = cuda.device_array((b, n), dtype=np.int64, stream=stream)
        link_frames_device(
            cuda.as_cuda_array(codes, sync=False), put(m, np.int8), put(h_re, np.float64),
            put(h_im, np.float64), put(power, np.float64), math.sqrt(no / 2.0), q, key0, key1,
            point, cuda.to_device(trials.astype(np.uint32), stream=stream),
            put(order, np.int32), put(offsets, np.int64), threads, chunk, device_tables(),
            cuda.as_cuda_array(codes_hat, sync=False), errors, stream=stream,
        )  # fmt: skip
        bit_errors = errors.copy_to_host(stream=stream)
        stream.synchronize()
    return codes_hat, bit_errors


def link_point(
    channel: str,
    snr_db: float,
    rician_k: float,
    n_subchannels: int,
    eta: float,
    method: str,
    bits_key: Any,
    code: str,
    modulations: tuple[str, ...],
    ber_model: str,
) -> int:
    """The base stream index of a :class:`SemanticLink` (module docstring, *Randomness*).

    A CRC-32 (:func:`channels.montecarlo.point_index`) of the link's validated parameters:
    ``channel`` (``"noiseless"`` for an infinite SNR), ``snr_db``, ``rician_k`` (counted only
    for ``"rician"``), ``K``, ``eta``, the allocation ``method``, ``bits_key`` (the single
    ``Q``, or the tuple of ``Q_i`` when they differ), ``code``, the ``modulations`` as
    :class:`optim.Problem` stores them (sorted by bits per symbol, then name) and
    ``ber_model``. Draw ``d`` of the link uses ``point_index(link_point(...), d)``. The separate
    schemes (:mod:`semcom.separate`) draw their fading from the stream of a reference semantic
    link through this function, so both see the same gains per frame.

    Examples:
        >>> a = link_point("rayleigh", 5.0, 3.0, 4, 0.5, "hierarchical", 8, "binary",
        ...                ("qpsk",), "exact")
        >>> a == link_point("rayleigh", 5.0, 9.0, 4, 0.5, "hierarchical", 8, "binary",
        ...                 ("qpsk",), "exact")  # the K-factor counts only for rician
        True
    """
    return point_index(
        "semcom.link", channel, snr_db, rician_k if channel == "rician" else 0.0, n_subchannels,
        eta, method, bits_key, code, modulations, ber_model,
    )  # fmt: skip


def reference_point(
    values: dict[str, Any],
    method: str = "hierarchical",
    code: str = "binary",
    modulations: tuple[str, ...] = DEFAULT_MODULATIONS,
    ber_model: str = "exact",
) -> int:
    """The base stream index of the semantic link of a sweep condition with ``method``.

    ``values`` holds the condition (``channel``, ``snr_db``, ``rician_k``, ``n_subchannels``,
    ``eta``, ``bits_per_scalar``: one ``Q``); ``modulations`` and ``ber_model`` are normalised
    as :class:`SemanticLink` does (through a one-feature :class:`optim.Problem`), so the result
    equals ``SemanticLink(..., method=method, ...)._point`` for any model: the index does not
    depend on the model, weights or drop distortions. Raises ConfigError (one line) for a bad
    method, modulation set or BER model.
    """
    method = ALLOCATION.check(method)
    snr_db = float(values["snr_db"])
    channel = str(values["channel"]).strip().lower()
    if channel == "noiseless" or math.isinf(snr_db):
        channel = "noiseless"
    k = int(values["n_subchannels"])
    q = int(values["bits_per_scalar"])
    probe = Problem(
        gains=np.ones(k), weights=np.ones(1), drop_distortion=np.ones(1), power_budget=1.0,
        symbol_budget=1.0, scalars_per_feature=1, bits_per_scalar=q, noise_power=NOISE_POWER,
        modulations=tuple(modulations), ber_model=ber_model,
    )  # fmt: skip
    return link_point(
        channel, snr_db, float(values["rician_k"]), k, float(values["eta"]), method, q, code,
        probe.modulations, probe.ber_model,
    )  # fmt: skip


class SemanticLink:
    """Encoder -> quantiser -> per-frame allocation -> digital channel -> decoder -> metrics.

    Args:
        model: a ``SemanticModel`` (``encode(x) -> z [B, N, L]`` in [-1, 1], ``decode(z)``,
            ``n_features``, ``scalars_per_feature``); run in eval mode.
        weights: importance ``w[N]`` (>= 0; e.g. :func:`semcom.importance.estimate`).
        drop_distortion: ``d_drop[N]``, per-scalar MSE of a dropped feature, ``E[z^2]``
            (:func:`drop_distortion`).
        bits_per_scalar: ``Q`` in 1..16, or a sequence of ``N`` values ``Q_i`` in 1..16, one per
            feature (module docstring, *Bits per feature*).
        channel: ``"awgn"``, ``"rayleigh"``, ``"rician"`` or ``"noiseless"``.
        n_subchannels: ``K >= 0``.
        snr_db: average SNR ``P_tot / (K σ²)`` in dB (Es/N0 per complex symbol), in
            ``[-300, 300]`` (:data:`semcom.limits.SNR_DB_LIMIT`); ``inf`` = noiseless link.
        eta: symbol budget ``S_max = η N L Q / 2``, ``η >= 0`` (``Q``: the mean of ``Q_i``).
        method: an allocation method of ``optim.available_methods()``.
        rician_k: Rician K-factor (linear, ``0..1e6``), used by ``channel="rician"``.
        seed: 64-bit seed of every random draw.
        modulations: the modulation set of the allocation problem.
        ber_model: the allocation problem's BER model, ``"exact"`` or ``"bound"``.
        code: quantiser code, ``"binary"`` (docs/method.md §4.5) or ``"gray"``.
        method_options: options passed to ``optim.solve`` (e.g. ``{"refine": False}``).
        batch_size: images per encoder/decoder pass (memory only).
        backend: where the link kernel runs: ``"auto"``, ``"cpu"`` or ``"cuda"`` (module
            docstring, *Backends*).
        selection: None, or an estimator with ``reduce(model, images, keep) -> Reduction``
            (fitted where it needs to be): the selection step (module docstring).
        keep: features kept per image by ``selection``, ``1..N`` (required with it).

    Invalid arguments raise :class:`ConfigError` here, before any work.

    Examples:
        An untrained digits model sends 4 features of 2 images over Rayleigh fading:

        >>> import numpy as np, torch
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> model = build_model("mlp", n_features=4)
        >>> images = torch.rand(2, 1, 8, 8)
        >>> w = np.full(4, 0.25)                      # uniform importance
        >>> d = drop_distortion(model, images)        # E[z^2] per feature, [4]
        >>> link = SemanticLink(model, w, d, channel="rayleigh", n_subchannels=4, snr_db=5.0)
        >>> link.transmit(images, draw=0).shape
        torch.Size([2, 1, 8, 8])
        >>> result = link.evaluate(images, n_draws=2)
        >>> result.n_images, result.n_draws
        (2, 2)
    """

    def __init__(
        self,
        model: Any,
        weights: Any,
        drop_distortion: Any,
        bits_per_scalar: int | Any = 8,
        channel: str = "rayleigh",
        n_subchannels: int = 16,
        snr_db: float = 10.0,
        eta: float = 0.5,
        method: str = "hierarchical",
        rician_k: float = 3.0,
        seed: int = 0,
        *,
        modulations: tuple[str, ...] = DEFAULT_MODULATIONS,
        ber_model: str = "exact",
        code: str = "binary",
        method_options: dict[str, Any] | None = None,
        batch_size: int = 256,
        backend: str = "auto",
        selection: Any = None,
        keep: int | None = None,
    ) -> None:
        self.model = check_model(model)
        if not hasattr(model, "scalars_per_feature"):
            raise fail("model", type(model).__name__, "a SemanticModel with scalars_per_feature")
        self.n_features = int(model.n_features)
        self.scalars_per_feature = int(model.scalars_per_feature)
        if np.ndim(bits_per_scalar) == 0 or isinstance(bits_per_scalar, str):
            self.bits_per_scalar = check_int(
                "bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR
            )
        else:
            self.bits_per_scalar = check_bits_per_scalar(
                "bits_per_scalar", bits_per_scalar, self.n_features, MAX_BITS_PER_SCALAR
            )
        key = str(channel).strip().lower()
        if key not in CHANNELS:
            raise ConfigError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
        self.snr_db = check_real(
            "snr_db", snr_db, -SNR_DB_LIMIT, SNR_DB_LIMIT, also=(math.inf,), coerce=True,
            allowed=f"a finite number in [{-SNR_DB_LIMIT:g}, {SNR_DB_LIMIT:g}] or inf",
        )  # fmt: skip
        self.noiseless = key == "noiseless" or math.isinf(self.snr_db)
        self.channel = "noiseless" if self.noiseless else key
        self.n_subchannels = check_int("n_subchannels", n_subchannels, 0, 2**20)
        self.eta = check_real("eta", eta, 0.0, coerce=True, allowed="a finite number >= 0")
        self.rician_k = check_real(
            "rician_k", rician_k, 0.0, MAX_RICIAN_K, coerce=True,
            allowed=f"a finite number in [0, {MAX_RICIAN_K:g}]",
        )  # fmt: skip
        self.method = ALLOCATION.check(method)
        self.seed = check_int("seed", seed, 0, 2**64 - 1)
        if code not in CODES:
            raise fail("code", code, " or ".join(CODES))
        self.code = code
        self.batch_size = check_int("batch_size", batch_size, 1, 2**31)
        self.backend = resolve_backend(backend)
        self.method_options = dict(method_options or {})
        q_sum = int(np.sum(bits_array(self.bits_per_scalar, self.n_features)))
        if self.scalars_per_feature * q_sum >= 2**32:
            q_text = (f"{self.n_features}*{self.scalars_per_feature}*{self.bits_per_scalar}"
                      if np.ndim(self.bits_per_scalar) == 0
                      else f"{self.scalars_per_feature}*{q_sum} (L * sum of Q_i)")  # fmt: skip
            raise fail("model", f"N*L*Q = {q_text}", "fewer than 2**32 bits per frame")
        for name, value in (("weights", weights), ("drop_distortion", drop_distortion)):
            if np.shape(value) != (self.n_features,):
                raise fail(name, f"array of shape {np.shape(value)}", f"shape ({self.n_features},)")
        # the allocation problem's fields are validated once, by optim, on a template
        power = 1.0 if self.noiseless else 10.0 ** (self.snr_db / 10.0) * self.n_subchannels
        q_mean = self.bits_per_scalar  # the mean Q_i with per-feature Q (exact for equal ones)
        if np.ndim(q_mean):
            q_mean = q_sum / self.n_features if self.n_features else 0.0
        self._template = dict(
            weights=weights, drop_distortion=drop_distortion,
            power_budget=power,
            symbol_budget=self.eta * self.n_features * self.scalars_per_feature * q_mean / 2.0,
            scalars_per_feature=self.scalars_per_feature, bits_per_scalar=self.bits_per_scalar,
            noise_power=NOISE_POWER, modulations=tuple(modulations), ber_model=ber_model,
        )  # fmt: skip
        probe = Problem(gains=np.ones(self.n_subchannels), **self._template)
        self._template.update(
            weights=probe.weights, drop_distortion=probe.drop_distortion,
            modulations=probe.modulations, ber_model=probe.ber_model,
        )  # fmt: skip
        self.weights = probe.weights
        self.drop_distortion = probe.drop_distortion
        self.modulations = probe.modulations
        self.ber_model = probe.ber_model
        self._check_method_options(probe)
        self._randomised = bool(getattr(ALLOCATION.get(self.method), "randomised", False))
        # a randomised method without a seed option draws each frame's seed from the frame's
        # generator, after its fading
        self._per_frame_seed = self._randomised and "seed" not in self.method_options
        # equal Q_i are the single Q here too, so both give the same streams
        q_key = self.bits_per_scalar
        if np.ndim(q_key):
            q_key = int(q_key[0]) if is_uniform(q_key) and q_key.size else tuple(q_key.tolist())
        self._point = link_point(
            self.channel, self.snr_db, self.rician_k, self.n_subchannels, self.eta, self.method,
            q_key, self.code, self.modulations, self.ber_model,
        )  # fmt: skip
        # the template problem of optim.solve_batch (its gains are ignored there)
        self._problem = probe
        self._batchable: bool | None = None  # None: not tried yet
        # on a GPU link the batched solver runs where it is faster (its GPU family on the GPU)
        on_gpu = self.backend == "cuda" and faster_on_gpu(self.method, self.method_options)
        self._solver_backend = "cuda" if on_gpu else "cpu"
        self._mod_bits = np.array(
            [BITS_PER_SYMBOL[parse_entry(name)[0]] for name in self.modulations], dtype=np.int64
        )
        self._mod_coded = np.array([is_coded(name) for name in self.modulations], dtype=bool)
        self.selection, self.keep = None, None
        if selection is not None:
            if not callable(getattr(selection, "reduce", None)):
                raise fail("selection", type(selection).__name__,
                           "an importance estimator with reduce(model, images, keep)")  # fmt: skip
            self.selection, self.keep = selection, check_keep(keep, self.n_features)
        elif keep is not None:
            raise fail("keep", keep, "None without a selection step")
        # The selection step depends on the images only, not on the channel draw: its result
        # is kept for the most recent image batches (every draw of an evaluation reuses it).
        self._reductions: OrderedDict[bytes, tuple[torch.Tensor, np.ndarray]] = OrderedDict()

    # ------------------------------------------------------------------------------ setup
    def _check_method_options(self, problem: Problem) -> None:
        """Options must be accepted by the method: checked by one solve of a template problem
        (only when options are given; optim reports unknown ones as ConfigError)."""
        if not self.method_options:
            return
        options = dict(self.method_options)
        if getattr(ALLOCATION.get(self.method), "randomised", False):
            options.setdefault("seed", 0)
        try:
            optim.solve(problem, self.method, **options)
        except ConfigError as err:
            raise ConfigError(f"method_options: {err} (method {self.method!r})") from None

    @classmethod
    def from_data(
        cls, model: Any, images: Any, importance: str = "masking", **kwargs: Any
    ) -> SemanticLink:
        """A link whose weights (``importance`` method) and drop distortion come from ``images``."""
        from semcom.importance import estimate

        weights = estimate(model, images, method=importance)
        return cls(model, weights, drop_distortion(model, images), **kwargs)

    def draw_point(self, draw: int) -> int:
        """The 32-bit stream index of channel draw ``draw`` (CRC-32 of the link and ``draw``)."""
        return point_index(self._point, int(draw))

    @property
    def problem(self) -> Problem:
        """The allocation problem every frame shares, all but its gains (the template of
        :func:`optim.solve_batch`; its own gains are ones)."""
        return self._problem

    def config(self) -> dict[str, Any]:
        """The link's parameters (JSON-ready)."""
        return {
            "channel": self.channel, "snr_db": self.snr_db, "n_subchannels": self.n_subchannels,
            "eta": self.eta, "method": self.method, "rician_k": self.rician_k, "seed": self.seed,
            "bits_per_scalar": (self.bits_per_scalar.tolist() if np.ndim(self.bits_per_scalar)
                                else self.bits_per_scalar), "code": self.code,
            "modulations": list(self.modulations), "ber_model": self.ber_model,
            "n_features": self.n_features, "scalars_per_feature": self.scalars_per_feature,
            "backend": self.backend,
        }  # fmt: skip

    # ----------------------------------------------------------------------------- frames
    def _draw_fading(self, rng: np.random.Generator) -> np.ndarray:
        """One frame's subchannel coefficients ``h [K]`` (complex128), the first draw of its
        generator (the allocation's draws, if any, follow on the same generator)."""
        return np.asarray(
            fading_coefficients(self.channel, (self.n_subchannels,), rng=rng,
                                k_factor=self._k_factor)
        )  # fmt: skip

    def _allocate_frames(
        self,
        rngs: list[np.random.Generator],
        gains: np.ndarray,
        kept: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The allocations of a batch's frames, one (P0) per frame.

        ``gains [B, K]`` were drawn from ``rngs`` (one generator per frame); a randomised
        method without a ``seed`` option draws each frame's seed next from its generator.
        ``kept`` (bool ``[B, N]``, selection step only): each frame chooses among its kept
        features (module docstring, *Selection step*).

        The frames go to :func:`optim.solve_batch` in one compiled call when the method and
        options are batched there (no selection step, no per-frame seed); otherwise each frame
        goes to :func:`optim.solve`. Both give the same allocations (``optim.solve_batch``'s
        contract). Frames with equal gains (and kept features) are solved once (AWGN: every
        frame), deterministic methods giving them equal allocations.

        Returns:
            ``(selected bool [B, N], subchannel int64 [B, N], modulation int64 [B, N]`` (index
            into :attr:`modulations`; ``-1`` unsent), ``power float64 [B, N]``,
            ``objective float64 [B])``.
        """
        b, n = gains.shape[0], self.n_features
        per_frame_seed = self._per_frame_seed
        seeds = [int(rng.integers(2**63)) for rng in rngs] if per_frame_seed else None
        if per_frame_seed:
            rows, inverse = np.arange(b), np.arange(b)
        else:
            key = gains if kept is None else np.concatenate([gains, kept], axis=1)
            _, rows, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
        if kept is None and seeds is None and self._batchable is not False:
            try:
                out = optim.solve_batch(self._problem, gains[rows], self.method,
                                        backend=self._solver_backend, out="host",
                                        **self.method_options)  # fmt: skip
            except ConfigError:  # an option the batched solver does not run
                self._batchable = False
            else:
                self._batchable = True
                arrays = (out.selected, out.subchannel, out.modulation, out.power, out.objective)
                return tuple(a[inverse] for a in arrays)  # type: ignore[return-value]
        selected = np.zeros((rows.size, n), dtype=bool)
        subchannel = np.full((rows.size, n), -1, dtype=np.int64)
        modulation = np.full((rows.size, n), -1, dtype=np.int64)
        power = np.zeros((rows.size, n))
        objective = np.empty(rows.size)
        index_of = {name: i for i, name in enumerate(self.modulations)}
        for r, j in enumerate(rows):
            options = dict(self.method_options)
            if seeds is not None:
                options["seed"] = seeds[j]
            if kept is None:
                result = self._solve(Problem(gains=gains[j], **self._template), options)
                allocation, objective[r] = result.allocation, float(result.objective)
            else:
                allocation, objective[r] = self._allocate_kept(gains[j], kept[j], options)
            sel = allocation.selected
            selected[r, sel] = True
            subchannel[r, sel] = allocation.subchannel
            modulation[r, sel] = [index_of[name] for name in allocation.modulation]
            power[r, sel] = allocation.power
        return (selected[inverse], subchannel[inverse], modulation[inverse], power[inverse],
                objective[inverse])  # fmt: skip

    def _solve(self, problem: Problem, options: dict[str, Any]) -> Any:
        """``optim.solve`` of one frame; an exact allocation must be proven optimal."""
        result = optim.solve(problem, self.method, **options)
        if result.status is not None and not result.status["optimal"]:
            raise ConfigError(
                f"method: {self.method!r} stopped by {result.status['stopped_by']} with gap "
                f"{result.status['gap']:.3g}, not proven optimal; raise its time_limit "
                "(method_options) or use another method"
            )
        return result

    def _allocate_kept(
        self, gains: np.ndarray, kept: np.ndarray, options: dict[str, Any]
    ) -> tuple[optim.Allocation, float]:
        """The allocation among the ``kept`` features: the problem restricted to them (the
        others cannot be selected), mapped back to feature indices; the objective is the full
        problem's, with the dropped features at their drop distortion."""
        index = np.flatnonzero(kept)
        sub = Problem(gains=gains, **{
            **self._template,
            "weights": self.weights[index], "drop_distortion": self.drop_distortion[index],
        })  # fmt: skip
        chosen = self._solve(sub, options).allocation
        allocation = optim.Allocation(index[chosen.selected], chosen.subchannel,
                                      chosen.modulation, chosen.power)  # fmt: skip
        full = Problem(gains=gains, **self._template)
        return allocation, float(allocation_objective(full, allocation))

    def simulate(self, images: Any, draw: int = 0, first_image: int = 0) -> LinkFrames:
        """Send each image of ``images [B, C, H, W]`` through its own channel draw.

        ``draw`` selects the channel realisation (0, 1, ...); ``first_image`` is the index of
        ``images[0]`` in the whole data set (frame ``b`` uses trial ``first_image + b``), so
        splitting a data set into batches does not change any frame.
        """
        images = as_images(images)
        draw = check_int("draw", draw, 0, 2**31)
        first_image = check_int("first_image", first_image, 0, 2**32 - images.shape[0])
        dtype, device = model_dtype_device(self.model, images)
        n, length, q = self.n_features, self.scalars_per_feature, self.bits_per_scalar
        b = images.shape[0]
        point = self.draw_point(draw)
        trials = np.arange(first_image, first_image + b, dtype=np.int64)
        # every frame's channel is drawn before encoding: a conditioned model encodes with it
        rngs = []
        fading = np.ones((b, self.n_subchannels), dtype=np.complex128)
        resident = self._resident(device)
        if resident:  # drawn, solved and sent on the GPU (module docstring, *Backends*)
            from channels.fading import trial_fading_device

            h_dev = trial_fading_device(self.channel, self.n_subchannels, (self.seed, point),
                                        trials, self._k_factor)  # fmt: skip
            gains = torch.as_tensor(h_dev[2], device=device)
        elif self.noiseless:
            pass
        elif self._per_frame_seed:  # the allocation draws on from each frame's generator
            for j, trial in enumerate(trials):
                rngs.append(np.random.default_rng((self.seed, point, int(trial))))
                fading[j] = self._draw_fading(rngs[-1])
        else:  # the same draws, without a generator object per frame
            fading = self._trial_fading(point, trials)
        if not resident:
            gains = np.abs(fading) ** 2
        state = self.frame_states(gains, device)
        conditioned = bool(getattr(self.model, "conditioned", False))

        def chunk_state(s: int) -> tuple[Any, ...]:
            return (state[s : s + self.batch_size],) if conditioned else ()

        kept = None
        if self.selection is not None:
            z, kept = self._reduce(images, device, dtype)
        else:
            with eval_mode(self.model), torch.no_grad():
                z = torch.cat([
                    self.model.encode(
                        images[s : s + self.batch_size].to(device=device, dtype=dtype),
                        *chunk_state(s))
                    for s in range(0, b, self.batch_size)
                ])  # fmt: skip
        if tuple(z.shape) != (b, n, length):
            raise ConfigError(f"model: encode returned shape {tuple(z.shape)}; "
                              f"expected [B, N={n}, L={length}]")  # fmt: skip
        on_device = self.backend == "cuda" and z.is_cuda
        if on_device:  # codes stay on the GPU; the NaN check waits until the allocation is done
            codes = quantize_torch(z, q, self.code)
            has_nan = torch.isnan(z).any()
        else:
            codes = quantize_features(z.to(torch.float64).cpu().numpy(), q, self.code)

        if resident and on_device:  # the allocation and its tables stay on the GPU
            from channels.kernels.cuda_frames import allocated_features

            try:
                alloc = optim.solve_batch(self._problem, h_dev[2], self.method, backend="cuda",
                                          out="device", **self.method_options)  # fmt: skip
            except ConfigError:  # an option the batched solver does not run
                self._batchable = False
                return self.simulate(images, draw, first_image)
            self._batchable = True
            link_m, h_re, h_im, p_feat = allocated_features(
                alloc.selected, alloc.subchannel, alloc.modulation, alloc.power, h_dev[0],
                h_dev[1], self._mod_bits,
            )  # fmt: skip
            h_feat = (h_re, h_im)
            # the frames' results come to the host; nothing the link kernel needs does
            m = link_m.copy_to_host().astype(np.int64)
            objective, gains = alloc.objective.copy_to_host(), h_dev[2].copy_to_host()
            coded = np.zeros((b, n), dtype=bool)
        else:
            if resident:  # an encoder that returned host features: the host path, same draws
                fading = self._trial_fading(point, trials)
                gains = np.abs(fading) ** 2
            m, h_feat, p_feat, objective, coded, entries = self._frame_tables(
                rngs, gains, fading, kept
            )
            link_m = m
        if coded.any():  # coded features go through LDPC on the CPU (channels.coded_link)
            on_device = False
            if torch.is_tensor(codes):
                codes = codes.cpu().numpy()
        no = 0.0 if self.noiseless else NOISE_POWER
        sent = m > 0
        if on_device:
            if bool(has_nan):
                raise fail("z", float("nan"), "real values (those outside [-1, 1] are clipped); "
                           "not NaN")  # fmt: skip
            codes_hat, bit_errors = _transmit_on_device(
                codes, link_m, h_feat, p_feat, no, q, self.seed, point, trials
            )
            received = dequantize_torch(codes_hat, q, self.code)
        else:
            out = transmit_codes(codes, np.where(coded, 0, m), h_feat, p_feat, no, q,
                                 seed=self.seed, point=point, trials=trials,
                                 backend=self.backend)  # fmt: skip
            bit_errors, codes_hat = out.bit_errors, out.codes_hat
            if coded.any():
                ldpc = transmit_coded(codes, entries, h_feat, p_feat, no, q, seed=self.seed,
                                      point=point, trials=trials)  # fmt: skip
                codes_hat = np.where(coded[:, :, None], ldpc.codes_hat, codes_hat)
                bit_errors = np.where(coded, ldpc.bit_errors, bit_errors)
            z_hat = dequantize_features(np.maximum(codes_hat, 0), q, self.code)
            received = np.where(sent[:, :, None], z_hat, 0.0)
        z_in = torch.as_tensor(received).to(device=device, dtype=z.dtype)
        with eval_mode(self.model), torch.no_grad():
            x_hat = torch.cat([
                self.model.decode(z_in[s : s + self.batch_size], *chunk_state(s))
                for s in range(0, b, self.batch_size)
            ])  # fmt: skip
        return LinkFrames(x_hat, received, sent, m, bit_errors, objective, gains, state)

    @property
    def _k_factor(self) -> float:
        return self.rician_k if self.channel == "rician" else 0.0

    def _resident(self, device: torch.device) -> bool:
        """Whether a batch's frames are drawn, solved and sent without leaving the GPU: a CUDA
        link and model, the solver on the GPU (:func:`optim.batch.faster_on_gpu`), no per-frame
        seed, selection step or LDPC-coded entry, and a channel with noise."""
        return (
            self.backend == "cuda"
            and torch.device(device).type == "cuda"
            and self._solver_backend == "cuda"
            and self._batchable is not False
            and not self.noiseless
            and not self._per_frame_seed
            and self.selection is None
            and not self._mod_coded.any()
        )

    def _trial_fading(self, point: int, trials: np.ndarray) -> np.ndarray:
        """The frames' coefficients ``h [B, K]``, each from its own stream
        ``default_rng((seed, point, trial))`` (:func:`channels.fading.trial_fading`)."""
        return trial_fading(self.channel, self.n_subchannels, (self.seed, point), trials,
                            self._k_factor)  # fmt: skip

    def _frame_tables(
        self,
        rngs: list[np.random.Generator],
        gains: np.ndarray,
        fading: np.ndarray,
        kept: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
        """The link kernels' per-feature inputs on the host: ``(m int64, h complex128,
        p float64`` ``[B, N]``, ``objective [B]``, ``coded bool [B, N]``, ``entries``: the coded
        modulation of each coded feature, else None). The noiseless link sends every (kept)
        feature at the highest order, unit gain and power; otherwise the frames' allocations
        (:meth:`_allocate_frames`) choose, and a feature selected at zero power is not sent."""
        b, n = gains.shape[0], self.n_features
        m = np.zeros((b, n), dtype=np.int64)
        h_feat = np.zeros((b, n), dtype=np.complex128)
        p_feat = np.zeros((b, n))
        objective = np.full(b, math.nan)
        coded = np.zeros((b, n), dtype=bool)  # features sent with a coded entry (LDPC)
        entries: list[list[str | None]] = [[None] * n for _ in range(b)]
        if self.noiseless:
            m[:] = max(BITS_PER_SYMBOL[parse_entry(name)[0]] for name in self.modulations)
            h_feat[:] = 1.0
            p_feat[:] = 1.0
            if kept is not None:
                m[~kept], h_feat[~kept], p_feat[~kept] = 0, 0.0, 0.0
        else:
            selected, subchannel, modulation, power, objective = self._allocate_frames(
                rngs, gains, kept
            )
            mod = np.maximum(modulation, 0)
            m[selected] = self._mod_bits[mod[selected]]
            coded = selected & self._mod_coded[mod]
            for j, i in zip(*np.nonzero(coded), strict=True):
                entries[j][i] = self.modulations[modulation[j, i]]
            h_feat[selected] = fading[np.nonzero(selected)[0], subchannel[selected]]
            p_feat[selected] = power[selected]
            # a feature selected at zero power carries no energy: the receiver knows the
            # allocation and zero-fills it like a dropped feature (module docstring)
            unpowered = (m > 0) & ~(p_feat > 0.0)
            m[unpowered], h_feat[unpowered], p_feat[unpowered] = 0, 0.0, 0.0
            coded &= ~unpowered
        return m, h_feat, p_feat, objective, coded, entries

    def frame_states(self, gains: np.ndarray | torch.Tensor, device: Any = "cpu") -> ChannelState:
        """The frames' channel states from their subchannel gains ``[B, K]`` (NumPy, or a
        tensor on the GPU where the link drew them there).

        ``snr_db`` = the link's, ``gain_db = 10 log10(mean_k g_k)`` (0 without subchannels),
        ``channel`` = the link's class. The noiseless link reports AWGN at its SNR (300 dB when
        it is infinite) and gain 0.
        """
        b = gains.shape[0]
        if self.noiseless:
            snr = self.snr_db if math.isfinite(self.snr_db) else SNR_DB_LIMIT
            return ChannelState.constant(snr, "awgn", b, device)
        if torch.is_tensor(gains):  # drawn on the GPU: the same formula there
            mean = gains.mean(dim=1) if gains.shape[1] else torch.ones(b, device=gains.device)
            gain_db = (10.0 * torch.log10(mean)).clamp(min=-SNR_DB_LIMIT)
        else:
            mean = gains.mean(axis=1) if gains.shape[1] else np.ones(b)
            with np.errstate(divide="ignore"):
                gain_db = np.maximum(10.0 * np.log10(mean), -SNR_DB_LIMIT)
        return ChannelState(
            torch.full((b,), self.snr_db, dtype=torch.float32, device=device),
            torch.as_tensor(gain_db, dtype=torch.float32, device=device),
            torch.full((b,), CHANNEL_CLASSES.index(self.channel), dtype=torch.int64,
                       device=device),
        )  # fmt: skip

    def _reduce(
        self, images: torch.Tensor, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, np.ndarray]:
        """The selection step on ``images``: ``(z to send [B, N, L], kept bool [B, N])``.

        Cached by the images' content (a BLAKE2 digest of their bytes, dtype and shape) for the
        last :data:`REDUCTION_CACHE` batches, so the draws of one evaluation run ``reduce`` once.
        """
        x = images.detach().to("cpu").contiguous()
        digest = hashlib.blake2b(x.numpy().tobytes(), digest_size=20)
        digest.update(f"{x.dtype}{tuple(x.shape)}{device}{dtype}".encode())
        key = digest.digest()
        if key in self._reductions:
            self._reductions.move_to_end(key)
            return self._reductions[key]
        z, kept = self._reduce_uncached(images, device, dtype)
        self._reductions[key] = (z, kept)
        while len(self._reductions) > REDUCTION_CACHE:
            self._reductions.popitem(last=False)
        return z, kept

    def _reduce_uncached(
        self, images: torch.Tensor, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, np.ndarray]:
        b, n = images.shape[0], self.n_features
        features, masks = [], []
        with eval_mode(self.model):
            for s in range(0, b, self.batch_size):
                batch = images[s : s + self.batch_size].to(device=device, dtype=dtype)
                reduction = self.selection.reduce(self.model, batch, self.keep)
                counts = reduction.keep.sum(dim=1)
                if reduction.keep.shape != (batch.shape[0], n) or bool((counts != self.keep).any()):
                    raise ConfigError(f"selection: reduce kept {counts.tolist()} features per "
                                      f"image; expected exactly keep={self.keep}")  # fmt: skip
                features.append(reduction.features.detach().to(device=device, dtype=dtype))
                masks.append(reduction.keep.detach().cpu().numpy())
        kept = np.concatenate(masks)
        z = torch.cat(features) * torch.as_tensor(kept, device=device).unsqueeze(-1)
        return z, kept

    def transmit(self, images: Any, draw: int = 0, *, first_image: int = 0) -> torch.Tensor:
        """Received images ``x̂ [B, C, H, W]``: one channel draw per image (frame)."""
        return self.simulate(images, draw, first_image).x_hat

    # --------------------------------------------------------------------------- metrics
    def evaluate(
        self,
        images: Any,
        n_draws: int = 1,
        labels: Any = None,
        confidence: float = 0.95,
        ci_method: str = "t",
        compute_ssim: bool = True,
        compute_ms_ssim: bool = False,
    ) -> LinkResult:
        """Monte Carlo over ``n_draws`` channel draws of every image; metrics with intervals.

        ``images`` is a tensor ``[B, C, H, W]`` in [0, 1] or a data set (``.images``, and
        ``.labels`` used for accuracy when ``labels`` is None and the model can ``classify``).
        ``ci_method`` is ``"t"`` (Student-t) or ``"bootstrap"`` (:func:`semcom.metrics.mean_ci`).
        Draws ``0..n_draws-1`` through a :class:`semcom.evaluation.LinkEvaluation`.
        """
        n_draws = check_int("n_draws", n_draws, 1, 2**31)
        evaluation = LinkEvaluation(
            self, images, labels, confidence=confidence, ci_method=ci_method,
            compute_ssim=compute_ssim, compute_ms_ssim=compute_ms_ssim,
        )  # fmt: skip
        for draw in range(n_draws):
            evaluation.add_draw(draw)
        return evaluation.result()


__all__ = [
    "CHANNELS",
    "LinkFrames",
    "LinkResult",
    "SemanticLink",
    "dequantize_features",
    "dequantize_torch",
    "drop_distortion",
    "link_point",
    "quantize_features",
    "quantize_torch",
    "reference_point",
]
