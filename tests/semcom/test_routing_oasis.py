"""OASIS (routing family): window supports by brute force, the locality KL against torch's
categorical KL, KL = 0 for a head already inside its window (output unchanged after apply),
equivariance to head permutations, attention MACs in closed form, and the family contract."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from channels.errors import ConfigError
from semcom.data import load_dataset
from semcom.models import build_model
from semcom.models.attention import SelfAttention, attention_layers
from semcom.registry import all_methods
from semcom.routing import OASIS, build_routing, check_architecture
from semcom.routing.oasis import assign_local, attention_macs, locality_kl, window_support

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _vit(seed: int = 0) -> torch.nn.Module:
    """4x4 token grid (T = 16) on 8x8 digits, 4 heads of width 4, one encoder + one decoder
    block."""
    torch.manual_seed(seed)
    return build_model("vit", 16, input_shape=[1, 8, 8], dim=16, depth=1, heads=4, L=2).eval()


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_dataset("digits", "train").images[:48]


def _permute_heads(attn: SelfAttention, perm: list[int]) -> None:
    """Reorder the heads of ``attn`` in place (new head ``i`` = old head ``perm[i]``)."""
    hd, inner = attn.head_dim, attn.heads * attn.head_dim
    per_head = torch.cat([torch.arange(p * hd, (p + 1) * hd) for p in perm])
    rows = torch.cat([per_head + s * inner for s in range(3)])
    with torch.no_grad():
        attn.qkv.weight.copy_(attn.qkv.weight[rows].clone())
        attn.qkv.bias.copy_(attn.qkv.bias[rows].clone())
        attn.out.weight.copy_(attn.out.weight[:, per_head].clone())


def _with_window_head(model: torch.nn.Module, head: int, radius: int) -> torch.nn.Module:
    """A copy whose ``head`` attends only inside its window in every block."""
    twin = copy.deepcopy(model)
    support = window_support(tuple(twin.grid), radius)
    for m in attention_layers(twin):
        m.set_key_mask(
            torch.stack(
                [support if h == head else torch.ones_like(support) for h in range(m.heads)]
            )
        )
    return twin


# ---------------------------------------------------------------------------------------------
# the paper's properties


@pytest.mark.parametrize(("grid", "radius"), [((4, 4), 1), ((3, 5), 2), ((2, 2), 0), ((4, 4), 9)])
def test_window_support_matches_brute_force(grid: tuple[int, int], radius: int) -> None:
    gh, gw = grid
    ref = torch.zeros(gh * gw, gh * gw, dtype=torch.bool)
    for i in range(gh * gw):
        for j in range(gh * gw):
            ref[i, j] = abs(i // gw - j // gw) <= radius and abs(i % gw - j % gw) <= radius
    assert torch.equal(window_support(grid, radius), ref)


def test_locality_kl_is_the_categorical_kl_of_the_window_restriction() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(2 * torch.randn(3, 2, 16, 16, generator=g, dtype=torch.float64), dim=-1)
    s = window_support((4, 4), 1)
    q = p * s / (p * s).sum(-1, keepdim=True)
    ref = kl_divergence(Categorical(probs=q), Categorical(probs=p))
    assert torch.allclose(locality_kl(p, s), ref, atol=1e-12)
    # the other direction is infinite for every softmax head: why the finite one is used
    assert bool(torch.isinf(kl_divergence(Categorical(probs=p), Categorical(probs=q))).all())


def test_a_head_inside_its_window_has_zero_kl_and_keeps_its_output(digits: torch.Tensor) -> None:
    model = _with_window_head(_vit(), head=2, radius=1)
    method = OASIS(radius=1, threshold=1e-6, local_fraction=None)
    method.finalize(model, digits, None)
    assert method.kl is not None and method.local is not None
    for kl, local in zip(method.kl, method.local, strict=True):
        assert float(kl[2]) <= 1e-6 and bool((kl[[0, 1, 3]] > 1e-2).all())
        assert local.tolist() == [False, False, True, False]
    deployed = method.apply(model)
    with torch.no_grad():
        assert torch.equal(deployed(digits), model(digits))


def test_assignment_is_equivariant_to_head_permutations(digits: torch.Tensor) -> None:
    model = _vit(1)
    perms = [[2, 0, 3, 1], [3, 2, 1, 0]]  # encoder block, decoder block
    permuted = copy.deepcopy(model)
    for m, perm in zip(attention_layers(permuted), perms, strict=True):
        _permute_heads(m, perm)  # type: ignore[arg-type]
    with torch.no_grad():
        assert torch.allclose(permuted(digits), model(digits), atol=1e-6)
    a, b = OASIS(local_fraction=0.5), OASIS(local_fraction=0.5)
    a.finalize(model, digits, None)
    b.finalize(permuted, digits, None)
    assert a.kl is not None and b.kl is not None and a.local is not None and b.local is not None
    for ka, kb, la, lb, perm in zip(a.kl, b.kl, a.local, b.local, perms, strict=True):
        assert torch.allclose(kb, ka[perm], rtol=1e-6)
        assert torch.equal(lb, la[perm])


def test_fraction_and_threshold_assignments_against_brute_force() -> None:
    kl = torch.tensor([0.7, 0.1, 0.5, 0.0, 0.9, 0.3], dtype=torch.float64)
    for frac in (0.0, 0.25, 0.5, 1.0):
        local = assign_local(kl, local_fraction=frac)
        k = round(frac * 6)
        assert int(local.sum()) == k
        if 0 < k < 6:
            assert float(kl[local].max()) < float(kl[~local].min())
    assert assign_local(kl, threshold=0.3).tolist() == [bool(v <= 0.3) for v in kl.tolist()]


def test_routing_changes_the_reconstructions_and_saves_attention_macs(
    digits: torch.Tensor,
) -> None:
    model = _vit()
    method = OASIS(radius=1, local_fraction=0.5)
    method.finalize(model, digits, None)
    deployed = method.apply(model)
    with torch.no_grad():
        assert not torch.allclose(deployed(digits), model(digits), atol=1e-4)
    # closed form: a 4x4 grid with radius 1 has Σ_i |W_i| = 4·4 + 8·6 + 4·9 = 100 key pairs;
    # 4 of the 8 heads (width 4) are local
    full = 2 * 4 * (8 * 256)
    routed = 2 * 4 * (4 * 256 + 4 * 100)
    assert attention_macs(model) == full and attention_macs(deployed) == routed
    saved = method.savings(model)
    assert saved == {"macs": full, "routed_macs": routed, "saved_fraction": 1 - routed / full}


def test_encoder_scope_leaves_the_decoder_global(digits: torch.Tensor) -> None:
    model = _vit()
    method = OASIS(local_fraction=1.0, blocks="encoder")
    method.finalize(model, digits, None)
    deployed = method.apply(model)
    assert deployed.enc_blocks[0].attn.key_mask is not None
    assert deployed.dec_blocks[0].attn.key_mask is None


# ---------------------------------------------------------------------------------------------
# family contract and errors


def test_apply_is_deterministic_copies_and_survives_a_state_round_trip(
    digits: torch.Tensor,
) -> None:
    model = _vit()
    method = OASIS(local_fraction=0.5)
    method.finalize(model, digits, None)
    one, two = method.apply(model), method.apply(model)
    assert all(m.key_mask is None for m in attention_layers(model))  # input untouched
    restored = OASIS(local_fraction=0.5)
    restored.load_state_dict(method.state_dict())
    three = restored.apply(model)
    with torch.no_grad():
        assert torch.equal(one(digits), two(digits)) and torch.equal(one(digits), three(digits))
    assert build_routing("oasis", {}).get_params() == method.get_params()


def test_apply_before_finalize_and_other_models_are_refused(digits: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="finalize"):
        OASIS().apply(_vit())
    with pytest.raises(ConfigError, match="model: 'mlp'"):
        check_architecture(OASIS(), "oasis", "mlp")
    method = OASIS()
    method.finalize(_vit(), digits, None)
    other = build_model("vit", 16, input_shape=[1, 8, 8], dim=16, depth=1, heads=2, L=2)
    with pytest.raises(ConfigError, match="model: "):
        method.apply(other)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"radius": -1}, "routing_options.radius: -1"),
        ({"local_fraction": 1.5}, "routing_options.local_fraction: 1.5"),
        ({"threshold": 0.1}, "routing_options.local_fraction: 0.5"),
        ({"local_fraction": None}, "routing_options.local_fraction: None"),
        ({"threshold": -1, "local_fraction": None}, "routing_options.threshold: -1"),
        ({"blocks": "middle"}, "routing_options.blocks: 'middle'"),
        ({"window": 3}, "routing_options.window: 3"),
    ],
)
def test_bad_options_fail_with_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_routing("oasis", options)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_registered_with_its_paper() -> None:
    info = [m for m in all_methods() if m.family == "routing" and m.name == "oasis"]
    assert len(info) == 1 and info[0].paper == "arXiv:2509.23980"
