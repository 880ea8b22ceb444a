"""Images/s of ``SemanticLink.evaluate`` with a per-frame Rayleigh allocation, on the CPU:
the batch's allocations through ``optim.solve_batch`` against the per-frame ``optim.solve``
loop (the link before the batched solver; forced here through the link's ``_batchable`` flag,
which gives the same frames).

Model: ``semcom.models.build_model("cnn", 16, input_shape=[3, 32, 32])`` (N = 16 features of
L = 64 scalars), random weights, float32, CPU; K = 16 Rayleigh subchannels, 10 dB, eta = 0.5,
Q = 8, hierarchical with its default options (refinement on), ``backend="cpu"``. Random
32x32 RGB images. Each figure: the median of ``--repeats`` calls of ``evaluate(images,
n_draws=1)``'s work on a new channel draw each (:meth:`LinkEvaluation.add_draw`, default
metrics) after a warm-up draw (Numba kernels compiled or loaded, the model's first pass), both
paths in the same run.

    PYTHONPATH=. python benchmarks/bench_link_allocation.py --json out.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
import torch
from bench_common import cpu_info, emit

from semcom.evaluation import LinkEvaluation
from semcom.link import SemanticLink
from semcom.models import build_model


def images_per_second(link: SemanticLink, x: torch.Tensor, repeats: int) -> dict:
    """Median images/s of one channel draw of every image of ``x`` through ``link.evaluate``'s
    own loop (:meth:`LinkEvaluation.add_draw`, its default metrics: PSNR, SSIM, BER), a new
    draw each repeat (new gains: nothing is solved twice), after a warm-up draw."""
    evaluation = LinkEvaluation(link, x)
    evaluation.add_draw(0)
    times = []
    for draw in range(1, repeats + 1):
        start = time.perf_counter()
        evaluation.add_draw(draw)
        times.append(time.perf_counter() - start)
    sec = statistics.median(times)
    return {"images_s": x.shape[0] / sec, "images": int(x.shape[0]), "times_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512, help="images, batched path")
    parser.add_argument("--loop-images", type=int, default=64, help="images, per-frame loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    n = 16
    model = build_model("cnn", n, input_shape=[3, 32, 32]).eval()
    x = torch.rand(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def link() -> SemanticLink:
        return SemanticLink(model, np.full(n, 1.0 / n), np.full(n, 1e-2), bits_per_scalar=8,
                            channel="rayleigh", snr_db=10.0, n_subchannels=16, eta=0.5,
                            backend="cpu")  # fmt: skip

    batched = link()
    per_frame = link()
    per_frame._batchable = False
    figures = {
        "per_frame_loop": images_per_second(per_frame, x[: args.loop_images], args.repeats),
        "solve_batch": images_per_second(batched, x, args.repeats),
    }
    assert batched._batchable is True
    figures["speed_up"] = figures["solve_batch"]["images_s"] / figures["per_frame_loop"]["images_s"]
    emit(cpu_info(numba=numba.__version__), args, figures, args.json)


if __name__ == "__main__":
    main()
