"""semcom.models: shapes, ranges, the forward contract, gradients, options and invalid input."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from channels.errors import ConfigError
from semcom.models import MODELS, SemanticModel, build_model, resolve_model_options
from semcom.models.gdn import GDN

CASES = [
    # name, N, options, expected (C, H, W), expected L
    ("cnn", 16, {}, (3, 32, 32), 64),
    ("cnn", 8, {"norm": "batch"}, (3, 32, 32), 64),
    ("cnn", 128, {"scalar_features": True}, (3, 32, 32), 1),
    ("cnn", 4, {"input_shape": [1, 8, 8], "norm": "none"}, (1, 8, 8), 4),
    ("mlp", 16, {}, (1, 8, 8), 4),
    ("mlp", 6, {"L": 3, "num_classes": 10}, (1, 8, 8), 3),
    ("vit", 16, {}, (3, 32, 32), 16),
    ("vit", 16, {"input_shape": [1, 8, 8], "scalars_per_feature": 2, "depth": 1}, (1, 8, 8), 2),
]
IDS = [f"{c[0]}-N{c[1]}-{'-'.join(map(str, c[2]))}" for c in CASES]


def _model(name: str, n: int, options: dict[str, Any]) -> SemanticModel:
    torch.manual_seed(0)
    return build_model(name, n, **options)


@pytest.mark.parametrize(("name", "n", "options", "shape", "length"), CASES, ids=IDS)
def test_shapes_ranges_and_forward_contract(
    name: str, n: int, options: dict[str, Any], shape: tuple[int, int, int], length: int
) -> None:
    model = _model(name, n, options).eval()
    assert (model.n_features, model.scalars_per_feature, model.input_shape) == (n, length, shape)
    x = torch.rand(5, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = model.encode(x)
        x_hat = model(x)
        assert z.shape == (5, n, length) and x_hat.shape == x.shape
        assert float(z.abs().max()) <= 1.0
        assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0
        assert torch.equal(x_hat, model.decode(model.encode(x)))
        # forward(x, channel) = decode(channel(encode(x)))
        zero = model(x, channel=lambda t: torch.zeros_like(t))
        assert torch.equal(zero, model.decode(torch.zeros_like(z)))
    # the resolved options rebuild the same architecture
    twin = build_model(name, n, **model.options)
    assert [p.shape for p in twin.parameters()] == [p.shape for p in model.parameters()]
    assert resolve_model_options(name, n, **model.options) == model.options


@pytest.mark.parametrize(("name", "n", "options", "shape", "length"), CASES, ids=IDS)
def test_gradients_reach_every_parameter(
    name: str, n: int, options: dict[str, Any], shape: tuple[int, int, int], length: int
) -> None:
    model = _model(name, n, options).train()
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(2))
    loss = ((model(x) - x) ** 2).mean()
    if model.num_classes is not None:
        loss = loss + model.classify(model(x)).logsumexp(1).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    first = next(model.parameters())
    assert float(first.grad.abs().sum()) > 0.0


def test_cnn_feature_is_a_latent_channel() -> None:
    model = _model("cnn", 16, {}).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        latent = torch.tanh(model.encoder(x))  # [2, 16, 8, 8]
        z = model.encode(x)
    assert torch.equal(z[:, 5], latent[:, 5].flatten(1))
    scalar = _model("cnn", 64, {"scalar_features": True}).eval()
    with torch.no_grad():
        assert torch.equal(scalar.encode(x)[..., 0], torch.tanh(scalar.encoder(x)).flatten(1))


def test_classifier_head() -> None:
    model = _model("mlp", 8, {"num_classes": 10})
    logits = model.classify(torch.rand(3, 1, 8, 8))
    assert logits.shape == (3, 10)
    with pytest.raises(ConfigError, match="num_classes"):
        _model("mlp", 8, {}).classify(torch.rand(3, 1, 8, 8))


def test_vit_attention_maps() -> None:
    model = _model("vit", 16, {"heads": 2}).eval()
    with torch.no_grad():
        maps = model.attention_maps(torch.rand(3, 3, 32, 32))
    assert maps.shape == (3, 2, 16, 16)
    assert torch.allclose(maps.sum(-1), torch.ones(3, 2, 16), atol=1e-5)
    assert float(maps.min()) >= 0.0
    assert model.options["patch_size"] == 8
    assert _model("vit", 64, {}).options["patch_size"] == 4


def test_gdn_formula_and_inverse() -> None:
    gdn, igdn = GDN(4), GDN(4, inverse=True)
    x = torch.randn(2, 4, 3, 3)
    norm = torch.sqrt(1.0 + 1e-6 + 0.1 * x**2)  # initial β = 1 (+β_min), γ = 0.1 I
    assert torch.allclose(gdn(x), x / norm, atol=1e-6)
    assert torch.allclose(igdn(x), x * norm, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "n", "options", "match"),
    [
        ("resnet", 16, {}, "model: 'resnet'"),
        ("cnn", 0, {}, "n_features: 0"),
        ("cnn", True, {}, "n_features: True"),
        ("cnn", 16, {"depth": 3}, "cnn option: 'depth'"),
        ("cnn", 100, {"scalar_features": True}, "multiple of 64"),
        ("cnn", 16, {"input_shape": [3, 30, 30]}, "multiples of 4"),
        ("cnn", 16, {"norm": "layer"}, "norm: 'layer'"),
        ("cnn", 16, {"kernel_size": 4}, "kernel_size: 4"),
        ("cnn", 16, {"num_classes": 1}, "num_classes: 1"),
        ("mlp", 16, {"L": 2, "scalars_per_feature": 2}, "either L"),
        ("mlp", 16, {"hidden": [64]}, "hidden"),
        ("vit", 15, {}, "n_features: 15"),
        ("vit", 16, {"patch_size": 4}, "patch_size: 4"),
        ("vit", 16, {"dim": 30, "heads": 4}, "dim: 30"),
    ],
)
def test_invalid_names_and_sizes(name: str, n: Any, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_model(name, n, **options)


def test_wrong_input_and_feature_shapes() -> None:
    model = _model("cnn", 16, {})
    with pytest.raises(ConfigError, match=r"x: tensor of shape \(2, 1, 32, 32\)"):
        model.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ConfigError, match=r"z: tensor of shape \(2, 8, 64\)"):
        model.decode(torch.rand(2, 8, 64))
    with pytest.raises(ConfigError, match="x: tensor"):
        _model("vit", 16, {}).attention_maps(torch.rand(2, 3, 16, 16))
    assert sorted(MODELS) == ["cnn", "mlp", "vit"]
