"""ISFR vs conventional training on embedded data: importance profiles and the trained link.

Issue 4, item 7 and its "Done when": a short training on scikit-learn's digits (embedded, no
download) gives

- the **ISFR** model (nested dropout + log-linear BER matching, docs/method.md §2.3-§2.4) a masking
  importance profile (docs/method.md §3.3) that decreases with the feature index, Spearman
  ``ρ(w̃, i) <= -0.8``;
- the **conventional** model (same network, uniform BSC noise, no nested dropout,
  docs/method.md §2.5) a flatter profile (lower Gini index) that is less ordered (higher ``ρ``);

and the trained ISFR model runs end to end through :class:`semcom.link.SemanticLink` on AWGN,
Rayleigh and Rician subchannels with the proposed ``hierarchical`` allocation and the baselines.

Setting (why this and not the 32x32 patches): digits with the MLP, ``N = 16`` features of
``L = 4`` scalars, Adam ``lr = 1e-3``, **batch 16, 30 epochs** (about 2,400 Adam steps, ~6 s per
model on one CPU thread). Measured outside the test (docs/isfr_training.md, 8 seeds):

- ISFR: ``ρ`` in [-0.994, -0.956], Gini in [0.84, 0.88];
- conventional: ``ρ`` in [-0.43, +0.22], Gini in [0.09, 0.16].

Two settings were rejected because their margin is not comfortable:

- digits with batch 64 and 15 epochs (~315 steps). Nested dropout keeps the MLP on the
  mean-image plateau for longer than the conventional model. The ISFR profile then has
  ``ρ ≈ -0.4`` (seed 0), and its clean PSNR is less than 1 dB above the mean image's.
- the 32x32 patches with the CNN. After 8-60 epochs the ISFR model puts 93-99.8% of the masking
  importance into its first four features. The ranks of the twelve near-zero tail scores are
  noise, so ``ρ`` over all 16 features ranges over [-0.96, -0.18] across seeds and budgets.

Which scores ``ρ`` is computed on: the **raw** masking scores
``w̃_i = E[MSE(x, g(z ⊙ m_{-i}))] - E[MSE(x, g(z))]`` (``raw_importances_``), not the clipped and
normalised weights ``w_i = max(w̃_i, 0) / Σ_j max(w̃_j, 0)``. Spearman's ``ρ`` measures an
ordering, and the ordering is a property of the measured ablation effects. Clipping is the
normalisation that the optimiser's weights need (docs/method.md §3.3). It ties every feature whose
removal does not hurt at exactly 0, so ``ρ`` would also depend on how many such features there
are. Ranks do not change when a constant is added, so ``ρ`` of ``w̃`` is
``spearman_vs_index(w̃ - min w̃)``. At this budget at most two features are clipped, and the two
versions of ``ρ`` agree within 0.003 (a failure message shows both). The Gini index and the
weights passed to the link are the clipped, normalised ``w``, as §3.3 says.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import optim
from semcom.data import load_dataset
from semcom.importance import gini, make_estimator, spearman_vs_index, top_k_share
from semcom.link import SemanticLink, drop_distortion
from semcom.models import SemanticModel
from semcom.train import TrainConfig, train

N_FEATURES = 16
RHO_MAX = -0.8
"""The ISFR profile's Spearman ρ against the index must be at most this (issue 4, item 7)."""


@dataclass(frozen=True)
class Profile:
    """Masking importance of one trained model on the digits test split."""

    model: SemanticModel
    raw: np.ndarray
    """``w̃`` (un-clipped masking scores)."""
    weights: np.ndarray
    """``w`` (clipped and normalised, what the optimiser gets)."""
    drop: np.ndarray
    """``d_drop,i = E[z^2]`` per scalar."""

    @property
    def rho(self) -> float:
        """Spearman ρ of the raw scores against the index (ranks are shift invariant)."""
        return spearman_vs_index(self.raw - self.raw.min())

    @property
    def rho_clipped(self) -> float:
        return spearman_vs_index(self.weights)

    @property
    def gini(self) -> float:
        return gini(self.weights)

    def describe(self) -> str:
        return (
            f"rho={self.rho:+.3f} (clipped {self.rho_clipped:+.3f}) gini={self.gini:.3f} "
            f"top4={top_k_share(self.weights, 4):.3f} w={np.round(self.weights, 3).tolist()}"
        )


def _config(scheme: str) -> TrainConfig:
    return TrainConfig(
        model="mlp",
        n_features=N_FEATURES,
        dataset="digits",
        scheme=scheme,
        epochs=30,
        batch_size=16,
        seed=0,
        device="cpu",
        checkpoint_dir=None,
    )


@pytest.fixture(scope="module")
def test_images() -> torch.Tensor:
    return load_dataset("digits", "test").images


@pytest.fixture(scope="module")
def profiles(test_images: torch.Tensor) -> dict[str, Profile]:
    """Train both models once (one torch thread: the fastest for this MLP) and measure them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for scheme in ("isfr", "conventional"):
            model = train(_config(scheme), progress=False).model
            est = make_estimator("masking").fit(model, test_images)
            out[scheme] = Profile(
                model,
                est.raw_importances_,
                est.importances_,
                drop_distortion(model, test_images),
            )
        return out
    finally:
        torch.set_num_threads(threads)


def test_isfr_profile_is_ordered_conventional_is_flatter_and_less_ordered(
    profiles: dict[str, Profile],
) -> None:
    isfr, conv = profiles["isfr"], profiles["conventional"]
    report = f"ISFR {isfr.describe()}\nconventional {conv.describe()}"
    assert isfr.rho <= RHO_MAX, report
    assert conv.gini < isfr.gini, report
    assert conv.rho > isfr.rho, report
    for p in (isfr, conv):  # the optimiser's weights: clipped and normalised (docs/method.md §3.3)
        assert np.all(p.weights >= 0) and math.isclose(p.weights.sum(), 1.0, rel_tol=1e-12)


@pytest.mark.parametrize("channel", ["awgn", "rayleigh", "rician"])
@pytest.mark.parametrize("method", ["hierarchical", "ui-ep", "ui-opt", "passive"])
def test_trained_isfr_model_through_the_link(
    profiles: dict[str, Profile], test_images: torch.Tensor, channel: str, method: str
) -> None:
    isfr = profiles["isfr"]
    link = SemanticLink(
        isfr.model, isfr.weights, isfr.drop, channel=channel, snr_db=5.0, eta=0.5, method=method
    )
    images = test_images[:4]
    x_hat = link.transmit(images, draw=0)
    assert x_hat.shape == images.shape
    assert bool(((x_hat >= 0) & (x_hat <= 1)).all())
    result = link.evaluate(images, n_draws=2)
    assert math.isfinite(result.psnr_db) and result.psnr_db > 0
    assert result.psnr_ci[0] <= result.psnr_db <= result.psnr_ci[1]
    assert 0 <= result.mean_selected <= N_FEATURES
    assert result.channel == channel and result.method == method


def test_strong_channel_reaches_the_noiseless_link(
    profiles: dict[str, Profile], test_images: torch.Tensor
) -> None:
    """At 30 dB AWGN with room for every feature in QPSK (η = 1), no bit is in error and only
    zero-weight features may be left out. The PSNR is then that of the quantised noiseless
    reference ``decode(dequantise(quantise(encode(x))))``, give or take the effect of the
    dropped zero-weight features, whose masking score is <= 0 (seed 0: feature 16 is dropped,
    18.64 dB against 18.63 dB)."""
    isfr = profiles["isfr"]
    images = test_images[:16]
    common = dict(weights=isfr.weights, drop_distortion=isfr.drop, eta=1.0)
    reference = SemanticLink(isfr.model, channel="noiseless", **common).evaluate(images)
    strong = SemanticLink(isfr.model, channel="awgn", snr_db=30.0, **common).evaluate(images)
    assert strong.bit_errors == 0
    dropped = np.asarray(strong.selection_rate) < 1.0
    assert np.all(isfr.weights[dropped] == 0.0), (strong.selection_rate, isfr.weights)
    assert strong.psnr_db >= reference.psnr_db - 0.1, (strong.psnr_db, reference.psnr_db)


def test_feature_selected_at_zero_power_is_zero_filled(
    profiles: dict[str, Profile], test_images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feature that the allocation selects at ``p = 0`` carries no energy, and the receiver
    zero-fills it, as the ISFR decoder saw in training. Without this, the decoder got pure noise
    (bit-error rate 1/2). The real solver does this for features whose weight was clipped to 0.
    It cost the CNN ISFR model 1.3 dB at 20 dB and eta = 1 (docs/isfr_training.md). Here the
    last selected feature of every allocation is forced to zero power."""
    isfr = profiles["isfr"]
    real_solve_batch = optim.solve_batch
    zeroed: list[int] = []

    def solve_batch(template: optim.Problem, gains: np.ndarray, method: str, **options: object):  # noqa: ANN202
        result = real_solve_batch(template, gains, method, **options)
        power = result.power.copy()
        for b in range(len(result)):
            last = int(np.flatnonzero(result.selected[b])[-1])
            power[b, last] = 0.0
            zeroed.append(last)
        return dataclasses.replace(result, power=power)

    link = SemanticLink(
        isfr.model, isfr.weights, isfr.drop, channel="rayleigh", snr_db=20.0, eta=1.0
    )
    reference = link.simulate(test_images[:8], draw=0)
    monkeypatch.setattr(optim, "solve_batch", solve_batch)
    patched = SemanticLink(
        isfr.model, isfr.weights, isfr.drop, channel="rayleigh", snr_db=20.0, eta=1.0
    ).simulate(test_images[:8], draw=0)
    assert len(zeroed) == 8
    for b, feature in enumerate(zeroed):
        assert reference.sent[b, feature] and not patched.sent[b, feature]
        assert patched.bits_per_symbol[b, feature] == 0 and patched.bit_errors[b, feature] == 0
        assert np.all(patched.z_hat[b, feature] == 0.0)
        others = np.arange(N_FEATURES) != feature
        assert np.array_equal(patched.sent[b, others], reference.sent[b, others])


def test_isfr_uep_beats_the_uniform_baselines_at_low_snr(
    profiles: dict[str, Profile], test_images: torch.Tensor
) -> None:
    """The paper's claim in its regime (harsh channel, tight budget): Rayleigh at 0 dB, η = 0.25.

    The schemes follow docs/method.md §6.2: ISFR-UEP = ISFR model + masking weights + hierarchical;
    UI-EP and UI-Opt = conventional model + uniform weights; Passive-UEP = conventional model +
    masking weights + features sorted by weight. Measured on 64 images x 2 draws (seed 0):
    ISFR-UEP 18.9 dB [18.4, 19.5], UI-EP 12.2, UI-Opt 14.4, Passive-UEP 14.4 (each ±0.3 dB).
    With the test's 16 images x 2 draws: ISFR-UEP 17.9 [17.0, 18.8] against at most 14.0. The
    test asks that the lower end of ISFR-UEP's 95% interval lies above every baseline's mean.
    """
    isfr, conv = profiles["isfr"], profiles["conventional"]
    uniform = np.full(N_FEATURES, 1.0 / N_FEATURES)
    schemes = {
        "isfr-uep": (isfr, isfr.weights, "hierarchical"),
        "ui-ep": (conv, uniform, "ui-ep"),
        "ui-opt": (conv, uniform, "ui-opt"),
        "passive-uep": (conv, conv.weights, "passive"),
    }
    images = test_images[:16]
    results = {
        name: SemanticLink(
            p.model, w, p.drop, channel="rayleigh", snr_db=0.0, eta=0.25, method=method
        ).evaluate(images, n_draws=2)
        for name, (p, w, method) in schemes.items()
    }
    report = {
        k: (round(r.psnr_db, 2), tuple(round(c, 2) for c in r.psnr_ci)) for k, r in results.items()
    }
    low = results["isfr-uep"].psnr_ci[0]
    for name in ("ui-ep", "ui-opt", "passive-uep"):
        assert low > results[name].psnr_db, report
