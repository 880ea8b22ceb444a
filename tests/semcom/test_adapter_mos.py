"""MoS adapter: with one private shard per vector it is LoRA (same ΔW for the same values), its
factors are the concatenated shards its index matrices name (gathered here by hand), its
trainable count is the closed form, 8x fewer parameters than LoRA is expressible, and the
adapter contract."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from channels.errors import ConfigError
from semcom.adapters import ADAPTER, LoRA, MoS, build_adapter, trainable_parameter_count
from semcom.adapters.lowrank import adapted_units
from semcom.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread_module")

MODELS = {
    "mlp": {},
    "cnn": {"input_shape": [1, 8, 8]},
    "vit": {"input_shape": [1, 8, 8], "dim": 16, "depth": 1, "heads": 2},
}


def _model(name: str, **options: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, 4, **{**MODELS[name], **options}).eval()


def _fans(model: nn.Module) -> list[tuple[int, int]]:
    """(a, b) of every codec layer, read off the unadapted model."""
    dims = []
    for n, m in model.named_modules():
        if n.startswith("head"):
            continue
        if isinstance(m, nn.Linear):
            dims.append((m.in_features, m.out_features))
        elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            dims.append((m.in_channels * m.kernel_size[0] * m.kernel_size[1], m.out_channels))
    return dims


def _randomise(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", list(MODELS))
def test_one_private_shard_per_vector_is_lora(name: str) -> None:
    """l = 1, full privatisation: each layer's A rows / B columns are its own distinct shards;
    LoRA given the same A, B computes the same ΔW and the same outputs."""
    mos = MoS(rank=3, shards_per_vector=1, private_fraction=1.0).attach(_model(name), seed=0)
    _randomise(mos)
    lora = LoRA(rank=3, alpha=8.0).attach(_model(name), seed=0)
    assert not hasattr(mos, "mos_pools") or len(mos.mos_pools) == 0
    for (n, m_layer), (n2, l_layer) in zip(
        adapted_units(mos).items(), adapted_units(lora).items(), strict=True
    ):
        assert n == n2
        assert sorted(m_layer.index_A.tolist()) == [0, 1, 2]  # distinct private shards
        A, B = m_layer.factors()
        with torch.no_grad():
            l_layer.lora_A.copy_(A)
            l_layer.lora_B.copy_(B)
        assert torch.allclose(m_layer.delta_weight(), l_layer.delta_weight())
        assert torch.count_nonzero(m_layer.delta_weight()) > 0
    x = torch.rand(3, *mos.input_shape)
    assert torch.allclose(mos(x), lora(x), atol=1e-6)
    assert trainable_parameter_count(mos) == trainable_parameter_count(lora)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_factors_are_the_shards_the_index_matrices_name(name: str) -> None:
    """Brute force: row j of A is [shard(I[j,1]) ‖ … ‖ shard(I[j,l])][:a], likewise B^T."""
    model = MoS(rank=4, shards_per_vector=3, private_fraction=0.25, pool_ratio=0.5).attach(
        _model(name), seed=3
    )
    _randomise(model)
    pools = model.mos_pools
    for layer in adapted_units(model).values():
        A, B = layer.factors()
        for side, index, private, key, dim, got in (
            ("A", layer.index_A, layer.private_A, layer.key_a, layer.a_dim, A),
            ("B", layer.index_B, layer.private_B, layer.key_b, layer.b_dim, B.t()),
        ):
            pool = pools[key]
            for j in range(4):
                pieces = []
                for k in range(3):
                    i = int(index[j * 3 + k])
                    pieces.append(pool[i] if i < len(pool) else private[i - len(pool)])
                assert torch.equal(got[j], torch.cat(pieces)[:dim]), side
        # q = round(0.25 · 4 · 3) = 3 private shards per side, each used once
        n_a = len(pools[layer.key_a])
        assert sorted(i - n_a for i in layer.index_A.tolist() if i >= n_a) == [0, 1, 2]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(
    "options",
    [
        {"rank": 8, "shards_per_vector": 2},
        {"rank": 4, "shards_per_vector": 3, "private_fraction": 0.0, "pool_ratio": 0.3},
        {"rank": 8, "shards_per_vector": 4, "private_fraction": 0.0625, "pool_ratio": 0.05},
    ],
)
def test_trainable_count_is_the_closed_form(name: str, options: dict) -> None:
    r, l = options["rank"], options["shards_per_vector"]  # noqa: E741
    f, rho = options.get("private_fraction", 0.25), options.get("pool_ratio", 0.25)
    q = round(f * r * l)
    demand: dict[tuple[str, int], int] = {}
    private = 0
    for a, b in _fans(_model(name)):
        sa, sb = math.ceil(a / l), math.ceil(b / l)
        private += q * (sa + sb)
        for key in (("A", sa), ("B", sb)):
            demand[key] = demand.get(key, 0) + (r * l - q)
    pools = sum(max(1, math.ceil(rho * d)) * s for (_, s), d in demand.items() if d)
    model = MoS(**options).attach(_model(name), seed=0)
    assert trainable_parameter_count(model) == pools + private


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_eight_times_fewer_parameters_than_lora_is_expressible(name: str) -> None:
    lora = trainable_parameter_count(LoRA(rank=8).attach(_model(name)))
    adapter = MoS(rank=8, shards_per_vector=4, private_fraction=0.0625, pool_ratio=0.05)
    model = adapter.attach(_model(name))
    assert 8 * trainable_parameter_count(model) <= lora
    # each layer still gets a non-degenerate update (rank > 1) from its few shards; the small
    # pools of this setting cap the rank below 8 in layers whose width no other layer shares
    _randomise(model)
    for layer in adapted_units(model).values():
        A, B = layer.factors()
        assert torch.linalg.matrix_rank(B @ A) >= min(2, layer.a_dim, layer.b_dim)


def test_the_pool_is_shared_across_layers() -> None:
    """Without private shards and with a small pool, some shard feeds several layers, and the
    gradient of one layer's output reaches shards another layer uses."""
    model = MoS(rank=4, shards_per_vector=2, private_fraction=0.0, pool_ratio=0.2).attach(
        _model("mlp", hidden=[64, 64], scalars_per_feature=16), seed=0
    )
    layers = list(adapted_units(model).values())
    users: dict[tuple[str, int], set[int]] = {}
    for i, layer in enumerate(layers):
        for key, index in ((layer.key_a, layer.index_A), (layer.key_b, layer.index_B)):
            for s in index.tolist():
                users.setdefault((key, s), set()).add(i)
    assert max(len(u) for u in users.values()) >= 2
    _randomise(model)
    layers[0](torch.rand(2, layers[0].a_dim)).sum().backward()
    touched = {
        (k, i)
        for k, p in model.mos_pools.items()
        for i in range(len(p))
        if p.grad is not None and p.grad[i].abs().sum() > 0
    }
    assert any(len(users.get(t, set()) - {0}) > 0 for t in touched)


def test_pair_dissociation_decouples_the_index_matrices() -> None:
    """All layers 64 -> 64: equal A and B pools. Without dissociation I^B = I^A in every layer;
    with it, they differ."""
    kw = {"rank": 4, "shards_per_vector": 2, "private_fraction": 0.25, "pool_ratio": 0.5}
    build = lambda: _model("mlp", hidden=[64, 64], scalars_per_feature=16)  # noqa: E731
    paired = MoS(dissociate=False, **kw).attach(build(), seed=0)
    free = MoS(dissociate=True, **kw).attach(build(), seed=0)
    assert all(torch.equal(u.index_A, u.index_B) for u in adapted_units(paired).values())
    assert not all(torch.equal(u.index_A, u.index_B) for u in adapted_units(free).values())


@pytest.mark.parametrize("name", list(MODELS))
def test_attach_keeps_outputs_and_only_shards_train(name: str) -> None:
    model = _model(name)
    x = torch.rand(2, *model.input_shape)
    before = model(x)
    adapter = MoS(rank=4, shards_per_vector=2)
    adapter.attach(model, seed=0)
    assert torch.equal(model(x), before)
    _randomise(model)
    y = model(x)
    y.square().mean().backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (n.startswith("mos_pools.") or ".private_" in n), n
    layers = adapter.layers(model)
    params = dict(model.named_parameters())
    assert {p for ps in layers.values() for p in ps} == {
        n for n, p in params.items() if p.requires_grad
    }
    adapter.set_scale(model, {n: 0.0 for n in layers})
    assert torch.equal(model(x), before)
    with pytest.raises(ConfigError, match="scales"):
        adapter.set_scale(model, {"nope": 1.0})


def test_state_dict_keys_are_stable_and_load_into_a_fresh_attach() -> None:
    a = MoS(rank=4).attach(_model("cnn"), seed=0)
    _randomise(a)
    b = MoS(rank=4).attach(_model("cnn"), seed=0)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(sa[k].shape == sb[k].shape for k in sa)
    assert all(torch.equal(sa[k], sb[k]) for k in sa if k.endswith(("index_A", "index_B")))
    b.load_state_dict(sa)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(a(x), b(x))


def test_registered_with_the_paper() -> None:
    assert ADAPTER.info("mos").paper == "arXiv:2410.00938"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"shards_per_vector": 0}, "shards_per_vector"),
        ({"private_fraction": 1.5}, "private_fraction"),
        ({"pool_ratio": 0.0}, "pool_ratio"),
        ({"dissociate": "yes"}, "dissociate"),
        ({"targets": "head"}, "targets"),
    ],
)
def test_bad_options_give_one_line_errors(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_adapter("mos", options)
    message = str(err.value)
    assert f"adapter_options.{field}" in message and "\n" not in message
    assert repr(next(iter(options.values()))) in message
