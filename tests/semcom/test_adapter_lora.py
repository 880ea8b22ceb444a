"""LoRA adapter: the update is the merged weight ``W₀ + (alpha/r) B A`` (checked against the base
operation with a merged weight), attach keeps outputs, only adapter parameters train, the
trainable count is ``r Σ (a + b)`` from the layer shapes, and the adapter contract."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from channels.errors import ConfigError
from semcom.adapters import ADAPTER, LoRA, build_adapter, trainable_parameter_count
from semcom.adapters.lowrank import adapted_units
from semcom.data import load_dataset
from semcom.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread_module")

MODELS = {
    "mlp": {},
    "cnn": {"input_shape": [1, 8, 8]},
    "vit": {"input_shape": [1, 8, 8], "dim": 16, "depth": 1, "heads": 2},
}


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, 4, **MODELS[name]).eval()


def _randomise_b(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapted_units(model).values():
            layer.lora_B.copy_(0.1 * torch.randn(layer.lora_B.shape, generator=g))


@pytest.mark.parametrize("name", list(MODELS))
def test_attach_keeps_outputs_and_freezes_the_codec(name: str) -> None:
    model = _model(name)
    x = torch.rand(3, *model.input_shape, generator=torch.Generator().manual_seed(2))
    before = model(x)
    base_names = {n for n, _ in model.named_parameters()}
    LoRA(rank=3).attach(model, seed=0)
    assert torch.equal(model(x), before)
    for n, p in model.named_parameters():
        assert p.requires_grad == ("lora_" in n)
    # every base parameter survives, moved under `.base` of its wrapper
    moved = {n.replace(".base.", ".") for n, _ in model.named_parameters() if "lora_" not in n}
    assert moved == base_names


@pytest.mark.parametrize("name", list(MODELS))
def test_update_equals_the_base_operation_with_the_merged_weight(name: str) -> None:
    """y = op(x; W₀ + γ s B A) + b₀ for linear, conv and transposed conv (ΔW built here)."""
    model = LoRA(rank=2, alpha=3.0).attach(_model(name), seed=0)
    _randomise_b(model)
    units = adapted_units(model)
    kinds = {type(u.base) for u in units.values()}
    assert kinds <= {nn.Linear, nn.Conv2d, nn.ConvTranspose2d}
    g = torch.Generator().manual_seed(3)
    for name_, layer in units.items():
        layer.scale = 0.5
        base, A, B = layer.base, layer.lora_A.detach(), layer.lora_B.detach()
        gamma = 3.0 / 2 * 0.5
        if isinstance(base, nn.Linear):
            x = torch.randn(4, base.in_features, generator=g)
            delta = B @ A
            merged = F.linear(x, base.weight + gamma * delta, base.bias)
        else:
            x = torch.randn(2, base.in_channels, 6, 6, generator=g)
            A4 = A.reshape(2, base.in_channels, *base.kernel_size)
            if isinstance(base, nn.Conv2d):
                delta = torch.einsum("or,rikl->oikl", B, A4)
                merged = F.conv2d(
                    x, base.weight + gamma * delta, base.bias, base.stride, base.padding
                )
            else:
                delta = torch.einsum("rikl,or->iokl", A4, B)
                merged = F.conv_transpose2d(
                    x,
                    base.weight + gamma * delta,
                    base.bias,
                    base.stride,
                    base.padding,
                    base.output_padding,
                )
        assert torch.allclose(layer(x), merged, atol=1e-5), name_
        assert torch.allclose(layer.delta_weight(), gamma * delta, atol=1e-6), name_


@pytest.mark.parametrize("name", list(MODELS))
def test_trainable_count_is_the_closed_form(name: str) -> None:
    """r Σ (a + b) over the codec's linear/conv layers, read off the unadapted model."""
    fresh = _model(name)
    expected = 0
    for n, m in fresh.named_modules():
        if n.startswith("head"):
            continue
        if isinstance(m, nn.Linear):
            expected += 3 * (m.in_features + m.out_features)
        elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            expected += 3 * (m.in_channels * k + m.out_channels)
    model = LoRA(rank=3).attach(_model(name), seed=0)
    assert trainable_parameter_count(model) == expected


def test_only_adapter_parameters_get_gradients_and_scale_zero_removes_the_update() -> None:
    model = _model("cnn")
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    plain = model(x).detach()
    adapter = LoRA(rank=2)
    adapter.attach(model, seed=0)
    _randomise_b(model)
    y = model(x)
    assert not torch.allclose(y, plain)
    y.square().mean().backward()
    for n, p in model.named_parameters():
        if "lora_" in n:
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), n
        else:
            assert p.grad is None, n
    adapter.set_scale(model, {n: 0.0 for n in adapter.layers(model)})
    assert torch.equal(model(x), plain)
    adapter.set_scale(model, {n: 1.0 for n in adapter.layers(model)})
    assert torch.equal(model(x), y)


def test_layers_are_in_forward_order_and_name_their_parameters() -> None:
    model = _model("vit")
    adapter = LoRA(rank=2)
    adapter.attach(model, seed=0)
    layers = adapter.layers(model)
    names = list(layers)
    assert names[0] == "embed" and names[-1] == "to_patch"
    assert names.index("to_z") < names.index("from_z") < names.index("dec_blocks.0.attn.qkv")
    params = dict(model.named_parameters())
    assert all(p in params and params[p].requires_grad for ps in layers.values() for p in ps)
    assert sum(params[p].numel() for ps in layers.values() for p in ps) == (
        trainable_parameter_count(model)
    )


@pytest.mark.parametrize("targets", ["encoder", "decoder"])
def test_targets_restrict_the_adapted_half(targets: str) -> None:
    model = LoRA(rank=2, targets=targets).attach(_model("mlp"), seed=0)
    names = list(LoRA().layers(model))
    assert len(names) == 3 and all(n.startswith(targets + ".") for n in names)


def test_state_dict_keys_are_stable_and_load_into_a_fresh_attach() -> None:
    a = LoRA(rank=2).attach(_model("cnn"), seed=0)
    _randomise_b(a)
    b = LoRA(rank=2).attach(_model("cnn"), seed=5)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(sa[k].shape == sb[k].shape for k in sa)
    b.load_state_dict(sa)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(a(x), b(x))
    c = copy.deepcopy(a)
    assert torch.equal(c(x), a(x))


def test_seeded_initialisation() -> None:
    a = LoRA(rank=2).attach(_model("mlp"), seed=7).state_dict()
    b = LoRA(rank=2).attach(_model("mlp"), seed=7).state_dict()
    c = LoRA(rank=2).attach(_model("mlp"), seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.1.lora_A"], c["encoder.1.lora_A"])


def test_tuning_the_adapter_changes_the_codec_and_lowers_its_loss() -> None:
    """A few Adam steps on the adapter alone reduce the noisy-channel loss; W₀ stays put."""
    data = load_dataset("digits", "train", limit=64)
    x = data.images
    model = _model("mlp")
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    LoRA(rank=4).attach(model, seed=0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    gen = torch.Generator().manual_seed(0)

    def loss() -> torch.Tensor:
        z = model.encode(x)
        z = z + 0.3 * torch.randn(z.shape, generator=gen)
        return (model.decode(z) - x).square().mean()

    with torch.no_grad():
        first = float(loss())
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    gen.manual_seed(0)
    with torch.no_grad():
        assert float(loss()) < 0.9 * first
    after = model.state_dict()
    for k, v in frozen.items():
        parent, _, leaf = k.rpartition(".")
        wrapped = f"{parent}.base.{leaf}"
        assert torch.equal(after[wrapped] if wrapped in after else after[k], v), k


def test_attaching_twice_is_refused() -> None:
    model = LoRA().attach(_model("mlp"))
    with pytest.raises(ConfigError, match="model"):
        LoRA().attach(model)


def test_registered_with_the_paper() -> None:
    assert ADAPTER.info("lora").paper == "arXiv:2106.09685"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"rank": 0}, "rank"), ({"alpha": -1.0}, "alpha"), ({"targets": "middle"}, "targets")],
)
def test_bad_options_give_one_line_errors(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_adapter("lora", options)
    message = str(err.value)
    assert f"adapter_options.{field}" in message and "\n" not in message
    assert repr(next(iter(options.values()))) in message
