"""Run the CUDA twins under Numba's CUDA simulator and print their results as one JSON object.

Run as ``NUMBA_ENABLE_CUDASIM=1 python run_cudasim.py`` (the variable must be set before Numba
is imported, hence a subprocess); ``tests/channels/test_cuda_kernels.py`` compares the output
with the CPU kernels computed in the test process.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

from numba import config, cuda  # noqa: E402

from channels.kernels import cuda as cuda_module  # noqa: E402
from channels.kernels.backend import resolve_backend  # noqa: E402
from channels.kernels.cuda import philox  # noqa: E402
from channels.kernels.cuda_ber import ber_trials_cuda  # noqa: E402
from channels.kernels.cuda_link import link_frames_cuda  # noqa: E402
from channels.kernels.distortion import feature_distortion  # noqa: E402
from channels.kernels.link_cpu import transmit_codes  # noqa: E402
from channels.montecarlo import simulate_ber  # noqa: E402
from tests.channels.cuda_helpers.cases import (  # noqa: E402
    BER_CASES,
    KAT,
    LAUNCHES,
    LINK_CASES,
    ber_arguments,
    distortion_inputs,
    link_arguments,
    link_inputs,
)


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

    counters = np.array([c for c, _, _ in KAT], dtype=np.uint32)
    keys = np.array([k for _, k, _ in KAT], dtype=np.uint32)
    out = np.zeros((len(KAT), 4), dtype=np.uint32)
    _philox_kernel[1, 4](counters, keys, out)
    result["kat"] = out.tolist()

    result["ber"] = []
    for case in BER_CASES:
        runs = []
        for spt, tpb, max_blocks, fast in LAUNCHES:
            args = ber_arguments(case)
            errors = np.zeros(args[1], dtype=np.int64)
            squares = np.zeros(args[1], dtype=np.int64)
            ber_trials_cuda(*args, errors, squares, symbols_per_thread=spt,
                            threads_per_block=tpb, max_blocks=max_blocks, fast=fast)  # fmt: skip
            runs.append([errors.tolist(), squares.tolist()])
        result["ber"].append(runs)

    constant = cuda_module.FAST_ERROR_CONSTANT
    cuda_module.FAST_ERROR_CONSTANT = 1e9  # the simulator reads globals at call time
    result["ber_fallback"] = []
    for case in BER_CASES:
        args = ber_arguments(case)
        errors = np.zeros(args[1], dtype=np.int64)
        squares = np.zeros(args[1], dtype=np.int64)
        ber_trials_cuda(*args, errors, squares, threads_per_block=16, fast=True)
        result["ber_fallback"].append([errors.tolist(), squares.tolist()])
    result["link_fallback"] = []
    for case in LINK_CASES:
        link = transmit_codes(**link_inputs(case), backend="cuda")
        result["link_fallback"].append([link.codes_hat.tolist(), link.bit_errors.tolist()])
    cuda_module.FAST_ERROR_CONSTANT = constant

    result["simulate_ber"] = [
        simulate_ber("16qam", "awgn", 8.0, min_errors=40, seed=5, backend="cuda",
                     batch_trials=batch).to_dict()
        for batch in (1, 3)
    ]  # fmt: skip

    result["link"] = []
    result["distortion"] = []
    for case in LINK_CASES:
        link = transmit_codes(**link_inputs(case), backend="cuda")
        runs = [[link.codes_hat.tolist(), link.bit_errors.tolist()]]
        for spt, tpb, max_blocks, fast in LAUNCHES:
            args = link_arguments(link_inputs(case))
            codes_out = np.empty(args[0].shape, dtype=np.int64)
            errors_out = np.empty(args[1].shape, dtype=np.int64)
            link_frames_cuda(*args, codes_out, errors_out, symbols_per_thread=spt,
                             threads_per_block=tpb, max_blocks=max_blocks, fast=fast)  # fmt: skip
            runs.append([codes_out.tolist(), errors_out.tolist()])
        result["link"].append(runs)
        for code in ("binary", "gray"):
            d = feature_distortion(**distortion_inputs(case, link.codes_hat), code=code,
                                   backend="cuda")  # fmt: skip
            result["distortion"].append([d.squared_error.tolist(), d.weighted.tolist()])
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
