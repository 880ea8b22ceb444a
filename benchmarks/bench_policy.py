"""Decision time per frame of a learned allocation policy against ``solve_batch`` hierarchical.

Instance: ``optim.random_problem(N, K, seed=0)`` (default N = K = 16: ordered importance,
10 dB, eta = 0.5, Q = 8, L = 64, BPSK..64-QAM, exact BER), ``B`` (default 4096) Rayleigh gain
vectors. The policy (:mod:`optim.learned`, kind ``pg``) is trained first with the default
trainer config and ``--iterations`` iterations on ``--train-device`` (0: untrained; the
decision time does not depend on the weights; ``--imitation``: warm-start iterations imitating
``hierarchical`` first), then decides all ``B`` frames greedily:

- ``rollout``: the ``T = N`` batched forward passes alone (:func:`optim.learned.policy.rollout`
  plus the objective), per device (CPU, and CUDA when present, synchronised);
- ``solve_batch``: the whole ``optim.solve_batch(template, gains, "rl:pg")`` call on the CPU
  (checks, policy from memory, decisions, NumPy result);

against ``optim.solve_batch(template, gains, "hierarchical")`` (Numba, every CPU thread; its
default options, refinement on). Each figure is the median of ``--repeats`` timed calls after
one warm-up call. Also reported: the mean objective of both and the policy's relative gap.

    PYTHONPATH=. python benchmarks/bench_policy.py --json out.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from bench_common import cpu_info, emit, median_seconds

import optim
from optim.learned.env import FrameEnv
from optim.learned.method import load_or_train
from optim.learned.policy import rollout


def timed(func: Callable[[], object], repeats: int, sync: Callable[[], None]) -> dict:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    median, times = median_seconds(func, repeats, sync)
    return {"median_s": median, "times_s": times}


def per_frame(figure: dict, frames: int) -> dict:
    figure["us_per_frame"] = figure["median_s"] / frames * 1e6
    figure["frames_s"] = frames / figure["median_s"]
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16, help="features N (and subchannels K)")
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument("--iterations", type=int, default=150, help="policy-gradient iterations")
    parser.add_argument("--imitation", type=int, default=0, help="imitation warm-start iterations")
    parser.add_argument("--train-device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    template = optim.random_problem(args.n, args.n, seed=0)
    gains = np.random.default_rng(1).exponential(size=(args.frames, args.n))
    figures: dict = {}
    folder = tempfile.mkdtemp(prefix="bench_policy_")
    train = {"iterations": max(args.iterations, 1), "imitation": args.imitation}
    start = time.perf_counter()
    loaded = load_or_train(template, args.n, "pg", train=train, checkpoint_dir=folder,
                           device=args.train_device, progress=True)  # fmt: skip
    figures["training"] = {"seconds": time.perf_counter() - start,
                           "device": str(loaded.env.device), **train,
                           "curve": [e["objective"] for e in loaded.history]}  # fmt: skip
    if args.iterations == 0:  # timing only: fresh weights
        loaded.policy.load_state_dict(type(loaded.policy)(loaded.env.n_modulations).state_dict())
    state = {k: v.cpu() for k, v in loaded.policy.state_dict().items()}

    def hierarchical() -> object:
        return optim.solve_batch(template, gains, "hierarchical")

    figures["hierarchical_cpu"] = per_frame(timed(hierarchical, args.repeats, lambda: None),
                                            args.frames)  # fmt: skip
    reference = hierarchical().objective
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        env = FrameEnv(template, levels=loaded.env.levels, device=device)
        policy = type(loaded.policy)(env.n_modulations, loaded.policy.hidden).to(env.device)
        policy.load_state_dict(state)
        policy.eval()
        g = torch.as_tensor(gains, device=env.device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def decide(env: FrameEnv = env, policy: torch.nn.Module = policy,
                   g: torch.Tensor = g) -> torch.Tensor:  # fmt: skip
            with torch.no_grad():
                return env.objective(rollout(env, policy, g, greedy=True).state)

        figures[f"rollout_{device}"] = per_frame(timed(decide, args.repeats, sync), args.frames)
        objective = decide().cpu().numpy()
        figures[f"rollout_{device}"]["mean_objective"] = float(objective.mean())
    options = {"train": train, "checkpoint_dir": folder, "progress": False}

    def front_door() -> object:
        return optim.solve_batch(template, gains, "rl:pg", **options)

    figures["solve_batch_rl_cpu"] = per_frame(timed(front_door, args.repeats, lambda: None),
                                              args.frames)  # fmt: skip
    policy_objective = front_door().objective
    gap = (policy_objective - reference) / reference
    figures["objective"] = {
        "hierarchical_mean": float(reference.mean()),
        "policy_mean": float(policy_objective.mean()),
        "relative_gap_of_means": float(policy_objective.mean() / reference.mean() - 1.0),
        "mean_relative_gap": float(gap.mean()),
        "median_relative_gap": float(np.median(gap)),
    }
    for device in devices:
        figures[f"speed_up_{device}"] = (figures["hierarchical_cpu"]["median_s"]
                                         / figures[f"rollout_{device}"]["median_s"])  # fmt: skip
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    emit(cpu_info(gpu=gpu), args, figures, args.json)


if __name__ == "__main__":
    main()
