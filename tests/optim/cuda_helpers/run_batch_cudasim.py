"""Run ``solve_batch(..., backend="cuda")`` under Numba's CUDA simulator and print its results
as one JSON object (``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, hence a
subprocess); ``tests/optim/test_solve_batch_cuda.py`` compares them with the CPU backend."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

from numba import config, cuda  # noqa: E402

import optim  # noqa: E402
from channels.errors import ConfigError  # noqa: E402
from optim.batch import BatchResult  # noqa: E402
from tests.optim.cuda_helpers import batch_cases as cases  # noqa: E402


def _result(out) -> dict:  # noqa: ANN001
    return {
        "selected": np.asarray(out.selected).tolist(),
        "subchannel": np.asarray(out.subchannel).tolist(),
        "modulation": np.asarray(out.modulation).tolist(),
        "power": np.asarray(out.power).tolist(),
        "objective": np.asarray(out.objective).tolist(),
    }


def _message(template, gains, method, options, **kw) -> str:  # noqa: ANN001
    try:
        optim.solve_batch(template, gains, method, backend="cuda", **kw, **options)
    except ConfigError as err:
        return str(err)
    return "no error"


def main() -> None:
    result: dict = {"simulator": bool(config.ENABLE_CUDASIM), "runs": []}
    for t, template in enumerate(cases.templates()):
        gains = cases.frame_gains(template, seed=t)
        runs = []
        for method, options in cases.CUDA_CASES:
            runs.append(_result(optim.solve_batch(template, gains, method, backend="cuda",
                                                  **options)))  # fmt: skip
        result["runs"].append(runs)
    result["refined"] = []
    for t, template in enumerate(cases.templates()[:2]):
        gains = cases.frame_gains(template, seed=t)[: cases.REFINED_FRAMES]
        result["refined"].append([
            _result(optim.solve_batch(template, gains, method, backend="cuda", **options))
            for method, options in cases.REFINED_CASES
        ])  # fmt: skip
    # device input: device output by default, host output on request, float32 converted
    template = cases.templates()[0]
    gains = cases.frame_gains(template, seed=0)
    dev = optim.solve_batch(template, cuda.to_device(gains), "hierarchical", backend="cuda",
                            refine=False)  # fmt: skip
    result["device_out_is_device"] = hasattr(dev.objective, "copy_to_host") and not isinstance(
        dev.objective, np.ndarray
    )
    result["device_in"] = _result(
        BatchResult(dev.method, *(x.copy_to_host() for x in (
            dev.selected, dev.subchannel, dev.modulation, dev.power, dev.objective)))
    )  # fmt: skip
    host = optim.solve_batch(template, cuda.to_device(gains), "lowest-order", backend="cuda",
                             out="host")  # fmt: skip
    result["device_in_host_out_is_numpy"] = isinstance(host.objective, np.ndarray)
    result["device_in_host_out"] = _result(host)
    f32 = optim.solve_batch(template, cuda.to_device(gains.astype(np.float32)), "lowest-order",
                            backend="cuda", out="host")  # fmt: skip
    result["float32_in"] = _result(f32)
    result["float32_gains"] = gains.astype(np.float32).astype(np.float64).tolist()
    # bad input, host and device
    result["bad"] = {}
    for kind, case in cases.BAD_INPUTS:
        bad = cases.bad_gains(kind, template)
        msgs = [_message(template, bad, case["method"], case["options"])]
        if kind not in ("unknown_method",):
            msgs.append(_message(template, cuda.to_device(bad), case["method"], case["options"]))
        result["bad"][kind] = msgs
    result["unsupported"] = {
        "exact": _message(template, gains, "exact", {}),
        "backend": _message(template, gains, "hierarchical", {"refine": False}, out="disk"),
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
