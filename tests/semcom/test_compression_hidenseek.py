"""HideNseek: SynFlow saliency against a NumPy closed form, the synaptic-flow conservation law,
exact iterative pruning, a sign supermask that keeps |w|, and the family contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, HideNseek
from semcom.compression.budget import lowest, prune_count
from semcom.compression.hidenseek import hard_sign
from semcom.compression.prunable import prunable_weights
from semcom.compression.synflow import synflow_prune, synflow_scores
from tests.semcom.compression_helpers import check_exact_weight_pruning, tiny_codec

pytestmark = pytest.mark.usefixtures("one_thread_module")


def numpy_synflow(model: torch.nn.Module) -> tuple[dict[str, np.ndarray], float]:
    """Closed form for the mlp encoder (Linear, PReLU, Linear, PReLU, Linear) with |θ| and the
    all-ones input: every PReLU sees positive inputs, so the net is affine."""
    a = {n: np.abs(p.detach().numpy().astype(np.float64)) for n, p in model.named_parameters()}
    w1, b1 = a["encoder.1.weight"], a["encoder.1.bias"]
    w2, b2 = a["encoder.3.weight"], a["encoder.3.bias"]
    w3, b3 = a["encoder.5.weight"], a["encoder.5.bias"]
    x = np.ones(w1.shape[1])
    h1 = w1 @ x + b1
    h2 = w2 @ h1 + b2
    r = float(np.sum(w3 @ h2 + b3))
    g3 = np.ones(w3.shape[0])  # ∂R/∂(layer-3 output)
    g2 = w3.T @ g3
    g1 = w2.T @ g2
    grads = {
        "encoder.5.weight": np.outer(g3, h2), "encoder.5.bias": g3,
        "encoder.3.weight": np.outer(g2, h1), "encoder.3.bias": g2,
        "encoder.1.weight": np.outer(g1, x), "encoder.1.bias": g1,
    }  # fmt: skip
    return {n: a[n] * g for n, g in grads.items()}, r


def test_synflow_scores_equal_the_closed_form() -> None:
    model = tiny_codec()
    scores, r = synflow_scores(model)
    reference, r_ref = numpy_synflow(model)
    assert r == pytest.approx(r_ref, rel=1e-12)
    for name, expected in reference.items():
        np.testing.assert_allclose(scores[name].numpy(), expected, rtol=1e-10)
    # a central difference of R in one weight (float64) agrees with the gradient
    model = model.double()
    probe = model.encoder[3].weight
    with torch.no_grad():
        i, j, h = 2, 5, 1e-4
        old = float(probe[i, j])
        probe[i, j] = abs(old) + h
        plus = synflow_scores(model)[1]
        probe[i, j] = abs(old) - h
        minus = synflow_scores(model)[1]
        probe[i, j] = old
    assert (plus - minus) / (2 * h) * abs(old) == pytest.approx(
        float(scores["encoder.3.weight"][i, j]), rel=1e-8
    )


@pytest.mark.parametrize(("name", "zero_bias"), [("mlp", True), ("mlp", False), ("cnn", False)])
def test_synaptic_flow_is_conserved_layer_by_layer(name: str, zero_bias: bool) -> None:
    model = tiny_codec(name, **({"norm": "none"} if name == "cnn" else {}))
    if zero_bias:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.startswith("encoder") and n.endswith("bias"):
                    p.zero_()
    scores, r = synflow_scores(model)
    layers = [n.removesuffix(".weight") for n, _ in prunable_weights(model)]
    total = [float(scores[f"{n}.weight"].sum()) for n in layers]
    bias = [float(scores[f"{n}.bias"].sum()) for n in layers]
    for k in range(len(layers) - 1):  # incoming (weights + bias) = outgoing
        assert total[k] + bias[k] == pytest.approx(total[k + 1], rel=1e-9)
    assert total[-1] + bias[-1] == pytest.approx(r, rel=1e-9)
    if zero_bias:
        assert total == pytest.approx([r] * len(layers), rel=1e-9)


def test_one_round_is_top_k_of_the_scores_and_rounds_hit_the_target() -> None:
    model = tiny_codec("cnn")
    weights = prunable_weights(model)
    total = sum(w.numel() for _, w in weights)
    count = prune_count(0.6, total)
    masks = synflow_prune(model, count, 1)
    scores, _ = synflow_scores(model)
    flat = torch.cat([scores[n].reshape(-1) for n, _ in weights])
    expected = torch.ones(total, dtype=torch.bool)
    expected[lowest(flat, count)] = False
    assert torch.equal(torch.cat([masks[n].reshape(-1) for n, _ in weights]), expected)
    for rounds in (3, 20):
        masks = synflow_prune(model, count, rounds)
        assert sum(int((~m).sum()) for m in masks.values()) == count


def test_iterative_synflow_keeps_every_layer_at_high_sparsity() -> None:
    model = tiny_codec("mlp")
    total = sum(w.numel() for _, w in prunable_weights(model))
    masks = synflow_prune(model, prune_count(0.995, total), 50)
    assert all(int(m.sum()) > 0 for m in masks.values())  # no layer collapse


def test_hard_sign_is_plus_or_minus_one_with_a_straight_through_gradient() -> None:
    s = torch.tensor([-0.3, 0.0, 2.0], requires_grad=True)
    out = hard_sign(s)
    assert out.tolist() == [-1.0, 1.0, 1.0]
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert s.grad.tolist() == [1.0, 2.0, 3.0]


def test_sign_supermask_keeps_magnitudes_and_never_raises_the_loss() -> None:
    model = tiny_codec("mlp")
    x = torch.rand(16, *model.input_shape, generator=torch.Generator().manual_seed(0))
    before = {n: w.detach().clone() for n, w in prunable_weights(model)}
    result = HideNseek(sparsity=0.7, iterations=10, steps=40, lr=0.02).compress(model, x)
    kept = 0
    for name, w in prunable_weights(result.model):
        alive = w != 0
        kept += int(alive.sum())
        torch.testing.assert_close(w.abs(), before[name].abs() * alive, rtol=0, atol=0)
    assert result.details["sign_bits"] == kept
    assert result.details["flipped"] > 0
    assert result.details["loss"] <= result.details["loss_trained_signs"]
    with torch.no_grad():
        measured = float(torch.mean((result.model(x) - x) ** 2))
    assert measured == pytest.approx(result.details["loss"], rel=1e-5)


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit"])
def test_exact_target_working_codec_and_untouched_input(name: str) -> None:
    model = tiny_codec(name)
    before = [p.clone() for p in model.parameters()]
    x = torch.rand(4, *model.input_shape)
    result = HideNseek(sparsity=0.8, iterations=5, steps=3).compress(model, x)
    check_exact_weight_pruning(model, before, result.model, x, 0.8)


def test_data_free_pruning_needs_no_images_and_is_deterministic() -> None:
    model = tiny_codec("cnn")
    a = HideNseek(sparsity=0.5, iterations=4, steps=0).compress(model)
    b = HideNseek(sparsity=0.5, iterations=4, steps=0).compress(model)
    pairs = zip(a.model.parameters(), b.model.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)
    assert "flipped" not in a.details


def test_registered_with_its_paper() -> None:
    assert COMPRESSION.info("hidenseek").paper == "arXiv:2206.04385"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.0}, "sparsity"), ({"iterations": 0}, "iterations"), ({"steps": -1}, "steps"),
     ({"lr": -0.1}, "lr"), ({"lr": "fast"}, "lr"), ({"iterations": True}, "iterations")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        HideNseek(**options)


def test_missing_images_are_refused_when_signs_are_trained() -> None:
    with pytest.raises(ConfigError, match="^images: None is invalid; allowed: calibration"):
        HideNseek(steps=5).compress(tiny_codec())
