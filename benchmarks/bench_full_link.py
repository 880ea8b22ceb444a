"""Images/s of full-link evaluation on one GPU: encoder, quantiser, channel, de-quantiser,
decoder, and the share of the channel + distortion stage.

Model: ``semcom.models.build_model("cnn", 16, input_shape=[3, 32, 32])`` (N = 16 features of
L = 64 scalars), **random weights** (throughput does not depend on training), float32, eval
mode, on ``cuda:0``; the images are random 32x32 RGB batches already on the GPU (no data
loading). Q = 8 bits per scalar: 8192 bits per image.

Measured, each the median of ``--repeats`` runs after a warm-up, ``torch.cuda.synchronize()``
at both ends, per batch of ``--batch`` images:

(a) ``decode``: the decoder alone on received features ``[B, N, L]``.
(b) ``encode``: the encoder alone.
(c) ``full_cuda``: encode -> ``quantize_torch`` -> ``link_frames_device`` (fast float32
    kernel, zero-copy on the torch tensors) -> ``dequantize_torch`` -> decode, plus the
    importance-weighted distortion of the received features (``_squared_error`` and
    ``_weighted`` of :mod:`channels.kernels.cuda_link`). All on the GPU, on PyTorch's stream.
(d) ``stage_cuda``: the channel + distortion stage of (c) alone (quantise, link kernel,
    de-quantise, distortion) on precomputed features.
(e) ``full_cpu`` / ``stage_cpu``: the same with the stage on the CPU: features to the host,
    ``channels.bits.quantize``, the Numba CPU link kernel ``link_frames`` on all cores,
    ``dequantize``, ``distortion_frames``, received features back to the GPU.

The allocation is **precomputed and fixed** (the link kernel's share alone, without the
solver): per image and feature a modulation drawn from BPSK, QPSK,
16-QAM and 64-QAM, a Rayleigh gain ``h ~ CN(0, 1)`` and unit power, Es/N0 = 10 dB, all on the
device once; each repeat uses a new Philox point (new noise). Not included there: the per-frame
channel draw and allocation, measured end to end in (f).

(f) ``evaluate_rayleigh_allocation[_refined]``: ``SemanticLink.evaluate``'s work on
    ``--simulate-images`` images (a new Rayleigh draw of every image, the per-frame allocations
    through ``optim.solve_batch``: hierarchical without refinement on the GPU, with it on the
    CPU cores; the link kernels, decoding, PSNR/SSIM/BER). Without refinement the batch stays
    on the GPU (fading drawn there, allocation mapped there); ``..._host_frames`` is the same
    with the draws and the allocation's per-feature tables on the host (the link's path where
    the solver runs on the CPU), in the same run. Each row is the median of ``--draws`` draws
    after a warm-up draw; ``--skip-refined`` leaves out the refined row (its CPU solve).

    PYTHONPATH=. python benchmarks/bench_full_link.py --json benchmarks/results_full_link_h200.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Callable

import numba
import numpy as np
import torch
from bench_common import median_seconds
from numba import cuda

from channels.bits import dequantize, quantize
from channels.kernels import philox
from channels.kernels.cuda import launch_shape
from channels.kernels.cuda_link import (
    _squared_error,
    _weighted,
    chunk_plan,
    chunk_symbols,
    device_tables,
    link_frames_device,
)
from channels.kernels.distortion import distortion_frames
from channels.kernels.link_cpu import LABEL_AT, LEVEL_I, LEVEL_Q, link_frames
from semcom.link import SemanticLink, dequantize_torch, quantize_torch
from semcom.models import build_model

Q = 8
ESNO_DB = 10.0
MIX = (1, 2, 4, 6)


def indexed_median_seconds(fn: Callable[[int], object], repeats: int) -> tuple[float, list[float]]:
    """:func:`bench_common.median_seconds` of ``fn(0)`` (the warm-up), ``fn(1)``, ...,
    ``fn(repeats)``, each ended by ``torch.cuda.synchronize()``: the index picks the run's draw."""
    calls = itertools.count()
    return median_seconds(lambda: fn(next(calls)), repeats, torch.cuda.synchronize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1024, help="images per batch")
    parser.add_argument("--batches", type=int, default=8, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpu-batches", type=int, default=2, help="batches per CPU-stage run")
    parser.add_argument(
        "--simulate-images",
        type=int,
        default=8192,
        help="images of the end-to-end SemanticLink.evaluate measurement",
    )
    parser.add_argument("--end-to-end-only", action="store_true", help="section (f) alone")
    parser.add_argument("--draws", type=int, default=3, help="timed draws per row of (f)")
    parser.add_argument(
        "--skip-refined", action="store_true", help="(f) without its refined (CPU-solver) row"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    device = torch.device("cuda:0")
    torch.manual_seed(0)
    model = build_model("cnn", 16, input_shape=[3, 32, 32]).to(device).eval()
    n, length = int(model.n_features), int(model.scalars_per_feature)
    b = args.batch
    x = torch.rand(b, 3, 32, 32, device=device)
    with torch.no_grad():
        z_fixed = model.encode(x)

    # the fixed allocation, on the device once
    rng = np.random.default_rng(0)
    m = rng.choice(MIX, size=(b, n))
    h = (rng.standard_normal((b, n)) + 1j * rng.standard_normal((b, n))) / math.sqrt(2)
    power = np.ones((b, n))
    sigma = math.sqrt(10.0 ** (-ESNO_DB / 10.0) / 2.0)
    chunk = chunk_symbols(Q)
    order, offsets = chunk_plan(m, length, Q, chunk)
    key0, key1 = philox.seed_key(1)
    stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
    d = {name: cuda.to_device(np.ascontiguousarray(a)) for name, a in (
        ("m", m.astype(np.int8)), ("h_re", h.real), ("h_im", h.imag), ("p", power),
        ("trials", np.arange(b, dtype=np.uint32)), ("order", order), ("offsets", offsets),
        ("w", np.full((b, n), 1.0 / n)),
    )}  # fmt: skip
    tables = device_tables(True)
    codes_hat = torch.empty((b, n, length), dtype=torch.int16, device=device)
    d_codes_hat = cuda.as_cuda_array(codes_hat, sync=False)
    errors = cuda.device_array((b, n), dtype=np.int64)
    sq = cuda.device_array((b, n))
    weighted = cuda.device_array(b)

    def stage_cuda(z: torch.Tensor, point: int) -> torch.Tensor:
        codes = quantize_torch(z, Q)
        link_frames_device(
            cuda.as_cuda_array(codes, sync=False), d["m"], d["h_re"], d["h_im"], d["p"], sigma,
            Q, key0, key1, point, d["trials"], d["order"], d["offsets"], int(offsets[-1]), chunk,
            tables, d_codes_hat, errors, stream=stream,
        )  # fmt: skip
        z_hat = dequantize_torch(codes_hat, Q).to(z.dtype)
        blocks, threads = launch_shape(b * n, 256, None)
        _squared_error[blocks, threads, stream](
            cuda.as_cuda_array(z, sync=False), d_codes_hat, np.int64(Q), False, sq
        )
        blocks, threads = launch_shape(b, 256, None)
        _weighted[blocks, threads, stream](sq, d["w"], np.int64(length), weighted)
        return z_hat

    codes_out = np.empty((b, n, length), dtype=np.int64)
    errors_out = np.empty((b, n), dtype=np.int64)
    sq_cpu, weighted_cpu = np.empty((b, n)), np.empty(b)
    trials64 = np.arange(b, dtype=np.uint64)

    def stage_cpu(z: torch.Tensor, point: int) -> torch.Tensor:
        z_host = z.to(torch.float64).cpu().numpy()
        codes = quantize(z_host, Q)
        link_frames(codes, m, h.real.copy(), h.imag.copy(), power, sigma, Q, key0, key1,
                    np.uint64(point), trials64, LEVEL_I, LEVEL_Q, LABEL_AT, codes_out,
                    errors_out)  # fmt: skip
        z_hat = np.where(codes_out >= 0, dequantize(np.maximum(codes_out, 0), Q), 0.0)
        distortion_frames(z_host, codes_out, np.full((b, n), 1.0 / n), Q, False, sq_cpu,
                          weighted_cpu)  # fmt: skip
        return torch.from_numpy(z_hat).to(device=device, dtype=z.dtype)

    def repeat_batches(body: Callable[[int], object], batches: int) -> Callable[[int], None]:
        def run(k: int) -> None:
            with torch.no_grad():
                for j in range(batches):
                    body(k * batches + j)

        return run

    figures: dict = {}

    def measure(name: str, body: Callable[[int], object], batches: int) -> None:
        sec, times = indexed_median_seconds(repeat_batches(body, batches), args.repeats)
        images = batches * b
        figures[name] = {"images_s": images / sec, "seconds_per_batch": sec / batches,
                         "bit_s": images * n * length * Q / sec,
                         "times_s": times, "batches": batches}  # fmt: skip
        print(json.dumps({name: figures[name]["images_s"]}), flush=True)

    if not args.end_to_end_only:  # sections (a)-(e)
        measure("decode", lambda k: model.decode(z_fixed), args.batches)
        measure("encode", lambda k: model.encode(x), args.batches)
        measure("stage_cuda", lambda k: stage_cuda(z_fixed, k), args.batches)
        measure("full_cuda", lambda k: model.decode(stage_cuda(model.encode(x), k)), args.batches)
        measure("stage_cpu", lambda k: stage_cpu(z_fixed, k), args.cpu_batches)
        measure("full_cpu", lambda k: model.decode(stage_cpu(model.encode(x), k)), args.cpu_batches)

        for backend in ("cuda", "cpu"):
            full = figures[f"full_{backend}"]["seconds_per_batch"]
            stage = figures[f"stage_{backend}"]["seconds_per_batch"]
            rest = (
                full
                - figures["encode"]["seconds_per_batch"]
                - figures["decode"]["seconds_per_batch"]
            )
            figures[f"share_{backend}"] = {
                "stage_alone_over_full": stage / full,
                "full_minus_encode_decode_over_full": rest / full,
            }  # fmt: skip
        figures["full_cuda_over_decode"] = (
            figures["full_cuda"]["images_s"] / figures["decode"]["images_s"]
        )
        bits = int(errors.copy_to_host().sum())
        figures["last_batch_ber"] = bits / (b * n * length * Q)

    # end to end: SemanticLink.evaluate's work (LinkEvaluation.add_draw: a new Rayleigh draw of
    # every image, its per-frame allocation through optim.solve_batch, the link kernels, the
    # decoder, PSNR/SSIM/BER), hierarchical with and without its refinement (without: solved on
    # the GPU, one frame per thread; with: on the CPU's cores, where it is faster)
    from semcom.evaluation import LinkEvaluation

    # its own images: x holds only --batch of them
    images = torch.rand(args.simulate_images, 3, 32, 32, device=device)
    rows = [
        ("evaluate_rayleigh_allocation", {"refine": False}, True),
        ("evaluate_rayleigh_allocation_host_frames", {"refine": False}, False),
        ("evaluate_rayleigh_allocation_refined", {}, False),
    ]
    for label, options, resident in rows[:2] if args.skip_refined else rows:
        link = SemanticLink(model, np.full(n, 1.0 / n), np.full(n, 1e-2), bits_per_scalar=Q,
                            channel="rayleigh", snr_db=ESNO_DB, n_subchannels=16, eta=0.5,
                            method_options=options, backend="cuda")  # fmt: skip
        if not resident:  # the draws and the allocation's tables on the host, as before
            link._resident = lambda device: False  # type: ignore[method-assign]
        evaluation = LinkEvaluation(link, images)
        sec, times = indexed_median_seconds(lambda k, ev=evaluation: ev.add_draw(k + 1), args.draws)
        figures[label] = {
            "images_s": args.simulate_images / sec, "images": args.simulate_images,
            "times_s": times, "method": link.method, "options": options,
            "solver_backend": link._solver_backend, "resident": resident,
        }  # fmt: skip
        print(json.dumps({label: figures[label]}), flush=True)

    info = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__,
            "numba": numba.__version__, "cpu_threads": numba.get_num_threads(),
            "model": "cnn N=16 L=64, random weights", "params": sum(
                p.numel() for p in model.parameters()), "q": Q, "esno_db": ESNO_DB,
            "mix": list(MIX)}  # fmt: skip
    result = {"info": info, "args": vars(args), "figures": figures}
    print(json.dumps({k: v for k, v in figures.items() if k.startswith("share")}), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
