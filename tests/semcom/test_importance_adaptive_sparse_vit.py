"""adaptive-sparse-vit: the budget loss drives the kept fraction to its target; head weighting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, AdaptiveSparseViTImportance, estimate, make_estimator
from semcom.importance.adaptive_sparse_vit import (
    budget_loss,
    fit_threshold,
    head_weighted_attention,
    threshold_gate,
)
from semcom.importance.vit_trace import head_outputs
from semcom.models import build_model
from tests.semcom import vit_helpers
from tests.semcom.vit_helpers import images

pytestmark = pytest.mark.usefixtures("one_thread_module")


def tiny_vit(seed: int = 0, depth: int = 2) -> torch.nn.Module:
    return vit_helpers.tiny_vit(seed, depth=depth, scalars_per_feature=4)


def test_registered_with_its_paper() -> None:
    assert IMPORTANCE.info("adaptive-sparse-vit").paper == "arXiv:2209.13802"


@pytest.mark.parametrize("target", [0.1, 0.25, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("law", ["exponential", "uniform"])
def test_budget_loss_drives_the_kept_fraction_to_the_target(target: float, law: str) -> None:
    g = torch.Generator().manual_seed(3)
    m = 640
    if law == "exponential":
        r = -torch.log(torch.rand(m, generator=g, dtype=torch.float64))
    else:
        r = 3.0 * torch.rand(m, generator=g, dtype=torch.float64)
    theta, kept = fit_threshold(r, target)
    count = int((r > theta).sum())
    # the budget is met to one feature: no threshold does better on m distinct scores
    assert abs(count - target * m) <= 1.0, (count, target * m)
    assert kept[-1] == count / m
    # theta sits between the order statistics (numpy's sort) that bound the kept set
    order = np.sort(r.numpy())[::-1]
    assert order[count] <= theta < order[count - 1]
    # the loss went down from the start (theta = 1)
    assert abs(kept[-1] - target) <= abs(kept[0] - target)


def test_gate_is_binary_forward_and_has_the_sigmoid_gradient() -> None:
    r = torch.tensor([0.5, 0.9, 1.0, 1.05, 2.0], dtype=torch.float64)
    theta = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    mask = threshold_gate(r, theta, 0.1)
    assert mask.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    loss = budget_loss(mask, 0.2)
    (grad,) = torch.autograd.grad(loss, theta)
    sig = torch.sigmoid((r - 1.0) / 0.1)
    # d|mean(m) - 0.2|/dθ = sign(0.4 - 0.2) · mean(-σ'(.)/τ)
    expected = float((-(sig * (1 - sig)) / 0.1).mean())
    assert grad.item() == pytest.approx(expected, rel=1e-12) and grad.item() < 0


def test_equal_head_norms_give_the_head_mean_of_mean_query_attention() -> None:
    g = torch.Generator().manual_seed(7)
    attn = torch.softmax(torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64), dim=-1)
    direction = torch.randn(3, 4, 6, 5, generator=g, dtype=torch.float64)
    scale = torch.rand(3, 1, 6, 1, generator=g, dtype=torch.float64) + 0.5  # same for all heads
    head_out = direction / direction.norm(dim=-1, keepdim=True) * scale
    s = head_weighted_attention(attn, head_out)
    np.testing.assert_allclose(s.numpy(), attn.numpy().mean(axis=2).mean(axis=1), rtol=1e-12)
    # unequal norms: brute force over heads and tokens
    head_out = torch.randn(3, 4, 6, 5, generator=g, dtype=torch.float64)
    a, o = attn.numpy(), head_out.numpy()
    want = np.zeros((3, 6))
    for b in range(3):
        for j in range(6):
            norms = [np.linalg.norm(o[b, h, j]) for h in range(4)]
            for h in range(4):
                want[b, j] += norms[h] / sum(norms) * a[b, h, :, j].mean()
    np.testing.assert_allclose(head_weighted_attention(attn, head_out).numpy(), want, rtol=1e-12)


def test_head_outputs_match_the_attention_module_itself() -> None:
    model, x = tiny_vit(), images(3)
    captured = []
    hooks = [
        blk.attn.out.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        for blk in model.enc_blocks
    ]
    try:
        with torch.no_grad():
            tokens, weights = model.encoder_trace(x)
    finally:
        for hook in hooks:
            hook.remove()
    outs = head_outputs(model, tokens, weights)
    for got, concat in zip(outs, captured, strict=True):  # concat_heads(A v) fed to W_o
        b, n, d = concat.shape
        torch.testing.assert_close(got, concat.reshape(b, n, 2, d // 2).permute(0, 2, 1, 3))


def test_fit_scores_threshold_and_adaptive_keep_on_the_vit() -> None:
    model, x = tiny_vit(), images(10)
    est = AdaptiveSparseViTImportance(target=0.25, batch_size=4).fit(model, x)
    scores = est.token_scores(model, x)
    np.testing.assert_allclose(est.raw_importances_, scores.mean(dim=0).numpy(), rtol=1e-12)
    assert abs(est.kept_fraction_ * 160 - 40) <= 1
    keep = est.adaptive_keep(model, x)
    assert keep.dtype == torch.bool and keep.shape == (10, 16)
    assert keep.float().mean().item() == est.kept_fraction_
    np.testing.assert_array_equal(keep.numpy(), (16 * scores > est.threshold_).numpy())
    # "all" averages the blocks' scores
    both = AdaptiveSparseViTImportance(layers="all").token_scores(model, x)
    first = AdaptiveSparseViTImportance(layers=1).token_scores(model, x)
    np.testing.assert_allclose(both.numpy(), (first + scores).numpy() / 2, rtol=1e-12)


def test_reduce_drops_all_but_the_top_keep() -> None:
    model, x = tiny_vit(), images(5)
    est = AdaptiveSparseViTImportance()
    z = model.encode(x).detach()
    scores = est.token_scores(model, x)
    for keep in (1, 6, 16):
        red = est.reduce(model, x, keep)
        assert red.kept_per_image.tolist() == [keep] * 5
        for b in range(5):
            kept = np.flatnonzero(red.keep[b].numpy())
            want = np.argsort(-scores[b].numpy(), kind="stable")[:keep]
            assert set(kept) == set(want)
        torch.testing.assert_close(red.features, z * red.keep.unsqueeze(-1))


def test_family_contract() -> None:
    model, x = tiny_vit(), images(7)
    w = estimate(model, x, "adaptive-sparse-vit")
    assert w.shape == (16,) and w.dtype == np.float64
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
    np.testing.assert_array_equal(w, estimate(model, x, "adaptive-sparse-vit"))
    np.testing.assert_allclose(estimate(model, x, "adaptive-sparse-vit", batch_size=2), w, 1e-6)
    a = make_estimator("adaptive-sparse-vit", steps=50).fit(model, x)
    b = make_estimator("adaptive-sparse-vit", steps=50).fit(model, x)
    assert a.threshold_ == b.threshold_ and a.budget_history_ == b.budget_history_


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"target": 0.0}, "target"),
        ({"target": 1.0}, "target"),
        ({"target": "half"}, "target"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"steps": 0}, "steps"),
        ({"lr": 0}, "lr"),
        ({"layers": "middle"}, "layers"),
    ],
)
def test_bad_options_fail_with_the_field_named(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_estimator("adaptive-sparse-vit", **options)


def test_bad_model_and_unfitted_threshold_fail_clearly() -> None:
    torch.manual_seed(0)
    mlp = build_model("mlp", 4)
    with pytest.raises(ConfigError, match=r"model: 'mlp'.*attention"):
        AdaptiveSparseViTImportance().fit(mlp, torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="fit"):
        AdaptiveSparseViTImportance().adaptive_keep(tiny_vit(), images(2))
