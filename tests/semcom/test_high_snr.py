"""The ``isfr-highsnr`` model variant and its scheme ``isfr-uep-highsnr`` (no loss at high SNR).

What is proven, against references we did not write:

- the variant's training channel keeps feature ``i`` with probability
  ``r_i = 1 - p_nd + p_nd (N - i + 1)/N`` (uniform cut-off, a fraction ``p_nd`` of the samples
  masked): the closed form is derived here from the law, not read from the module, and the
  module's sampled masks match it (binomial bounds, 4.5 σ) and a brute-force NumPy simulation
  of the same law (two-sample bounds); its tail is kept ~30 times as often as the default's;
- its BER profile is log-linear from 1e-4 to 1e-2 (``numpy.geomspace``);
- the default ISFR law is unchanged, and a scenario trains the variant once, as its own model,
  and runs the scheme through the link;
- the switch scheme ``isfr-uep-switch`` picks the argmax of the mean calibration PSNR (the
  PSNR recomputed here from its definition), sees only the calibration images and draws
  outside the evaluation's, and its row is exactly the chosen candidate's row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semcom.cli import main
from semcom.isfr import training_channel
from semcom.scenario import load_scenario
from semcom.scheme_switch import SWITCH_DRAW, SWITCH_DRAWS, choose_candidate
from semcom.schemes import HIGH_SNR_OVERRIDES, MODEL_VARIANTS, SCHEMES
from tests.semcom.tiny_run import tiny_run_args

ROOT = Path(__file__).parents[2]
SCENARIO = ROOT / "scenarios" / "high_snr.yaml"
N = 16


def _channel(seed: int = 0):
    return training_channel("isfr", N, **HIGH_SNR_OVERRIDES, seed=seed)


def test_variant_and_scheme_are_registered() -> None:
    variant = MODEL_VARIANTS["isfr-highsnr"]
    assert variant.training_scheme == "isfr"
    assert variant.isfr_overrides == {"law": "uniform", "p_nd": 0.25, "eps_max": 1e-2}
    scheme = SCHEMES.get("isfr-uep-highsnr")
    proposed = SCHEMES.get("isfr-uep")
    assert scheme.model == "isfr-highsnr"
    assert (scheme.weights, scheme.method) == (proposed.weights, proposed.method)


def test_retention_matches_the_closed_form_and_brute_force() -> None:
    p_nd = HIGH_SNR_OVERRIDES["p_nd"]
    i = np.arange(1, N + 1)
    # law: masked with probability p_nd; then b ~ U{1..N}, features 1..max(b, n_min=1) kept
    # => P(i kept) = (1 - p_nd) + p_nd P(b >= i) = 1 - p_nd + p_nd (N - i + 1)/N
    closed = 1.0 - p_nd + p_nd * (N - i + 1) / N
    nd = _channel().nested_dropout
    assert np.allclose(nd.retention().numpy(), closed, rtol=0, atol=1e-15)
    draws = 200_000
    freq = nd.sample_mask(draws).double().mean(0).numpy()
    sigma = np.sqrt(closed * (1 - closed) / draws) + 1e-12
    assert np.all(np.abs(freq - closed) <= 4.5 * sigma)
    # brute force, independent of the module: the same law simulated with NumPy
    rng = np.random.default_rng(1)
    masked = rng.random(draws) < p_nd
    b = np.where(masked, rng.integers(1, N + 1, draws), N)
    brute = (i[None, :] <= b[:, None]).mean(0)
    assert np.all(np.abs(freq - brute) <= 4.5 * np.sqrt(2) * sigma)
    # the tail is trained: feature N is kept in 1 - p_nd + p_nd/N = 76.6% of the samples,
    # against P(b = N) = 2.5% with the default law (geometric, rho 0.1, p_nd 1)
    default = training_channel("isfr", N, seed=0).nested_dropout.retention().numpy()
    assert closed[-1] == pytest.approx(0.765625)
    assert default[-1] == pytest.approx(0.1 * 0.9**15 / (1 - 0.9**16))
    assert closed[-1] / default[-1] > 30
    # still a prefix law: retention strictly decreasing, feature 1 always kept
    assert closed[0] == 1.0 and np.all(np.diff(closed) < 0)


def test_ber_profile_is_log_linear_to_1e_2() -> None:
    eps = _channel().distortion.flip_probs.numpy()
    assert np.allclose(eps, np.geomspace(1e-4, 1e-2, N), rtol=1e-12)
    default = training_channel("isfr", N).distortion.flip_probs.numpy()
    assert np.allclose(default, np.geomspace(1e-4, 5e-2, N), rtol=1e-12)


def test_scenario_trains_the_variant_on_top_of_the_default_isfr() -> None:
    scenario = load_scenario(SCENARIO)
    assert scenario.scheme_names() == [
        "isfr-uep", "isfr-uep-highsnr", "isfr-uep-switch", "ui-ep", "ui-opt", "passive-uep"
    ]  # fmt: skip
    assert [float(v) for v in scenario.axes()["snr_db"]] == [-5, 0, 5, 10, 15, 20]
    assert scenario.model_variants() == ["isfr", "isfr-highsnr", "conventional"]
    plain, tail = scenario.train_config("isfr"), scenario.train_config("isfr-highsnr")
    # the default ISFR law is untouched
    assert (plain.isfr["law"], plain.isfr["rho"], plain.isfr["p_nd"]) == ("geometric", 0.1, 1.0)
    assert plain.isfr["eps_max"] == 5e-2
    assert {k: tail.isfr[k] for k in HIGH_SNR_OVERRIDES} == HIGH_SNR_OVERRIDES
    assert {k: v for k, v in tail.isfr.items() if k not in HIGH_SNR_OVERRIDES} == {
        k: v for k, v in plain.isfr.items() if k not in HIGH_SNR_OVERRIDES
    }
    assert (tail.epochs, tail.batch_size, tail.scheme) == (plain.epochs, plain.batch_size, "isfr")


class _RecordingLink:
    """A stand-in link: reconstructs ``images`` plus fixed noise of its own level, and records
    every ``(images, draw)`` it is asked to send."""

    def __init__(self, level: float, seed: int) -> None:
        self.level, self.seed, self.calls = level, seed, []

    def simulate(self, images: torch.Tensor, draw: int = 0):
        self.calls.append((images, draw))
        gen = torch.Generator().manual_seed(self.seed * 1000 + draw)
        noise = self.level * torch.randn(images.shape, generator=gen, dtype=images.dtype)
        return type("Frames", (), {"x_hat": (images + noise).clamp(0, 1)})()


def test_switch_picks_the_calibration_argmax_and_sees_only_calibration_images() -> None:
    gen = torch.Generator().manual_seed(0)
    calibration = torch.rand((6, 1, 8, 8), generator=gen, dtype=torch.float64)
    links = {"a": _RecordingLink(0.08, 1), "b": _RecordingLink(0.05, 2),
             "c": _RecordingLink(0.2, 3)}  # fmt: skip
    choice, scores = choose_candidate(links, calibration)
    # PSNR from its definition, 10 log10(1 / MSE) per image, averaged over images and draws
    expected = {}
    for name, link in links.items():
        per_draw = []
        for images, draw in list(link.calls):
            x_hat = link.simulate(images, draw).x_hat.numpy()
            mse = ((images.numpy() - x_hat) ** 2).reshape(len(images), -1).mean(1)
            per_draw.append(np.mean(10 * np.log10(1 / mse)))
        expected[name] = float(np.mean(per_draw))
    assert scores == pytest.approx(expected, rel=1e-12)
    assert choice == max(expected, key=expected.get) == "b"
    for link in links.values():
        calls = link.calls[:SWITCH_DRAWS]  # those of choose_candidate (the rest are ours)
        assert [draw for _, draw in calls] == [SWITCH_DRAW + d for d in range(SWITCH_DRAWS)]
        assert all(images is calibration for images, _ in calls)
    # ties go to the first candidate
    same = {"x": _RecordingLink(0.05, 2), "y": _RecordingLink(0.05, 2)}
    assert choose_candidate(same, calibration)[0] == "x"


def test_switch_scheme_is_registered_and_survives_the_resolved_scenario() -> None:
    switch = SCHEMES.get("isfr-uep-switch")
    assert switch.switch == ("isfr-uep", "isfr-uep-highsnr")
    scenario = load_scenario(SCENARIO, ["schemes=[isfr-uep-switch, passive-uep]"])
    # the switch trains its candidates' models
    assert scenario.model_variants() == ["isfr", "isfr-highsnr", "conventional"]
    again = load_scenario(scenario.resolved())
    assert again.scheme("isfr-uep-switch").switch == switch.switch
    assert again.config_hash() == scenario.config_hash()


@pytest.mark.usefixtures("one_thread")
def test_schemes_train_and_run_and_the_switch_row_is_its_choice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    status = main(
        tiny_run_args(
            SCENARIO, out, tmp_path / "ck", "[isfr-uep, isfr-uep-highsnr, isfr-uep-switch]", 20
        )
    )
    assert status == 0
    frame = pd.read_csv(out / "results.csv").set_index("scheme")
    assert frame.loc["isfr-uep-highsnr", "model"] == "isfr-highsnr"
    assert np.all(np.isfinite(frame["psnr_db"]))
    models = pd.read_csv(out / "models.csv")
    assert models["model"].tolist() == ["isfr", "isfr-highsnr"]
    # the switch row is the row of the candidate whose model it names, to the last bit
    chosen = frame.loc["isfr-uep-switch", "model"]
    twin = {"isfr": "isfr-uep", "isfr-highsnr": "isfr-uep-highsnr"}[chosen]
    for column in ("psnr_db", "mse", "ssim", "ber", "bits_sent", "bit_errors"):
        assert frame.loc["isfr-uep-switch", column] == frame.loc[twin, column]
    per_image = pd.read_csv(out / "per_image.csv")
    by = {name: g["psnr_db"].to_numpy() for name, g in per_image.groupby("scheme")}
    assert np.array_equal(by["isfr-uep-switch"], by[twin])
