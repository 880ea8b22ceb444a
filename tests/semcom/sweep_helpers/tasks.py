"""A cheap deterministic :class:`semcom.sweep.PointTask` for the sweep tests.

Its result for a point comes only from ``numpy.random.default_rng((seed, point.index))``, so
every executor and worker count must give the same rows. Options make it sleep (points with
index >= ``sleep_from``; ``hold_gil`` seconds more in libc's ``sleep`` called with the GIL
held, as a long native call would), fail on one key, fail in ``setup()`` and log what it did
(one line per setup / computed point, with the process id) to a file, so tests can count setups
and recomputations.
"""

from __future__ import annotations

import ctypes
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from semcom.sweep import Point, PointResult


def _log(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{text}\n")
            f.flush()


@dataclass
class CheapTask:
    """Deterministic fake link: metrics drawn from the point's own random stream."""

    seed: int = 7
    sleep: float = 0.0
    sleep_from: int = 0
    n_images: int = 3
    fail_key: str | None = None
    fail_setup: bool = False
    log: str | None = None
    hold_gil: int = 0
    ready: bool = False

    def setup(self) -> None:
        _log(self.log, f"setup {os.getpid()}")
        if self.fail_setup:
            raise OSError("no model checkpoint here")
        self.ready = True

    def __call__(self, point: Point) -> PointResult:
        if not self.ready:
            raise RuntimeError("setup() was not called")
        if point.key == self.fail_key:
            raise ValueError("simulated failure")
        start = time.perf_counter()
        if point.index >= self.sleep_from:
            time.sleep(self.sleep)
            if self.hold_gil:  # like a long native call (a Numba kernel): no thread can run
                ctypes.PyDLL(None).sleep(self.hold_gil)
        rng = np.random.default_rng((self.seed, point.index))
        psnr = rng.normal(20.0, 5.0, size=self.n_images)
        mse = 10.0 ** (-psnr / 10.0)
        half = float(rng.exponential(0.1))
        row = {
            "point": point.index,
            "key": point.key,
            **point.as_dict(),
            "psnr_db": float(psnr.mean()),
            "psnr_ci_low": float(psnr.mean()) - half,
            "psnr_ci_high": float(psnr.mean()) + half,
            "mse": float(mse.mean()),
            "ber": math.nan if point.index % 5 == 0 else float(rng.random() * 1e-300),
            "accuracy": None,
            "bits_sent": int(rng.integers(0, 2**62)),
            "n_images": self.n_images,
            "stop_reason": "converged" if point.index % 3 else "max_draws",
            "seconds": time.perf_counter() - start,
        }
        per_image = [
            {"key": point.key, "scheme": point["scheme"], "image": i, "psnr_db": float(p),
             "mse": float(m), "ssim": math.nan}
            for i, (p, m) in enumerate(zip(psnr, mse, strict=True))
        ]  # fmt: skip
        _log(self.log, f"point {os.getpid()} {point.key}")
        return PointResult(row, {"per_image": per_image})


AXES = {
    "snr_db": [0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5],
    "scheme": ["isfr-uep", "ui-ep", "ui-opt", "passive-uep", "isfr-exact"],
}
BASE = {"channel": "rayleigh", "eta": 0.5, "n_subchannels": 16, "seed": 7}
FINGERPRINT = "c0ffee" * 10 + "abcd"
"""The cheap sweep: 8 x 5 = 40 points and the fingerprint of its store."""
