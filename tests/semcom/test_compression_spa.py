"""SPA: coupled groups (zeroing a group equals a physically smaller network), group OBS against
least squares, the group-importance formula, exact budgets and the family contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, SPAPruning
from semcom.compression.budget import prune_count
from semcom.compression.groups import live_units, unit_families, zero_units
from semcom.compression.obs import group_obs
from semcom.models.build import build_model
from semcom.models.gdn import GDN

pytestmark = pytest.mark.usefixtures("one_thread_module")


def tiny(name: str, **options) -> nn.Module:
    torch.manual_seed(0)
    if name == "cnn":
        model = build_model("cnn", 4, widths=[6, 8], input_shape=[3, 8, 8], **options)
    elif name == "vit":
        model = build_model("vit", 4, dim=16, heads=4, depth=2, input_shape=[1, 8, 8])
    else:
        model = build_model("mlp", 8, hidden=[24, 12])
    return model.eval()


def random_units(families, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(f.units, generator=g)[: f.units // 2] for f in families]


# -- groups: zeroing a group equals removing it ---------------------------------------------------


def smaller_sequential(seq: nn.Sequential, keep: list[torch.Tensor]) -> nn.Sequential:
    """A physically smaller copy of a cnn/mlp encoder keeping hidden units ``keep[l]`` of layer
    ``l`` (sliced weights; the reference the zeroed network must equal)."""
    layers = [m for m in seq if isinstance(m, nn.Linear | nn.Conv2d)]
    out_keep = {id(m): k for m, k in zip(layers, keep, strict=False)}
    in_keep = {id(m): k for m, k in zip(layers[1:], keep, strict=False)}
    new, current = [], None
    for m in seq:
        if isinstance(m, nn.Conv2d | nn.Linear):
            o = out_keep.get(id(m), torch.arange(m.weight.shape[0]))
            i = in_keep.get(id(m), torch.arange(m.weight.shape[1]))
            w = m.weight.detach()[o][:, i]
            if isinstance(m, nn.Conv2d):
                layer = nn.Conv2d(len(i), len(o), m.kernel_size, m.stride, m.padding)
            else:
                layer = nn.Linear(len(i), len(o))
            layer.weight.data, layer.bias.data = w.clone(), m.bias.detach()[o].clone()
            new.append(layer)
            current = o
        elif isinstance(m, GDN):
            gdn = GDN(len(current))
            gdn.b.data = m.b.detach()[current].clone()
            gdn.g.data = m.g.detach()[current][:, current].clone()
            new.append(gdn)
        elif isinstance(m, nn.BatchNorm2d):
            bn = nn.BatchNorm2d(len(current)).eval()
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, attr).data = getattr(m, attr).detach()[current].clone()
            new.append(bn)
        elif isinstance(m, nn.PReLU) and m.weight.numel() > 1:
            act = nn.PReLU(len(current))
            act.weight.data = m.weight.detach()[current].clone()
            new.append(act)
        else:
            new.append(m)
    return nn.Sequential(*new).eval()


@pytest.mark.parametrize(("name", "norm"), [("cnn", "gdn"), ("cnn", "batch"), ("mlp", None)])
def test_zeroed_groups_equal_a_physically_smaller_encoder(name: str, norm: str | None) -> None:
    model = tiny(name, **({"norm": norm} if norm else {}))
    if norm == "batch":  # non-trivial running statistics
        with torch.no_grad():
            for m in model.encoder:
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-1, 1)
                    m.running_var.uniform_(0.5, 2)
    families = unit_families(model)
    gone = random_units(families)
    keep = [
        torch.tensor(sorted(set(range(f.units)) - set(g.tolist())))
        for f, g in zip(families, gone, strict=True)
    ]
    small = smaller_sequential(model.encoder, keep)
    for family, units in zip(families, gone, strict=True):
        zero_units(model, family, units)
    x = torch.rand(5, *model.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(x), small(x), rtol=1e-5, atol=1e-6)
    assert [int((~live_units(model, f)).sum()) for f in families] == [len(g) for g in gone]


def small_vit_features(model: nn.Module, heads: list[torch.Tensor], hidden: list[torch.Tensor], x):
    """Features of the ViT encoder written out with only the kept heads and hidden units."""
    t = model.embed(model._patchify(x)) + model.pos_enc
    for block, kh, ku in zip(model.enc_blocks, heads, hidden, strict=True):
        attn = block.attn
        d = attn.out.in_features
        dh = d // attn.heads
        u = block.norm1(t)
        outs = []
        for h in kh.tolist():
            rows = [p * d + h * dh + j for p in range(3) for j in range(dh)]
            qkv = u @ attn.qkv.weight[rows].T + attn.qkv.bias[rows]
            q, k, v = qkv[..., :dh], qkv[..., dh : 2 * dh], qkv[..., 2 * dh :]
            a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh), dim=-1)
            outs.append(a @ v @ attn.out.weight[:, h * dh : (h + 1) * dh].T)
        t = t + sum(outs) + attn.out.bias
        fc1, fc2 = block.mlp[0], block.mlp[2]
        hidden_out = torch.nn.functional.gelu(block.norm2(t) @ fc1.weight[ku].T + fc1.bias[ku])
        t = t + hidden_out @ fc2.weight[:, ku].T + fc2.bias
    return model.to_z(model.enc_norm(t))


def test_zeroed_heads_and_mlp_units_equal_a_smaller_vit() -> None:
    model = tiny("vit")
    families = unit_families(model)
    gone = random_units(families, seed=3)
    kept = [
        torch.tensor(sorted(set(range(f.units)) - set(g.tolist())))
        for f, g in zip(families, gone, strict=True)
    ]
    x = torch.rand(3, *model.input_shape)
    with torch.no_grad():
        reference = small_vit_features(model, kept[0::2], kept[1::2], x)
        for family, units in zip(families, gone, strict=True):
            zero_units(model, family, units)
        torch.testing.assert_close(model._features(x), reference, rtol=1e-5, atol=1e-6)


# -- group OBS ------------------------------------------------------------------------------------


def test_group_obs_ends_at_the_least_squares_fit_of_the_kept_columns() -> None:
    rng = np.random.default_rng(0)
    n, m, groups, q = 200, 5, 6, 3
    x = rng.normal(size=(n, groups * q)) @ rng.normal(size=(groups * q, groups * q))
    w = rng.normal(size=(m, groups * q))
    cols = torch.arange(groups * q).reshape(groups, q)
    new, removed, errors = group_obs(torch.from_numpy(w), torch.from_numpy(x.T @ x), cols, 3, 0.0)
    new = new.numpy()
    kept = np.setdiff1d(np.arange(groups * q), cols[removed].reshape(-1).numpy())
    v, *_ = np.linalg.lstsq(x[:, kept], x @ w.T, rcond=None)
    np.testing.assert_allclose(new[:, kept], v.T, rtol=1e-7, atol=1e-9)
    assert np.all(new[:, cols[removed].reshape(-1).numpy()] == 0.0)
    # the step errors add up to the final reconstruction error
    final = np.sum((x @ (new - w).T) ** 2)
    assert sum(errors) == pytest.approx(final, rel=1e-7)
    # the first removal is the best single group (brute force over all groups)
    single = []
    for g in range(groups):
        rest = np.setdiff1d(np.arange(groups * q), cols[g].numpy())
        v, *_ = np.linalg.lstsq(x[:, rest], x @ w.T, rcond=None)
        single.append(np.sum((x[:, rest] @ v - x @ w.T) ** 2))
    assert removed[0] == int(np.argmin(single))
    assert errors[0] == pytest.approx(min(single), rel=1e-7)


# -- group importance -----------------------------------------------------------------------------


def test_l1_group_importance_is_the_mean_of_normalised_operator_norms() -> None:
    model = tiny("cnn")
    sizes = [f.units for f in unit_families(model)]
    result = SPAPruning(sparsity=0.25, criterion="l1").compress(model)
    enc = [m for m in model.encoder]
    conv0, gdn0, prelu0, conv1 = enc[0], enc[1], enc[2], enc[3]
    ops = [
        np.abs(conv0.weight.detach().numpy()).reshape(6, -1).sum(1),
        np.abs(conv0.bias.detach().numpy()),
        np.abs(gdn0.b.detach().numpy()),
        np.abs(gdn0.g.detach().numpy()).sum(1),
        np.abs(gdn0.g.detach().numpy()).sum(0),
        np.abs(prelu0.weight.detach().numpy()),
        np.abs(conv1.weight.detach().numpy()).transpose(1, 0, 2, 3).reshape(6, -1).sum(1),
    ]
    importance = np.mean([op / op.mean() for op in ops], axis=0)
    per_layer = result.details["per_layer"]
    k0 = per_layer["encoder.0"]
    assert sum(per_layer.values()) == prune_count(0.25, sum(sizes))
    family = unit_families(result.model)[0]
    dead = ~live_units(result.model, family).numpy()
    assert set(np.flatnonzero(dead)) == set(np.argsort(importance, kind="stable")[:k0])


@pytest.mark.parametrize("criterion", ["l1", "l2", "taylor", "obspa"])
def test_pruning_already_zero_groups_leaves_the_outputs_unchanged(criterion: str) -> None:
    model = tiny("cnn")
    families = unit_families(model)
    for family in families:  # half of every layer is already dead
        zero_units(model, family, torch.arange(0, family.units, 2))
    x = torch.rand(6, *model.input_shape)
    result = SPAPruning(sparsity=0.5, criterion=criterion, data="calibration").compress(model, x)
    with torch.no_grad():
        torch.testing.assert_close(result.model.encode(x), model.encode(x), rtol=0, atol=1e-6)
    for family in families:
        assert live_units(result.model, family).tolist() == [
            bool(u % 2) for u in range(family.units)
        ]


def test_obspa_reconstructs_the_features_better_than_group_l1() -> None:
    model = tiny("cnn")
    x = torch.rand(16, *model.input_shape)
    with torch.no_grad():
        dense = model.encode(x)
        errors = {}
        for criterion in ("obspa", "l1"):
            method = SPAPruning(sparsity=0.4, criterion=criterion, data="calibration")
            pruned = method.compress(model, x).model
            errors[criterion] = float(torch.mean((pruned.encode(x) - dense) ** 2))
    assert errors["obspa"] < 0.5 * errors["l1"]


# -- budgets and the contract ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cnn", "mlp", "vit"])
@pytest.mark.parametrize(("criterion", "scope"), [("obspa", "layer"), ("l2", "global")])
def test_exact_unit_count_and_a_working_codec(name: str, criterion: str, scope: str) -> None:
    model = tiny(name)
    families = unit_families(model)
    total = sum(f.units for f in families)
    method = SPAPruning(sparsity=0.6, criterion=criterion, scope=scope, data="noise", samples=4)
    result = method.compress(model)
    dead = [int((~live_units(result.model, f)).sum()) for f in unit_families(result.model)]
    assert sum(dead) == result.details["pruned"] == prune_count(0.6, total)
    assert all(d < f.units for d, f in zip(dead, families, strict=True))  # one unit survives
    x = torch.rand(2, *model.input_shape)
    z = result.model.encode(x)
    assert z.shape == model.encode(x).shape
    assert result.model.decode(z).shape == x.shape
    assert result.size.nonzero_params < result.size.params


def test_input_unchanged_and_deterministic() -> None:
    model = tiny("vit")
    before = [p.clone() for p in model.parameters()]
    method = SPAPruning(sparsity=0.5, data="noise", samples=4, seed=7)
    runs = [method.compress(model) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    pairs = zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_registered_with_its_paper() -> None:
    assert COMPRESSION.info("spa").paper == "arXiv:2403.18955"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.5}, "sparsity"), ({"criterion": "snip"}, "criterion"),
     ({"aggregate": "prod"}, "aggregate"), ({"normalize": "l2"}, "normalize"),
     ({"scope": "block"}, "scope"), ({"scope": "global"}, "scope"), ({"data": "cifar"}, "data"),
     ({"samples": 0}, "samples"), ({"damp": -1.0}, "damp"), ({"seed": 1.5}, "seed")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        SPAPruning(**options)


def test_unmeetable_budget_and_missing_images_are_refused() -> None:
    with pytest.raises(ConfigError, match="^sparsity: 0.99 is invalid; allowed: at most"):
        SPAPruning(sparsity=0.99, criterion="l1").compress(tiny("mlp"))
    with pytest.raises(ConfigError, match="^images: None is invalid; allowed: calibration"):
        SPAPruning(criterion="taylor").compress(tiny("mlp"))
    with pytest.raises(ConfigError, match="^images:"):
        SPAPruning(data="calibration").compress(tiny("mlp"), torch.rand(2, 3, 8, 8))
