"""Run the CUDA twins under Numba's CUDA simulator and print their results as one JSON object.

Run as ``NUMBA_ENABLE_CUDASIM=1 python run_cudasim.py`` (the variable must be set before Numba
is imported, hence a subprocess); ``tests/channels/test_cuda_kernels.py`` compares the output
with the CPU kernels computed in the test process. Both modes run: ``fast`` (float32, the
default) and the float64 one (``fast=False``, also through the public entry points by
patching their module attribute, which ``simulate_ber`` and ``transmit_codes`` look up at call
time).
"""

from __future__ import annotations

import functools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

from numba import config, cuda  # noqa: E402

from channels.kernels import cuda_ber, cuda_link  # noqa: E402
from channels.kernels.backend import resolve_backend  # noqa: E402
from channels.kernels.cuda import philox  # noqa: E402
from channels.kernels.distortion import feature_distortion  # noqa: E402
from channels.kernels.link_cpu import transmit_codes  # noqa: E402
from channels.montecarlo import simulate_ber  # noqa: E402
from tests.channels.cuda_helpers import cases  # noqa: E402


@cuda.jit
def _philox_kernel(counters, keys, out):  # noqa: ANN001, ANN201
    i = cuda.grid(1)
    if i < counters.shape[0]:
        w = philox(counters[i, 0], counters[i, 1], counters[i, 2], counters[i, 3], keys[i, 0],
                   keys[i, 1])  # fmt: skip
        for k in range(4):
            out[i, k] = w[k]


def main() -> None:
    result: dict = {"simulator": bool(config.ENABLE_CUDASIM)}
    result["resolve"] = {name: resolve_backend(name) for name in ("auto", "cpu", "cuda")}

    counters = np.array([c for c, _, _ in cases.KAT], dtype=np.uint32)
    keys = np.array([k for _, k, _ in cases.KAT], dtype=np.uint32)
    out = np.zeros((len(cases.KAT), 4), dtype=np.uint32)
    _philox_kernel[1, 4](counters, keys, out)
    result["kat"] = out.tolist()

    result["ber"] = [
        [cases.run_ber(cuda_ber.ber_trials_cuda, case, symbols_per_thread=spt,
                       threads_per_block=tpb, max_blocks=max_blocks, fast=fast)
         for spt, tpb, max_blocks, fast in cases.LAUNCHES]
        for case in cases.BER_CASES
    ]  # fmt: skip

    # the float64 mode through the public entry points (their default is the fast mode)
    exact_ber = functools.partial(cuda_ber.ber_trials_cuda, fast=False)
    exact_link = functools.partial(cuda_link.link_frames_cuda, fast=False)
    fast_ber, fast_link = cuda_ber.ber_trials_cuda, cuda_link.link_frames_cuda
    cuda_ber.ber_trials_cuda, cuda_link.link_frames_cuda = exact_ber, exact_link
    result["link_exact"] = []
    for case in cases.LINK_CASES:
        link = transmit_codes(**cases.link_inputs(case), backend="cuda")
        result["link_exact"].append([link.codes_hat.tolist(), link.bit_errors.tolist()])
    result["simulate_ber_exact"] = [
        simulate_ber("16qam", "awgn", 8.0, min_errors=40, seed=5, backend="cuda",
                     batch_trials=batch).to_dict()
        for batch in (1, 3)
    ]  # fmt: skip
    cuda_ber.ber_trials_cuda, cuda_link.link_frames_cuda = fast_ber, fast_link

    result["simulate_ber"] = [
        simulate_ber("16qam", "awgn", 8.0, min_errors=40, seed=5, backend="cuda",
                     batch_trials=batch).to_dict()
        for batch in (1, 3)
    ]  # fmt: skip
    # the fast mode against theory, small: one 4096-symbol trial per point
    result["fast_theory"] = [
        simulate_ber(name, channel, snr, min_errors=1, max_bits=1, seed=11, confidence=0.99,
                     backend="cuda", batch_trials=1).to_dict()
        for name, channel, snr in cases.FAST_THEORY_POINTS
    ]  # fmt: skip

    result["link"] = []
    result["distortion"] = []
    for case in cases.LINK_CASES:
        link = transmit_codes(**cases.link_inputs(case), backend="cuda")
        runs = [[link.codes_hat.tolist(), link.bit_errors.tolist()]]
        for k, (spt, tpb, max_blocks, fast) in enumerate(cases.LAUNCHES):
            codes_out, errors_out = cases.run_link(
                cuda_link.link_frames_cuda, cases.link_inputs(case), symbols_per_thread=spt,
                threads_per_block=tpb, max_blocks=max_blocks, fast=fast, grouped=k % 2 == 0,
            )  # fmt: skip
            runs.append([codes_out.tolist(), errors_out.tolist()])
        result["link"].append(runs)
        for code in ("binary", "gray"):
            d = feature_distortion(**cases.distortion_inputs(case, link.codes_hat), code=code,
                                   backend="cuda")  # fmt: skip
            result["distortion"].append([d.squared_error.tolist(), d.weighted.tolist()])
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
