"""semcom.link.SemanticLink: the noiseless identity, determinism, dropping, every channel and
allocation method, and PSNR rising with SNR, on toy models that follow the SemanticModel
contract (docs/contracts.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import optim
from channels.bits import dequantize, quantize
from channels.errors import ConfigError
from channels.fading import fading_coefficients
from semcom.link import LinkResult, SemanticLink, drop_distortion


class TanhModel(torch.nn.Module):
    """A random linear encoder with tanh and a linear decoder with a sigmoid (float32)."""

    def __init__(self, n: int = 4, length: int = 3, shape: tuple[int, int, int] = (3, 4, 4)):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        d = shape[0] * shape[1] * shape[2]
        self.enc = torch.nn.Parameter(torch.randn(n * length, d, generator=g) / d**0.5)
        self.dec = torch.nn.Parameter(torch.randn(d, n * length, generator=g))
        self.n_features, self.scalars_per_feature, self.input_shape = n, length, shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(4.0 * (x.flatten(1) - 0.5) @ self.enc.T)
        return z.reshape(-1, self.n_features, self.scalars_per_feature)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z.flatten(1) @ self.dec.T).reshape(-1, *self.input_shape)

    def classify(self, x_hat: torch.Tensor) -> torch.Tensor:
        mean = x_hat.flatten(1).mean(dim=1)
        return torch.stack([mean, 1.0 - mean], dim=1)


class SubspaceModel(torch.nn.Module):
    """Images ``x = 0.5 + 0.1 Q s`` (orthonormal Q); ``encode`` recovers ``s`` exactly."""

    def __init__(self, n: int = 4, length: int = 4, shape: tuple[int, int, int] = (3, 4, 4)):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        d = shape[0] * shape[1] * shape[2]
        basis, _ = torch.linalg.qr(torch.randn(d, n * length, generator=g, dtype=torch.float64))
        self.basis = torch.nn.Parameter(basis.float(), requires_grad=False)
        self.n_features, self.scalars_per_feature, self.input_shape = n, length, shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x.flatten(1) - 0.5) @ self.basis / 0.1).clamp(-1, 1)
        return z.reshape(-1, self.n_features, self.scalars_per_feature)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = 0.5 + 0.1 * z.flatten(1) @ self.basis.T
        return x.clamp(0, 1).reshape(-1, *self.input_shape)

    def sample(self, batch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(2)
        s = 2 * torch.rand(batch, self.n_features, self.scalars_per_feature, generator=g) - 1
        return self.decode(s * 0.7 ** torch.arange(self.n_features)[None, :, None])


def images(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, 4, 4, generator=torch.Generator().manual_seed(seed))


def flat_link(model: torch.nn.Module, **kwargs: object) -> SemanticLink:
    n = model.n_features
    return SemanticLink(model, np.full(n, 1 / n), np.full(n, 0.3), **kwargs)


@pytest.mark.parametrize(
    "options",
    [
        {"channel": "noiseless"},
        {"snr_db": math.inf},
        {"channel": "rician", "snr_db": math.inf, "code": "gray"},
    ],
)
def test_noiseless_link_is_decode_dequantise_quantise_encode(options: dict) -> None:
    model, x = TanhModel(), images(9)
    for q in (1, 5, 8, 12):
        link = flat_link(model, bits_per_scalar=q, n_subchannels=2, eta=0.1, **options)
        frames = link.simulate(x)
        with torch.no_grad():
            z = model.encode(x).double().numpy()
            code = options.get("code", "binary")
            z_hat = dequantize(quantize(z, q, code), q, code)
            expected = model.decode(torch.from_numpy(z_hat).float())
        assert torch.equal(frames.x_hat, expected)  # bit for bit
        assert frames.sent.all() and frames.bit_errors.sum() == 0
        assert torch.equal(link.transmit(x), expected)


def test_deterministic_given_seed_and_independent_of_batching() -> None:
    model, x = TanhModel(), images(7)
    link = flat_link(model, channel="rayleigh", snr_db=3.0, n_subchannels=4, eta=1.0)
    first = link.simulate(x, draw=1)
    again = flat_link(model, channel="rayleigh", snr_db=3.0, n_subchannels=4, eta=1.0)
    assert torch.equal(again.transmit(x, draw=1), first.x_hat)
    parts = [link.simulate(x[:3], draw=1), link.simulate(x[3:], draw=1, first_image=3)]
    np.testing.assert_array_equal(np.concatenate([p.z_hat for p in parts]), first.z_hat)
    # the decoder's own float32 rounding may depend on its batch size; the link's frames do not
    torch.testing.assert_close(torch.cat([p.x_hat for p in parts]), first.x_hat)
    assert first.bit_errors.sum() > 0  # the noise is real at 3 dB
    other_seed = flat_link(model, channel="rayleigh", snr_db=3.0, n_subchannels=4, eta=1.0, seed=1)
    assert not np.array_equal(other_seed.simulate(x, draw=1).gains, first.gains)
    assert not np.array_equal(link.simulate(x, draw=2).gains, first.gains)


@pytest.mark.parametrize(("channel", "k_factor"), [("rayleigh", 0.0), ("rician", 2.5)])
def test_each_frame_draws_from_its_own_generator(channel: str, k_factor: float) -> None:
    """Frame ``b`` of draw ``d`` fades with the first draw of ``default_rng((seed, point(d),
    first_image + b))``, whether the batch draws them at once or (a randomised method without a
    seed, which draws on from those generators) one generator at a time."""
    model, x = TanhModel(), images(5)
    for method in ("hierarchical", "random-matching"):
        link = flat_link(model, channel=channel, rician_k=k_factor, snr_db=3.0, n_subchannels=4,
                         eta=1.0, method=method, seed=2**40 + 3)  # fmt: skip
        gains = link.simulate(x, draw=4, first_image=9).gains
        expected = [
            np.abs(fading_coefficients(channel, (4,), k_factor=k_factor, rng=np.random.default_rng(
                (link.seed, link.draw_point(4), 9 + b)))) ** 2
            for b in range(5)
        ]  # fmt: skip
        np.testing.assert_array_equal(gains, np.stack(expected))


def test_all_features_dropped_gives_decode_of_zero() -> None:
    model, x = TanhModel(), images(5)
    for options in ({"eta": 0.0}, {"n_subchannels": 0}):
        frames = flat_link(model, channel="awgn", snr_db=10.0, **options).simulate(x)
        assert not frames.sent.any() and np.all(frames.z_hat == 0.0)
        with torch.no_grad():
            expected = model.decode(torch.zeros(5, model.n_features, model.scalars_per_feature))
        assert torch.equal(frames.x_hat, expected)
    result = flat_link(model, eta=0.0).evaluate(x)
    assert math.isnan(result.ber) and result.mean_selected == 0.0 and result.bits_sent == 0


@pytest.mark.parametrize(  # learned policies: tests/semcom/test_train_policy.py
    "method", [m for m in optim.available_methods() if not m.startswith("rl:")]
)
def test_every_channel_and_allocation_method_works(method: str) -> None:
    model, x = TanhModel(n=3, length=2), images(2)
    weights, drop = np.array([0.6, 0.3, 0.1]), drop_distortion(model, x)
    for channel in ("awgn", "rayleigh", "rician"):
        link = SemanticLink(model, weights, drop, channel=channel, n_subchannels=3, snr_db=8.0,
                            eta=0.75, method=method, rician_k=2.0)  # fmt: skip
        frames = link.simulate(x)
        assert frames.x_hat.shape == x.shape and torch.isfinite(frames.x_hat).all()
        assert frames.sent.sum(axis=1).max() <= 3 and np.all(np.isfinite(frames.objective))
        symbols = np.where(frames.sent, np.ceil(2 * 8 / np.maximum(frames.bits_per_symbol, 1)), 0)
        assert np.all(symbols.sum(axis=1) <= 0.75 * 3 * 2 * 8 / 2)  # S_max respected


def test_psnr_rises_with_snr() -> None:
    model = SubspaceModel()
    x = model.sample(24)
    weights = np.array([0.5, 0.25, 0.15, 0.1])
    results = [
        SemanticLink(model, weights, drop_distortion(model, x), channel="rayleigh",
                     n_subchannels=4, snr_db=snr, eta=0.5).evaluate(x, n_draws=2)
        for snr in (-5.0, 5.0, 20.0)
    ]  # fmt: skip
    for low, high in zip(results, results[1:], strict=False):
        assert low.psnr_ci[1] < high.psnr_ci[0], (low.psnr_ci, high.psnr_ci)
        assert low.ssim < high.ssim and low.mse > high.mse
    assert results[0].mean_selected < results[-1].mean_selected


def test_evaluate_reports_metrics_with_intervals() -> None:
    model, x = TanhModel(), images(6)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    link = flat_link(model, channel="rayleigh", snr_db=5.0, n_subchannels=4, eta=1.0)
    result = link.evaluate(x, n_draws=3, labels=labels)
    assert isinstance(result, LinkResult) and (result.n_images, result.n_draws) == (6, 3)
    for mean, (low, high) in ((result.psnr_db, result.psnr_ci), (result.ssim, result.ssim_ci),
                              (result.mse, result.mse_ci), (result.ber, result.ber_ci),
                              (result.accuracy, result.accuracy_ci)):  # fmt: skip
        assert low <= mean <= high
    assert 0 < result.ber < 0.5 and result.bits_sent == 3 * 8 * int(
        round(result.mean_selected * 18)
    )
    assert len(result.ber_per_feature) == len(result.selection_rate) == 4
    json.dumps(result.to_dict())
    assert link.evaluate(x, n_draws=3, labels=labels).psnr_db == result.psnr_db
    one = link.evaluate(x[:1], n_draws=4)  # one image: the interval runs over the draws
    assert one.psnr_ci[0] < one.psnr_db < one.psnr_ci[1] and one.accuracy is None


def test_drop_distortion_and_from_data() -> None:
    model = SubspaceModel()
    x = model.sample(40)
    with torch.no_grad():
        z = model.encode(x).double()
    np.testing.assert_allclose(drop_distortion(model, x), z.pow(2).mean(dim=(0, 2)), rtol=1e-12)
    link = SemanticLink.from_data(model, x, importance="masking", channel="awgn", snr_db=10.0)
    assert np.isclose(link.weights.sum(), 1.0) and np.all(np.diff(link.weights) < 0)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"snr_db": 301}, "snr_db: 301 is invalid; allowed: a finite number in [-300, 300] or inf"),
        ({"snr_db": "x"}, "snr_db: 'x' is invalid; allowed: a finite number in [-300, 300] or inf"),
        ({"eta": math.inf}, "eta: inf is invalid; allowed: a finite number >= 0"),
        (
            {"rician_k": 2e6},
            "rician_k: 2000000.0 is invalid; allowed: a finite number in [0, 1e+06]",
        ),
        ({"bits_per_scalar": 2.0}, "bits_per_scalar: 2.0 is invalid; allowed: an integer in 1..16"),
        ({"seed": -1}, "seed: -1 is invalid; allowed: an integer in 0..18446744073709551615"),
    ],
)
def test_argument_messages(kwargs: dict, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        flat_link(TanhModel(), **kwargs)
    assert str(info.value) == text


def test_numbers_as_text_and_infinite_snr_are_accepted() -> None:
    link = flat_link(TanhModel(), snr_db="inf", eta="0.25", rician_k="2", channel="rician")
    assert (link.snr_db, link.eta, link.rician_k, link.noiseless) == (math.inf, 0.25, 2.0, True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"channel": "fiber"}, "channel"),
        ({"method": "nope"}, "allocation method"),
        ({"snr_db": math.nan}, "snr_db"),
        ({"snr_db": -math.inf}, "snr_db"),
        ({"snr_db": 1e308}, "snr_db"),
        ({"snr_db": 10**400}, "snr_db"),
        ({"rician_k": 1e308}, "rician_k"),
        ({"eta": -1.0}, "eta"),
        ({"bits_per_scalar": 17}, "bits_per_scalar"),
        ({"n_subchannels": -1}, "n_subchannels"),
        ({"rician_k": -1.0}, "rician_k"),
        ({"seed": -1}, "seed"),
        ({"code": "ascii"}, "code"),
        ({"weights": np.ones(3)}, "weights"),
        ({"weights": np.array([1.0, -1.0, 0.0, 0.0])}, "weights"),
        ({"drop_distortion": np.ones(5)}, "drop_distortion"),
        ({"modulations": ("8psk",)}, "modulations"),
        ({"method_options": {"bogus": 1}}, "method_options"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict, field: str) -> None:
    args = {"weights": np.full(4, 0.25), "drop_distortion": np.full(4, 0.3)}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=f"^{field}"):
        SemanticLink(TanhModel(), **args)
    link = flat_link(TanhModel())
    with pytest.raises(ConfigError, match="images"):
        link.transmit(images(2)[0])
    with pytest.raises(ConfigError, match="n_draws"):
        link.evaluate(images(2), n_draws=0)
