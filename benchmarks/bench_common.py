"""What the benchmark scripts share: the median-of-repeats timer, the machine facts and the
result's JSON report. The scripts run as ``python benchmarks/NAME.py`` and import this file as
a sibling module."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(
    fn: Callable[[], object], repeats: int, sync: Callable[[], None] | None = None
) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up run, and every run's
    seconds; ``sync`` (e.g. a device synchronisation) ends each run before its clock stops."""
    fn()
    if sync is not None:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def cpu_info(**extra: Any) -> dict[str, Any]:
    """Cores, Numba and torch threads, torch's version, ``extra`` facts, and the load average
    (a shared machine's load moves CPU timings)."""
    import numba
    import torch

    return {"cpu_count": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, **extra,
            "load_average": os.getloadavg()}  # fmt: skip


def emit(info: dict, args: Any, figures: dict, path: str | None) -> dict:
    """Prints ``{"info", "args", "figures"}`` as JSON and also writes it to ``path`` (if any)."""
    result = {"info": info, "args": vars(args), "figures": figures}
    print(json.dumps(result, indent=2), flush=True)
    if path:
        with open(path, "w") as fh:
            json.dump(result, fh, indent=2)
    return result
