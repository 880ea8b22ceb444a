"""ISFR vs conventional training: importance profiles and the whole semantic link.

This is the "Done when" script of issue 4. It

1. trains two copies of one auto-encoder on embedded data, or reuses their checkpoints when a
   checkpoint with the same config hash exists (:func:`semcom.train.train`):

   - **ISFR**: nested dropout, where feature ``i`` is kept with probability ``r_i`` decreasing
     in ``i``, plus BER matching, where each feature is Q-bit quantised and its bits are flipped
     with a probability ``ε_i`` that rises log-linearly with ``i`` (docs/method.md §2.3-§2.4);
   - **conventional**: the same network with one BSC flip probability ``ε̄ = mean_i ε_i`` for
     every feature and no nested dropout (docs/method.md §2.5);

2. prints both masking-importance profiles (docs/method.md §3.3)

       w̃_i = E_x[MSE(x, g(z ⊙ m_{-i}))] - E_x[MSE(x, g(z))],   w_i = max(w̃_i, 0) / Σ_j max(w̃_j, 0)

   with their concentration statistics: the Gini index ``Σ_i Σ_j |w_i - w_j| / (2N Σ_i w_i)``,
   the top-k share, and Spearman's ``ρ`` of ``w̃`` and of ``w`` against the feature index
   (``ρ = -1``: importance strictly decreasing towards the tail, the ISFR target);

3. sends evaluation images through the whole link for the chosen channel, each SNR and each
   budget ``η``: encoder -> Q-bit quantiser -> per-frame allocation (optim) -> Gray QAM over K
   fading subchannels -> de-quantiser, with dropped features zero-filled -> decoder
   (:class:`semcom.link.SemanticLink`). It prints PSNR with 95% Student-t intervals over the
   images, SSIM, MSE, the mean number of features sent and the BER.

Schemes (docs/method.md §6.2), each a (model, weights, allocation method) triple:

============  ============  ===============  =============================================
scheme        model         weights          allocation
============  ============  ===============  =============================================
isfr-uep      ISFR          masking ``w``    ``hierarchical`` (SP1-SP4, ordered prior)
ui-ep         conventional  uniform ``1/N``  ``ui-ep``: equal power, one modulation,
                                             random matching
ui-opt        conventional  uniform ``1/N``  ``ui-opt``: the same SP1-SP4 solver
passive-uep   conventional  masking ``w``    ``passive``: sort by ``w``, then SP1-SP4
============  ============  ===============  =============================================

``--methods M ...`` adds, for every allocation method ``M`` of optim, the rows ``isfr/M`` and
``conventional/M``: that model with its masking weights and method ``M``. Example:
``--methods hungarian equal-power``.

Data: the first ``--images`` images of a seeded permutation of the test split are the
evaluation images. The rest of the test split is the calibration set, on which the importance
weights and ``d_drop,i = E[z_l²]`` are measured. Both sets are held out from training.

Budgets (docs/method.md §4.3, §4.6): average SNR ``P_tot / (K σ²)``, with ``K = N`` subchannels and
``σ² = 1``; symbol budget ``S_max = η N L Q / 2``.

Defaults: the 32x32 RGB patches, the DeepJSCC CNN, N = 16, 15 epochs, Rayleigh at 0 dB,
η in {0.25, 0.5}, 64 images x 2 draws. Both models are trained in two processes with one torch
thread each, which is the fastest way on 2 CPU cores. The whole run takes about two minutes;
a rerun that reuses the checkpoints takes under a minute. ``--dataset digits`` uses the MLP
with batch 16 and 30 epochs instead (about 15 s of training). docs/isfr_training.md gives the
measurements behind these choices and the full table over SNR in {-5, 0, 10} dB.

Usage errors (bad values, unknown names) exit with status 2 and one line on stderr, before any
training.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError
from semcom.data import load_dataset
from semcom.importance import gini, make_estimator, spearman_vs_index, top_k_share
from semcom.link import CHANNELS, LinkResult, SemanticLink, drop_distortion
from semcom.models import build_model
from semcom.registry import ALLOCATION
from semcom.train import TrainConfig, TrainedModel, resolve_config, train

PROG = "isfr_vs_conventional.py"
DATASETS = ("patches", "digits")
PRESETS: dict[str, dict[str, Any]] = {
    "patches": {"model": "cnn", "epochs": 15, "batch_size": 64},
    "digits": {"model": "mlp", "epochs": 30, "batch_size": 16},
}
"""Per-data-set training defaults (docs/isfr_training.md explains them)."""

SCHEMES: dict[str, tuple[str, str, str]] = {
    "isfr-uep": ("isfr", "masking", "hierarchical"),
    "ui-ep": ("conventional", "uniform", "ui-ep"),
    "ui-opt": ("conventional", "uniform", "ui-opt"),
    "passive-uep": ("conventional", "masking", "passive"),
}
"""Scheme -> (trained model, weights, allocation method), docs/method.md §6.2."""

MIN_CALIBRATION = 32
"""Fewest test images left over to measure the importance weights and ``d_drop`` on."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` except for options whose default is derived (None) or a flag."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{PROG}: error: {message}\n")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer in 0..2**63-1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (``--help`` lists every option with its default)."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Train (or reuse) ISFR and conventional models on embedded data, print their "
            "importance profiles, and compare ISFR-UEP with UI-EP, UI-Opt and Passive-UEP "
            "through the whole link (PSNR with 95% intervals)."
        ),
        formatter_class=_Formatter,
    )
    data = parser.add_argument_group("data and training")
    data.add_argument("--dataset", default="patches", choices=DATASETS, help="embedded data set")
    data.add_argument(
        "--model", default=None, help="cnn, mlp or vit (default: cnn for patches, mlp for digits)"
    )
    data.add_argument("--features", type=_positive_int, default=16, help="N semantic features")
    data.add_argument(
        "--epochs", type=_positive_int, default=None, help="default: 15 (patches), 30 (digits)"
    )
    data.add_argument(
        "--batch-size", type=_positive_int, default=None, help="default: 64 (patches), 16 (digits)"
    )
    data.add_argument("--seed", type=_seed, default=0, help="training, data split and link seed")
    data.add_argument("--device", default="cpu", help="training device: cpu, cuda, cuda:K, auto")
    data.add_argument(
        "--checkpoint-dir",
        default="results/checkpoints",
        help="where checkpoints are kept and reused (by config hash)",
    )
    data.add_argument("--no-cache", action="store_true", help="neither reuse nor write checkpoints")
    data.add_argument(
        "--jobs", type=_positive_int, default=2, help="processes that train the two models"
    )
    data.add_argument("--threads", type=_positive_int, default=1, help="torch threads per process")
    link = parser.add_argument_group("link")
    link.add_argument(
        "--channel",
        default="rayleigh",
        help=f"one of {', '.join(CHANNELS)} (K = N subchannels)",
    )
    link.add_argument("--rician-k", type=_number, default=3.0, help="Rician K-factor (linear)")
    link.add_argument(
        "--snr-db", type=_number, nargs="+", default=[0.0], help="average SNR P_tot/(K σ²), dB"
    )
    link.add_argument("--eta", type=_number, nargs="+", default=[0.25, 0.5], help="symbol budget η")
    link.add_argument(
        "--schemes",
        nargs="+",
        default=list(SCHEMES),
        help=f"any of {', '.join(SCHEMES)}",
    )
    link.add_argument(
        "--methods",
        nargs="+",
        default=[],
        help="extra optim methods, run on both models with masking weights "
        f"({', '.join(ALLOCATION.names())}; 'exact' is slow at N = 16)",
    )
    link.add_argument(
        "--images", type=_positive_int, default=64, help="evaluation images (from the test split)"
    )
    link.add_argument("--draws", type=_positive_int, default=2, help="channel draws per image")
    link.add_argument("--top-k", type=_positive_int, default=4, help="k of the top-k share")
    return parser


# ---------------------------------------------------------------------------------------------
# setup and validation


@dataclass(frozen=True)
class Row:
    """One link configuration to evaluate: which model, which weights, which method."""

    label: str
    model: str  # "isfr" | "conventional"
    weights: str  # "masking" | "uniform"
    method: str


def _configs(args: argparse.Namespace) -> dict[str, TrainConfig]:
    preset = PRESETS[args.dataset]
    common = dict(
        model=args.model or preset["model"],
        n_features=args.features,
        dataset=args.dataset,
        epochs=args.epochs or preset["epochs"],
        batch_size=args.batch_size or preset["batch_size"],
        seed=args.seed,
        device=args.device,
        checkpoint_dir=None if args.no_cache else args.checkpoint_dir,
    )
    return {s: resolve_config(TrainConfig(scheme=s, **common)) for s in ("isfr", "conventional")}


def _rows(args: argparse.Namespace) -> list[Row]:
    rows = []
    for name in args.schemes:
        if name not in SCHEMES:
            raise ConfigError(f"schemes: {name!r} is not one of {', '.join(SCHEMES)}")
        rows.append(Row(name, *SCHEMES[name]))
    for method in args.methods:
        method = ALLOCATION.check(method)
        rows += [Row(f"{m}/{method}", m, "masking", method) for m in ("isfr", "conventional")]
    return rows


def _link(
    model: Any, weights: np.ndarray, drop: np.ndarray, row: Row, **point: Any
) -> SemanticLink:
    return SemanticLink(model, weights, drop, method=row.method, **point)


def _validate(args: argparse.Namespace) -> tuple[dict[str, TrainConfig], list[Row], int]:
    """Every user error as ConfigError, before any training; returns configs, rows, n_test."""
    configs = _configs(args)
    if configs["isfr"].device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {args.device!r} is invalid; allowed: cpu (no CUDA here)")
    rows = _rows(args)
    if args.threads > 1024 or args.jobs > 64:
        raise ConfigError("jobs/threads: at most 64 processes and 1024 threads")
    n_test = len(load_dataset(args.dataset, "test"))
    if args.images > n_test - MIN_CALIBRATION:
        raise ConfigError(
            f"images: {args.images} is invalid; allowed: at most {n_test - MIN_CALIBRATION} "
            f"(the {args.dataset} test split has {n_test} images, {MIN_CALIBRATION} are kept "
            "to measure the weights)"
        )
    c = configs["isfr"]
    probe = build_model(c.model, c.n_features, **c.model_options)
    if args.top_k > probe.n_features:
        raise ConfigError(f"top_k: {args.top_k} is invalid; allowed: 1..{probe.n_features}")
    flat = np.full(probe.n_features, 1.0 / probe.n_features)
    for row in rows:  # channel, SNR, eta, rician_k and method names, checked on a probe link
        for snr in args.snr_db:
            for eta in args.eta:
                _link(probe, flat, flat, row, **_point(args, snr, eta))
    return configs, rows, n_test


def _point(args: argparse.Namespace, snr: float, eta: float) -> dict[str, Any]:
    return dict(
        channel=args.channel,
        snr_db=snr,
        eta=eta,
        rician_k=args.rician_k,
        n_subchannels=args.features,
        seed=args.seed,
    )


# ---------------------------------------------------------------------------------------------
# training


def _train_one(config: TrainConfig, threads: int) -> tuple[TrainedModel, float]:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    result = train(config, progress=False)
    return result, time.perf_counter() - start


def _train_both(
    configs: dict[str, TrainConfig], jobs: int, threads: int
) -> dict[str, tuple[TrainedModel, float]]:
    """Train both models, in ``jobs`` processes (spawned: each has its own torch RNG state)."""
    if jobs == 1:
        return {s: _train_one(c, threads) for s, c in configs.items()}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, 2), mp_context=context) as pool:
        futures = {s: pool.submit(_train_one, c, threads) for s, c in configs.items()}
        return {s: f.result() for s, f in futures.items()}


# ---------------------------------------------------------------------------------------------
# reporting


def _clean_psnr(model: Any, images: torch.Tensor) -> float:
    """Mean PSNR of the noise-free model, ``10 log10(1 / MSE_b)`` averaged over the images."""
    device = next(model.parameters()).device
    with torch.no_grad():
        x_hat = model(images.to(device)).cpu().to(torch.float64)
    mse = (x_hat - images.to(torch.float64)).pow(2).flatten(1).mean(1)
    return float((10.0 * torch.log10(1.0 / mse)).mean())


def _print_profiles(profiles: dict[str, dict[str, Any]], k: int, n_calib: int) -> None:
    n = len(profiles["isfr"]["w"])
    print(f"\nMasking importance w_i (docs/method.md §3.3), on {n_calib} held-out test images")
    print(f"{'feature':>13} " + " ".join(f"{i:>5d}" for i in range(1, n + 1)))
    for scheme, p in profiles.items():
        print(f"{scheme:>13} " + " ".join(f"{v:5.3f}" for v in p["w"]))
    print(
        f"\n{'':>13} {'rho(raw)':>9} {'rho(w)':>8} {'Gini':>7} {f'top-{k}':>7} {'clean PSNR':>11}"
    )
    for scheme, p in profiles.items():
        raw = p["raw"]
        print(
            f"{scheme:>13} {spearman_vs_index(raw - raw.min()):+9.3f} "
            f"{spearman_vs_index(p['w']):+8.3f} {gini(p['w']):7.3f} "
            f"{top_k_share(p['w'], k):7.3f} {p['clean']:8.2f} dB"
        )
    print(
        "rho: Spearman vs feature index of the raw scores w~ and of the clipped weights w; "
        "Gini 0 = flat, (N-1)/N = one feature"
    )


def _print_link_header(args: argparse.Namespace, n_images: int) -> None:
    extra = f", Rician K = {args.rician_k:g}" if args.channel == "rician" else ""
    print(
        f"\nLink: {args.channel}{extra}, K = N = {args.features} subchannels, "
        f"{n_images} images x {args.draws} draws, 95% Student-t intervals over the images"
    )
    print(
        f"{'eta':>5} {'SNR dB':>7}  {'scheme':<26} {'PSNR dB':>8} {'95% CI':>16} "
        f"{'SSIM':>6} {'MSE':>9} {'sent':>5} {'BER':>9}"
    )


def _print_result(eta: float, snr: float, label: str, r: LinkResult) -> None:
    ci = f"[{r.psnr_ci[0]:.2f}, {r.psnr_ci[1]:.2f}]"
    ber = "-" if math.isnan(r.ber) else f"{r.ber:9.2e}"
    print(
        f"{eta:5.2f} {snr:7.1f}  {label:<26} {r.psnr_db:8.2f} {ci:>16} {r.ssim:6.3f} "
        f"{r.mse:9.2e} {r.mean_selected:5.1f} {ber:>9}",
        flush=True,
    )


def _print_gain(results: dict[str, LinkResult]) -> None:
    if "isfr-uep" not in results:
        return
    baselines = {k: v for k, v in results.items() if k in SCHEMES and k != "isfr-uep"}
    if not baselines:
        return
    best_name, best = max(baselines.items(), key=lambda kv: kv[1].psnr_db)
    ours = results["isfr-uep"]
    print(
        f"{'':14}isfr-uep vs best baseline ({best_name}): {ours.psnr_db - best.psnr_db:+.2f} dB "
        f"PSNR ({100 * (ours.psnr_db / best.psnr_db - 1):+.1f}%), "
        f"MSE {100 * (ours.mse / best.mse - 1):+.1f}%"
    )


# ---------------------------------------------------------------------------------------------
# main


def run(args: argparse.Namespace) -> int:
    """Validate, train or reuse, measure the profiles, run the link; print everything."""
    configs, rows, n_test = _validate(args)
    torch.set_num_threads(args.threads)
    c = configs["isfr"]
    print(
        f"ISFR vs conventional on {c.dataset} ({c.model}, N = {c.n_features}), "
        f"{c.epochs} epochs, batch {c.batch_size}, lr {c.lr:g}, seed {c.seed}, "
        f"device {c.device}"
    )
    trained = _train_both(configs, args.jobs, args.threads)
    for scheme, (result, seconds) in trained.items():
        how = "reused checkpoint" if result.reused else f"trained in {seconds:.1f} s"
        where = f" ({result.checkpoint})" if result.checkpoint is not None else ""
        print(f"  {scheme:>12}: {how}, best epoch {result.best_epoch}{where}")

    test = load_dataset(args.dataset, "test").images
    order = torch.from_numpy(np.random.default_rng(args.seed).permutation(n_test))
    images, calibration = test[order[: args.images]], test[order[args.images :]]
    models = {s: r.model for s, (r, _) in trained.items()}
    profiles = {}
    for scheme, model in models.items():
        est = make_estimator("masking").fit(model, calibration)
        profiles[scheme] = {
            "w": est.importances_,
            "raw": est.raw_importances_,
            "drop": drop_distortion(model, calibration),
            "clean": _clean_psnr(model, images),
        }
    _print_profiles(profiles, args.top_k, len(calibration))

    _print_link_header(args, len(images))
    for eta in args.eta:
        for snr in args.snr_db:
            results = {}
            for row in rows:
                p = profiles[row.model]
                n = len(p["w"])
                weights = p["w"] if row.weights == "masking" else np.full(n, 1.0 / n)
                link = _link(models[row.model], weights, p["drop"], row, **_point(args, snr, eta))
                results[row.label] = link.evaluate(images, n_draws=args.draws)
                _print_result(eta, snr, row.label, results[row.label])
            _print_gain(results)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2: usage error, one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
