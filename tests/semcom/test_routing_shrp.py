"""SHRP (routing family): usage counts against a hand-computed router argmax, pruning unused
heads leaves the routed outputs unchanged, parameter counts in closed form, training through
the router, and the family contract."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from channels.errors import ConfigError
from semcom.data import load_dataset
from semcom.models import build_model
from semcom.models.expert_attention import ExpertAttention
from semcom.registry import all_methods
from semcom.routing import SHRP, build_routing, check_architecture
from semcom.routing.shrp import select_heads

pytestmark = pytest.mark.usefixtures("one_thread_module")

DIM, HEADS, HD, RATIO = 16, 4, 4, 2
OPTIONS: dict[str, Any] = {"input_shape": [1, 8, 8], "dim": DIM, "depth": 1, "heads": HEADS, "L": 2}


def _shrp_vit(method: SHRP, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return method.build("vit", 16, OPTIONS).eval()


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_dataset("digits", "train").images[:40]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _expert_params(heads: int) -> int:
    """Closed form of one Expert Attention: W_qkv, router, shared expander."""
    qkv = DIM * 3 * heads * HD + 3 * heads * HD
    router = DIM * heads + heads
    expander = HD * RATIO * HD + RATIO * HD + RATIO * HD * DIM + DIM
    return qkv + router + expander


# ---------------------------------------------------------------------------------------------
# the paper's properties


def test_usage_counts_sum_to_the_routing_decisions_and_match_the_router(
    digits: torch.Tensor,
) -> None:
    method = SHRP()
    model = _shrp_vit(method)
    method.finalize(model, digits, None)
    assert method.usage is not None and len(method.usage) == 2
    for u in method.usage:
        assert int(u.sum()) == len(digits) * 16  # one decision per token and image
    # independent count for the encoder block: argmax of the router on LN(embedded tokens)
    with torch.no_grad():
        t = model.embed(model._patchify(digits)) + model.pos_enc
        logits = model.enc_blocks[0].attn.router(model.enc_blocks[0].norm1(t))
        manual = torch.bincount(logits.argmax(-1).flatten(), minlength=HEADS)
    assert torch.equal(method.usage[0], manual)


def test_pruning_never_used_heads_keeps_the_routed_outputs(digits: torch.Tensor) -> None:
    method = SHRP()
    model = _shrp_vit(method)
    g = torch.Generator().manual_seed(5)
    for block in (model.enc_blocks[0], model.dec_blocks[0]):
        with torch.no_grad():  # a spread-out router in which head 1 never wins
            block.attn.router.weight.copy_(2 * torch.randn(HEADS, DIM, generator=g))
            block.attn.router.bias.zero_()
            block.attn.router.bias[1] -= 1e4
    method.finalize(model, digits, None)
    assert method.usage is not None and all(int(u[1]) == 0 for u in method.usage)
    assert int((method.usage[0] > 0).sum()) == 3  # the encoder uses heads 0, 2 and 3
    deployed = method.apply(model)
    blocks = (deployed.enc_blocks[0], deployed.dec_blocks[0])
    for block, u in zip(blocks, method.usage, strict=True):
        assert block.attn.heads == int((u > 0).sum())
    with torch.no_grad():
        x = digits[:8]
        t = model.enc_blocks[0].norm1(model.embed(model._patchify(x)) + model.pos_enc)
        full, _ = model.enc_blocks[0].attn(t)
        pruned, _ = deployed.enc_blocks[0].attn(t)
        assert torch.allclose(pruned, full, atol=1e-6)
        assert torch.allclose(deployed(digits), model(digits), atol=1e-6)


def test_parameter_count_after_pruning_follows_the_closed_form(digits: torch.Tensor) -> None:
    method = SHRP(keep=1)
    model = _shrp_vit(method)
    plain = build_model("vit", 16, **OPTIONS)
    # Expert Attention replaces W_o (d·d + d) by the router and the shared expander
    per_layer = _expert_params(HEADS) - (DIM * 3 * DIM + 3 * DIM + DIM * DIM + DIM)
    assert _params(model) == _params(plain) + 2 * per_layer
    method.finalize(model, digits, None)
    deployed = method.apply(model)
    assert _params(deployed) == _params(model) - 2 * (_expert_params(HEADS) - _expert_params(1))
    assert [len(h) for h in method.kept_heads()] == [1, 1]


def test_select_heads_against_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        usage = torch.randint(0, 5, (6,), generator=g)
        for keep in (None, 1, 3):
            for share in (0.0, 0.1, 0.3):
                kept = select_heads(usage, keep, share)
                total = max(int(usage.sum()), 1)
                cand = [e for e in range(6) if int(usage[e]) / total > share]
                if not cand:
                    cand = [int(torch.sort(-usage.double(), stable=True).indices[0])]
                cand.sort(key=lambda e: (-int(usage[e]), e))
                ref = sorted(cand if keep is None else cand[:keep])
                assert kept == ref


def test_pruning_used_heads_changes_the_link_and_shrinks_it(digits: torch.Tensor) -> None:
    method = SHRP(keep=1)
    model = _shrp_vit(method)
    method.finalize(model, digits, None)
    deployed = method.apply(model)
    with torch.no_grad():
        assert not torch.allclose(deployed(digits), model(digits), atol=1e-4)
    assert _params(deployed) < _params(model)
    # the deployed model still routes every token, now over one head per layer
    again = SHRP(keep=1)
    again.finalize(deployed, digits, None)
    assert again.usage is not None
    assert [u.tolist() for u in again.usage] == [[len(digits) * 16]] * 2


def test_training_reaches_router_expander_and_heads(digits: torch.Tensor) -> None:
    model = _shrp_vit(SHRP()).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = ((model(digits) - digits) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        attn = model.enc_blocks[0].attn
        assert float(attn.router.weight.grad.abs().sum()) > 0
        assert float(attn.expander[0].weight.grad.abs().sum()) > 0
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


# ---------------------------------------------------------------------------------------------
# family contract and errors


def test_build_scopes_and_plain_models_are_refused(digits: torch.Tensor) -> None:
    enc = _shrp_vit(SHRP(blocks="encoder"))
    assert isinstance(enc.enc_blocks[0].attn, ExpertAttention)
    assert not isinstance(enc.dec_blocks[0].attn, ExpertAttention)
    with pytest.raises(ConfigError, match="model: 'vit'"):
        SHRP().finalize(build_model("vit", 16, **OPTIONS), digits, None)
    with pytest.raises(ConfigError, match="model: 'mlp'"):
        check_architecture(SHRP(), "shrp", "mlp")
    with pytest.raises(ConfigError, match="finalize"):
        SHRP().apply(enc)


def test_apply_is_deterministic_copies_and_survives_a_state_round_trip(
    digits: torch.Tensor,
) -> None:
    method = SHRP(keep=2)
    model = _shrp_vit(method)
    method.finalize(model, digits, None)
    one, two = method.apply(model), method.apply(model)
    assert model.enc_blocks[0].attn.heads == HEADS  # input untouched
    restored = SHRP(keep=2)
    restored.load_state_dict(method.state_dict())
    three = restored.apply(model)
    with torch.no_grad():
        assert torch.equal(one(digits), two(digits)) and torch.equal(one(digits), three(digits))
    assert build_routing("shrp", {"keep": 2}).get_params() == method.get_params()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"blocks": "all"}, "routing_options.blocks: 'all'"),
        ({"expander_ratio": 0}, "routing_options.expander_ratio: 0"),
        ({"keep": 0}, "routing_options.keep: 0"),
        ({"min_share": 1.0}, "routing_options.min_share: 1.0"),
        ({"top_k": 2}, "routing_options.top_k: 2"),
    ],
)
def test_bad_options_fail_with_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_routing("shrp", options)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_registered_with_its_paper() -> None:
    info = [m for m in all_methods() if m.family == "routing" and m.name == "shrp"]
    assert len(info) == 1 and info[0].paper == "arXiv:2512.20635"
