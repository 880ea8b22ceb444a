"""Microseconds per frame of a batch's channel draws: every frame fades with the first draw of
its own generator ``numpy.random.default_rng((seed, point, trial))``.

Peer: one ``default_rng`` per frame and ``channels.fading.fading_coefficients`` on it (what
``SemanticLink.simulate`` did for every frame). Ours: ``channels.fading.trial_fading``, the
streams seeded (SeedSequence hash, PCG64) and drawn (NumPy's ziggurat) in a Numba-parallel
loop over the trials (:mod:`channels.kernels.trial_fading`). Both give the same coefficients
bit for bit (checked here on every run). K = 16 subchannels, Rayleigh and Rician;
median of ``--repeats`` runs after a warm-up, both in the same run.

    PYTHONPATH=. python benchmarks/bench_frame_draws.py --json out.json
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_common import cpu_info, emit, median_seconds

from channels.fading import fading_coefficients, trial_fading

SEED, POINT = 2**40 + 3, 123456789


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument("--subchannels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    trials = np.arange(args.frames)
    k = args.subchannels
    figures = {}
    for channel, k_factor in (("rayleigh", 0.0), ("rician", 3.0)):

        def per_frame(channel: str = channel, k_factor: float = k_factor) -> np.ndarray:
            return np.stack([
                fading_coefficients(channel, (k,), k_factor=k_factor,
                                    rng=np.random.default_rng((SEED, POINT, int(t))))
                for t in trials
            ])  # fmt: skip

        def batched(channel: str = channel, k_factor: float = k_factor) -> np.ndarray:
            return trial_fading(channel, k, (SEED, POINT), trials, k_factor)

        if not np.array_equal(batched(), per_frame()):
            raise SystemExit(f"{channel}: trial_fading differs from the per-frame generators")
        peer, _ = median_seconds(per_frame, args.repeats)
        ours, _ = median_seconds(batched, args.repeats)
        figures[channel] = {"per_frame_generators_us": peer / args.frames * 1e6,
                            "trial_fading_us": ours / args.frames * 1e6,
                            "speedup": peer / ours}  # fmt: skip
    emit(cpu_info(), args, figures, args.json)


if __name__ == "__main__":
    main()
