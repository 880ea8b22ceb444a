"""GPU throughput of the Numba-CUDA twins against Sionna 2.x on the same GPU, in the same run.

(i) BER engine: uncoded 16-QAM, AWGN, Eb/N0 = 6 dB, hard decisions (the items kernel of
    ``ber_trials_cuda``, fast float32 and exact float64 modes).
(ii) Semantic link: 16 features x 512 bits (L = 64 scalars x Q = 8 bits) per frame, each feature
     on one of 16 Rayleigh subchannels (a random permutation per frame, ``h ~ CN(0, 1)``) with a
     random modulation in {BPSK, QPSK, 16-QAM, 64-QAM} per feature and frame, unit power,
     Es/N0 = 10 dB (``link_frames_device``: fast with chunks grouped by modulation or not,
     and exact; plus the distortion reduction).
Peers: Sionna's BinarySource -> Mapper -> AWGN -> Demapper(hard) chain on ``cuda:0`` (for (ii)
one chain per modulation with the per-symbol gain and zero forcing), eager and under
``torch.compile``. Also: microbenchmarks of Philox alone, Philox + float64 Box-Muller and
Philox + float32 fast Box-Muller (the kernels' ceilings), the end-to-end ``simulate_ber`` and
``transmit_codes`` calls (host arrays, transfers included) and the CPU kernels on the same
machine.

Rates are information bits per second; each is the median of ``--repeats`` timed runs after a
warm-up run (compilation), timed with ``cuda.synchronize()`` on both ends.

    PYTHONPATH=. python benchmarks/bench_gpu.py --json benchmarks/results_gpu_h200.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from collections.abc import Callable

import bench_common
import numba
import numpy as np
from numba import cuda

from channels.awgn import ebno_db_to_no
from channels.kernels.cuda import (
    box_muller,
    gauss_pair_f32,
    launch_shape,
    philox,
    seed_key32,
    uniform32,
    uniform52,
)
from channels.kernels.cuda_ber import _ber_reduce, item_layout, kernel_for
from channels.kernels.cuda_link import (
    chunk_plan,
    chunk_symbols,
    code_dtype,
    device_tables,
    link_frames_device,
)
from channels.kernels.link_cpu import transmit_codes
from channels.modulation import get_modulation, label_of_position
from channels.montecarlo import SYMBOLS_PER_TRIAL, simulate_ber

EBNO_DB = 6.0
LINK_ESNO_DB = 10.0
MIX = (1, 2, 4, 6)
N_FEATURES, N_SCALARS, Q = 16, 64, 8


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` (synchronised) over ``repeats`` runs after one warm-up."""
    return bench_common.median_seconds(fn, repeats, _sync)


def _sync() -> None:
    if not numba.config.ENABLE_CUDASIM:
        cuda.synchronize()


# --------------------------------------------------------------------------- (i) BER engine


def ber_setup(n_trials: int, symbols_per_thread: int, fast: bool) -> dict:
    mod = get_modulation("16qam")
    kernel, real, integer = kernel_for(fast)
    no = float(ebno_db_to_no(EBNO_DB, 4))
    layout = item_layout(SYMBOLS_PER_TRIAL, 1, symbols_per_thread)
    key0, key1 = seed_key32(1)
    return dict(
        layout=layout, key=(key0, key1), sigma=math.sqrt(no / 2.0), n_trials=n_trials,
        kernel=kernel, real=real,
        tables=[cuda.to_device(a) for a in (mod.points.real.astype(real),
                                             mod.points.imag.astype(real),
                                             label_of_position(4).astype(integer))],
        items=[cuda.device_array((n_trials, layout[3]), np.int32) for _ in range(2)],
        out=[cuda.device_array(n_trials, np.int64) for _ in range(2)],
    )  # fmt: skip


def ber_launch(s: dict, first_trial: int, threads: int) -> None:
    blocks_per_item, parts, part_len, items_per_trial = s["layout"]
    n, real = s["n_trials"], s["real"]
    blocks, tpb = launch_shape(n * items_per_trial, threads, None)
    s["kernel"][blocks, tpb](
        np.int64(first_trial), np.int64(n), np.int64(SYMBOLS_PER_TRIAL), np.int64(1),
        np.int64(blocks_per_item), np.int64(parts), np.int64(part_len),
        np.int64(items_per_trial), *s["key"], np.uint32(12345), np.int64(4), *s["tables"],
        real(s["sigma"]), np.int64(0), real(0.0), real(1.0), real(0.0), *s["items"],
    )  # fmt: skip
    blocks, tpb = launch_shape(n, threads, None)
    _ber_reduce[blocks, tpb](np.int64(n), np.int64(items_per_trial), np.int64(parts),
                             *s["items"], *s["out"])  # fmt: skip


def bench_ber(args: argparse.Namespace) -> dict:
    n_trials = args.ber_trials
    bits_per_launch = n_trials * SYMBOLS_PER_TRIAL * 4
    rows = []
    for fast in (True, False):
        for spt in args.symbols_per_thread:
            s = ber_setup(n_trials, spt, fast)
            for threads in args.threads:

                def run(s=s, threads=threads) -> None:  # noqa: ANN001
                    for k in range(args.launches):
                        ber_launch(s, k * n_trials, threads)

                sec, _ = median_seconds(run, args.repeats)
                rate = args.launches * bits_per_launch / sec
                errors = int(s["out"][0].copy_to_host().sum())
                rows.append({"fast": fast, "symbols_per_thread": spt,
                             "threads_per_block": threads, "bit_s": rate,
                             "ber_last_launch": errors / bits_per_launch})  # fmt: skip
                print(json.dumps({"ber_kernel": rows[-1]}), flush=True)
    best = max(rows, key=lambda r: r["bit_s"])
    exact = max((r for r in rows if not r["fast"]), key=lambda r: r["bit_s"])
    # end to end: simulate_ber with host-side stop rule, transfers and the interval
    bits = int(args.e2e_bits)
    esno = EBNO_DB + 10 * math.log10(4)

    def e2e() -> None:
        e2e.result = simulate_ber("16qam", "awgn", esno, min_errors=bits, max_bits=bits, seed=1,
                                  backend="cuda")  # fmt: skip

    sec, _ = median_seconds(e2e, args.repeats)
    cpu_bits = int(args.cpu_bits)
    cpu = [simulate_ber("16qam", "awgn", esno, min_errors=cpu_bits, max_bits=cpu_bits, seed=1,
                        backend="cpu") for _ in range(2)][-1]  # fmt: skip
    return {"kernel": rows, "best_kernel_bit_s": best["bit_s"], "best": best,
            "best_float64_kernel_bit_s": exact["bit_s"], "simulate_ber_bit_s": bits / sec,
            "simulate_ber_ber": e2e.result.ber,
            "theory_ber": e2e.result.theory_ber, "cpu_simulate_ber_bit_s": cpu_bits / cpu.seconds,
            "cpu_threads": numba.get_num_threads()}  # fmt: skip


# --------------------------------------------------------------------------- (ii) link


def link_inputs(n_frames: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    h_sub = (rng.standard_normal((n_frames, N_FEATURES)) +
             1j * rng.standard_normal((n_frames, N_FEATURES))) / math.sqrt(2)  # fmt: skip
    perm = np.argsort(rng.random((n_frames, N_FEATURES)), axis=1)  # feature -> subchannel
    h = np.take_along_axis(h_sub, perm, axis=1)
    return dict(
        codes=rng.integers(0, 1 << Q, (n_frames, N_FEATURES, N_SCALARS)),
        bits_per_symbol=rng.choice(MIX, size=(n_frames, N_FEATURES)), h=h,
        power=np.ones((n_frames, N_FEATURES)), no=10.0 ** (-LINK_ESNO_DB / 10.0),
    )  # fmt: skip


def bench_link(args: argparse.Namespace) -> dict:
    n_frames = args.link_frames
    inputs = link_inputs(n_frames)
    bits = n_frames * N_FEATURES * N_SCALARS * Q
    key0, key1 = seed_key32(7)
    d = dict(
        codes=cuda.to_device(inputs["codes"].astype(code_dtype(Q))),
        m=cuda.to_device(inputs["bits_per_symbol"].astype(np.int8)),
        h_re=cuda.to_device(np.ascontiguousarray(inputs["h"].real)),
        h_im=cuda.to_device(np.ascontiguousarray(inputs["h"].imag)),
        p=cuda.to_device(inputs["power"]),
        trials=cuda.to_device(np.arange(n_frames, dtype=np.uint32)),
        codes_out=cuda.device_array((n_frames, N_FEATURES, N_SCALARS), code_dtype(Q)),
        errors=cuda.device_array((n_frames, N_FEATURES), np.int64),
    )  # fmt: skip
    sigma = math.sqrt(inputs["no"] / 2.0)
    rows = []
    for fast, grouped in ((True, True), (True, False), (False, True)):
        tables = device_tables(fast)
        for spt in args.symbols_per_thread:
            chunk = chunk_symbols(Q, spt)
            order, offsets = chunk_plan(inputs["bits_per_symbol"], N_SCALARS, Q, chunk,
                                        grouped=grouped)  # fmt: skip
            d_order, d_offsets = cuda.to_device(order), cuda.to_device(offsets)
            for threads in args.threads:

                def run(chunk=chunk, d_order=d_order, d_offsets=d_offsets,
                        total=int(offsets[-1]), threads=threads, fast=fast,
                        tables=tables) -> None:  # fmt: skip  # noqa: ANN001
                    link_frames_device(
                        d["codes"], d["m"], d["h_re"], d["h_im"], d["p"], sigma, Q, key0, key1,
                        3, d["trials"], d_order, d_offsets, total, chunk, tables,
                        d["codes_out"], d["errors"], threads_per_block=threads, fast=fast,
                    )  # fmt: skip

                sec, _ = median_seconds(run, args.repeats)
                errors = int(d["errors"].copy_to_host().sum())
                rows.append({"fast": fast, "grouped": grouped, "symbols_per_thread": chunk,
                             "threads_per_block": threads, "bit_s": bits / sec,
                             "ber": errors / bits})  # fmt: skip
                print(json.dumps({"link_kernel": rows[-1]}), flush=True)
    best = max(rows, key=lambda r: r["bit_s"])
    exact = max((r for r in rows if not r["fast"]), key=lambda r: r["bit_s"])
    ungrouped = max((r for r in rows if r["fast"] and not r["grouped"]),
                    key=lambda r: r["bit_s"])  # fmt: skip
    # distortion reduction on device arrays
    from channels.kernels.cuda_link import _squared_error, _weighted

    z = cuda.to_device(np.random.default_rng(1).uniform(-1, 1, (n_frames, N_FEATURES, N_SCALARS)))
    sq = cuda.device_array((n_frames, N_FEATURES))
    w = cuda.to_device(np.full((n_frames, N_FEATURES), 1.0 / N_FEATURES))
    weighted = cuda.device_array(n_frames)

    def dist() -> None:
        blocks, tpb = launch_shape(n_frames * N_FEATURES, 256, None)
        _squared_error[blocks, tpb](z, d["codes_out"], np.int64(Q), False, sq)
        blocks, tpb = launch_shape(n_frames, 256, None)
        _weighted[blocks, tpb](sq, w, np.int64(N_SCALARS), weighted)

    dist_sec, _ = median_seconds(dist, args.repeats)
    # end to end through transmit_codes (host arrays, validation and transfers included)
    small = {k: v[: args.e2e_frames] for k, v in inputs.items() if k != "no"}
    small["no"] = inputs["no"]
    e2e_bits = args.e2e_frames * N_FEATURES * N_SCALARS * Q

    def e2e(backend: str) -> Callable[[], None]:
        return lambda: transmit_codes(**small, bits_per_scalar=Q, seed=7, point=3,
                                      backend=backend)  # fmt: skip

    gpu_sec, _ = median_seconds(e2e("cuda"), args.repeats)
    cpu_sec, _ = median_seconds(e2e("cpu"), max(1, args.repeats // 2))
    scalars = n_frames * N_FEATURES * N_SCALARS
    return {"kernel": rows, "best_kernel_bit_s": best["bit_s"], "best": best,
            "best_float64_kernel_bit_s": exact["bit_s"],
            "best_fast_ungrouped_kernel_bit_s": ungrouped["bit_s"],
            "distortion_scalars_s": scalars / dist_sec,
            "distortion_gbyte_s": scalars * (8 + 2) / dist_sec / 1e9,
            "transmit_codes_cuda_bit_s": e2e_bits / gpu_sec,
            "transmit_codes_cpu_bit_s": e2e_bits / cpu_sec}  # fmt: skip


# --------------------------------------------------------------------------- ceilings


@cuda.jit
def _philox_only(n_per_thread, out):  # noqa: ANN001, ANN201
    i = cuda.grid(1)
    acc = np.uint32(0)
    for s in range(n_per_thread):
        w0, w1, w2, w3 = philox(np.uint32(s), np.uint32(i), np.uint32(5), np.uint32(0),
                                np.uint32(1), np.uint32(2))  # fmt: skip
        acc ^= w0 ^ w1 ^ w2 ^ w3
    out[i] = acc


@cuda.jit
def _philox_box_muller(n_per_thread, out):  # noqa: ANN001, ANN201
    i = cuda.grid(1)
    acc = 0.0
    for s in range(n_per_thread):
        w0, w1, w2, w3 = philox(np.uint32(s), np.uint32(i), np.uint32(5), np.uint32(0),
                                np.uint32(1), np.uint32(2))  # fmt: skip
        a, b = box_muller(uniform52(w1, w3), uniform32(w2))
        acc += a + b + float(w0)
    out[i] = acc


@cuda.jit(fastmath=True)
def _philox_gauss_f32(n_per_thread, out):  # noqa: ANN001, ANN201
    i = cuda.grid(1)
    acc = np.float32(0.0)
    for s in range(n_per_thread):
        w0, w1, w2, w3 = philox(np.uint32(s), np.uint32(i), np.uint32(5), np.uint32(0),
                                np.uint32(1), np.uint32(2))  # fmt: skip
        a, b = gauss_pair_f32(w1, w2, w3)
        acc += a + b + np.float32(w0 & np.uint32(15))
    out[i] = acc


def bench_ceilings(args: argparse.Namespace) -> dict:
    threads, blocks, per_thread = args.ceiling_threads, args.ceiling_blocks, 256
    n = threads * blocks * per_thread
    out_u = cuda.device_array(threads * blocks, np.uint32)
    out_f = cuda.device_array(threads * blocks, np.float64)
    out_f32 = cuda.device_array(threads * blocks, np.float32)
    sec_p, _ = median_seconds(lambda: _philox_only[blocks, threads](per_thread, out_u),
                              args.repeats)  # fmt: skip
    sec_b, _ = median_seconds(lambda: _philox_box_muller[blocks, threads](per_thread, out_f),
                              args.repeats)  # fmt: skip
    sec_g, _ = median_seconds(lambda: _philox_gauss_f32[blocks, threads](per_thread, out_f32),
                              args.repeats)  # fmt: skip
    return {"philox_calls_s": n / sec_p, "philox_box_muller_s": n / sec_b,
            "philox_gauss_f32_s": n / sec_g}  # fmt: skip


# --------------------------------------------------------------------------- Sionna


def sionna_uniform(batch: int) -> Callable:
    import torch  # noqa: F401
    from sionna.phy.channel import AWGN
    from sionna.phy.mapping import BinarySource, Demapper, Mapper
    from sionna.phy.utils import ebnodb2no

    source, mapper = BinarySource(), Mapper("qam", 4)
    demapper = Demapper("maxlog", "qam", 4, hard_out=True)
    awgn, no = AWGN(), ebnodb2no(EBNO_DB, 4, 1.0)

    def run():  # noqa: ANN202
        b = source([1, batch * 4])
        b_hat = demapper(awgn(mapper(b), no), no)
        return (b != b_hat).sum()

    return run


def sionna_mixed(n_frames: int) -> Callable:
    """The same traffic as (ii): per modulation, the bits of its features, gain, ZF, demap."""
    import torch
    from sionna.phy.mapping import BinarySource, Demapper, Mapper

    m = link_inputs(n_frames)["bits_per_symbol"]
    counts = {k: int((m == k).sum()) for k in MIX}
    no = 10.0 ** (-LINK_ESNO_DB / 10.0)
    chains = {k: (Mapper("pam" if k == 1 else "qam", k),
                  Demapper("maxlog", "pam" if k == 1 else "qam", k, hard_out=True))
              for k in MIX}  # fmt: skip
    source = BinarySource()
    bits_per_feature = N_SCALARS * Q

    def run():  # noqa: ANN202
        errors = 0
        for k, (mapper, demapper) in chains.items():
            n_sym = counts[k] * -(-bits_per_feature // k)
            b = source([1, n_sym * k])
            x = mapper(b)
            h = torch.complex(
                torch.randn(1, n_sym, device=x.device), torch.randn(1, n_sym, device=x.device)
            ) * math.sqrt(0.5)
            n = torch.complex(
                torch.randn(1, n_sym, device=x.device), torch.randn(1, n_sym, device=x.device)
            ) * math.sqrt(no / 2)
            x_hat = (h * x + n) / h
            b_hat = demapper(x_hat, no / h.abs() ** 2)
            errors = errors + (b != b_hat).sum()
        return errors

    return run


def bench_sionna(args: argparse.Namespace) -> dict:
    import sionna.phy
    import torch

    sionna.phy.config.device = args.sionna_device
    out = {"sionna": sionna.__version__ if hasattr(sionna, "__version__") else "2.x"}
    uniform_bits = args.sionna_batch * 4
    mixed_bits = args.sionna_frames * N_FEATURES * N_SCALARS * Q
    for name, make, bits in (
        ("uniform", lambda: sionna_uniform(args.sionna_batch), uniform_bits),
        ("mixed", lambda: sionna_mixed(args.sionna_frames), mixed_bits),
    ):
        for mode in ("eager", "compiled"):
            if mode == "compiled" and args.no_compile:
                continue
            fn = make()
            if mode == "compiled":
                fn = torch.compile(fn)
            try:
                sec, _ = median_seconds(lambda fn=fn: int(fn()), args.repeats)  # int(): synced
                out[f"{name}_{mode}_bit_s"] = bits / sec
            except Exception as err:  # noqa: BLE001 (report, keep the other figures)
                out[f"{name}_{mode}_error"] = f"{type(err).__name__}: {str(err)[:200]}"
            print(json.dumps({f"sionna_{name}_{mode}": out.get(f"{name}_{mode}_bit_s")}),
                  flush=True)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ber-trials", type=int, default=1 << 16, help="trials per launch")
    parser.add_argument("--launches", type=int, default=4, help="BER launches per timed run")
    parser.add_argument("--symbols-per-thread", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--threads", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--e2e-bits", type=float, default=4e10, help="simulate_ber bits per run")
    parser.add_argument("--cpu-bits", type=float, default=2e9, help="CPU simulate_ber bits")
    parser.add_argument("--link-frames", type=int, default=1 << 16)
    parser.add_argument("--e2e-frames", type=int, default=1 << 14)
    parser.add_argument("--sionna-batch", type=int, default=1 << 26, help="symbols per call")
    parser.add_argument("--sionna-frames", type=int, default=1 << 14)
    parser.add_argument("--no-sionna", action="store_true")
    parser.add_argument("--sionna-device", default="cuda:0")
    parser.add_argument("--ceiling-blocks", type=int, default=132 * 64)
    parser.add_argument("--ceiling-threads", type=int, default=256)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    info = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "numba": numba.__version__, "simulator": bool(numba.config.ENABLE_CUDASIM)}  # fmt: skip
    if not info["simulator"]:
        dev = cuda.get_current_device()
        info["gpu"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        info["sms"] = dev.MULTIPROCESSOR_COUNT
    try:
        import numba_cuda

        info["numba_cuda"] = numba_cuda.__version__
    except ImportError:
        pass
    print(json.dumps(info), flush=True)
    result = {"info": info, "args": vars(args)}
    result["ceilings"] = bench_ceilings(args)
    print(json.dumps({"ceilings": result["ceilings"]}), flush=True)
    result["ber"] = bench_ber(args)
    print(json.dumps({"ber": {k: v for k, v in result["ber"].items() if k != "kernel"}}),
          flush=True)  # fmt: skip
    result["link"] = bench_link(args)
    print(json.dumps({"link": {k: v for k, v in result["link"].items() if k != "kernel"}}),
          flush=True)  # fmt: skip
    if not args.no_sionna:
        result["sionna"] = bench_sionna(args)
        s = result["sionna"]
        for key in ("uniform_eager", "uniform_compiled"):
            if f"{key}_bit_s" in s:
                s[f"ber_ratio_vs_{key}"] = result["ber"]["best_kernel_bit_s"] / s[f"{key}_bit_s"]
        for key in ("mixed_eager", "mixed_compiled"):
            if f"{key}_bit_s" in s:
                s[f"link_ratio_vs_{key}"] = result["link"]["best_kernel_bit_s"] / s[f"{key}_bit_s"]
    print(json.dumps({"summary": {"ber_bit_s": result["ber"]["best_kernel_bit_s"],
                                  "link_bit_s": result["link"]["best_kernel_bit_s"],
                                  "sionna": result.get("sionna")}}), flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
