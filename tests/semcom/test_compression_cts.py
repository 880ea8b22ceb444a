"""CTS: Binary Concrete against its closed-form law, GradBalance, the reverse KL against torch's,
masks converging to the target density, the exact final mask and the family contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, CTSPruning
from semcom.compression.budget import prune_count
from semcom.compression.concrete import binary_concrete, gradbalance, reverse_kl_bernoulli
from semcom.compression.cts import concrete_ticket_search
from semcom.compression.prunable import prunable_weights, zero_count
from tests.semcom.compression_helpers import check_exact_weight_pruning, tiny_codec

pytestmark = pytest.mark.usefixtures("one_thread_module")


def images(model: torch.nn.Module, n: int = 8) -> torch.Tensor:
    return torch.rand(n, *model.input_shape, generator=torch.Generator().manual_seed(5))


# -- Binary Concrete ------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [2.0, 2 / 3, 0.1])
def test_binary_concrete_follows_its_closed_form_law(temperature: float) -> None:
    """``P(m ≤ y) = σ(τ·logit(y) − s)`` (logistic noise), so ``P(m > 1/2) = σ(s)`` for any τ."""
    n, s = 40_000, 0.8
    m = binary_concrete(torch.full((n,), s, dtype=torch.float64), temperature,
                        torch.Generator().manual_seed(1)).numpy()  # fmt: skip
    for y in (0.1, 0.5, 0.9):
        cdf = 1 / (1 + math.exp(-(temperature * math.log(y / (1 - y)) - s)))
        sd = math.sqrt(cdf * (1 - cdf) / n)
        assert abs(np.mean(m <= y) - cdf) < 5 * sd


def test_binary_concrete_becomes_bernoulli_as_the_temperature_vanishes() -> None:
    n = 40_000
    for p in (0.1, 0.5, 0.85):
        logits = torch.full((n,), math.log(p / (1 - p)), dtype=torch.float64)
        m = binary_concrete(logits, 1e-4, torch.Generator().manual_seed(2)).numpy()
        # P(0.01 < m < 0.99) = σ(τ·4.6 − s) − σ(−τ·4.6 − s) <= 2.3e-4 at τ = 1e-4
        assert np.mean((m > 0.01) & (m < 0.99)) < 1e-3
        assert abs(m.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_gradbalance_matches_the_constraint_push_to_the_task_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    task, dens = torch.randn(50, generator=g), torch.rand(50, generator=g)
    above = gradbalance(task, dens, 0.1) - task
    below = gradbalance(task, dens, -0.1) - task
    assert torch.linalg.vector_norm(above) == pytest.approx(float(torch.linalg.vector_norm(task)))
    assert torch.allclose(above, -below)
    assert float(above @ dens) > 0  # descending along it lowers the density when above target
    assert torch.equal(gradbalance(task, dens, 0.0), task)
    unit = gradbalance(torch.zeros(50), dens, 0.3)
    assert float(torch.linalg.vector_norm(unit)) == pytest.approx(1.0)


def test_reverse_kl_equals_torch_bernoulli_kl_and_vanishes_for_the_dense_mask() -> None:
    g = torch.Generator().manual_seed(3)
    p, q = torch.rand(200, generator=g, dtype=torch.float64), torch.rand(200, generator=g)
    q = q.to(torch.float64)
    ours = reverse_kl_bernoulli(p, q)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Bernoulli(probs=p), torch.distributions.Bernoulli(probs=q)
    ).mean()
    assert float(ours) == pytest.approx(float(reference), rel=1e-9)
    model = tiny_codec()
    x = images(model)
    with torch.no_grad():
        ones = {n: w * torch.ones_like(w) for n, w in prunable_weights(model)}
        p_all = torch.func.functional_call(model, ones, (x,))
        assert float(reverse_kl_bernoulli(p_all, model(x))) == 0.0


# -- the search -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "init"), [(0.3, 0.9), (0.7, 0.2)])
def test_concrete_masks_converge_to_the_target_density(target: float, init: float) -> None:
    model = tiny_codec()
    _, trace = concrete_ticket_search(model, images(model), target, steps=120, init_keep=init)
    assert trace[0] == pytest.approx(init, abs=1e-6)
    tail = np.array(trace[-30:])
    assert np.all(np.abs(tail - target) < 0.03)
    assert abs(trace[-1] - target) < 0.02


def test_final_mask_keeps_exactly_the_top_logits() -> None:
    model = tiny_codec("cnn")
    x = images(model)
    result = CTSPruning(sparsity=0.7, steps=15, seed=4).compress(model, x)
    weights = prunable_weights(model)
    total = sum(w.numel() for _, w in weights)
    count = prune_count(0.7, total)
    logits, _ = concrete_ticket_search(model, x, 1 - count / total, steps=15, seed=4)
    assert zero_count(result.model) == (count, total)
    kept = torch.cat([w.reshape(-1) != 0 for _, w in prunable_weights(result.model)])
    flat = torch.cat([logits[n].reshape(-1) for n, _ in weights])
    assert float(flat[kept].min()) >= float(flat[~kept].max())


def test_cts_kl_beats_a_random_mask_of_the_same_size() -> None:
    model = tiny_codec()
    x = images(model, 16)
    result = CTSPruning(sparsity=0.8, steps=100).compress(model, x)
    with torch.no_grad():
        dense = model(x)
        cts = float(reverse_kl_bernoulli(result.model(x), dense))
        weights = prunable_weights(model)
        total = sum(w.numel() for _, w in weights)
        keep = torch.randperm(total, generator=torch.Generator().manual_seed(0)) >= prune_count(
            0.8, total
        )
        params, at = {}, 0
        for name, w in weights:
            params[name] = w * keep[at : at + w.numel()].reshape(w.shape)
            at += w.numel()
        random = float(reverse_kl_bernoulli(torch.func.functional_call(model, params, (x,)), dense))
    assert cts < 0.5 * random


# -- the contract ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit"])
def test_exact_target_working_codec_and_untouched_input(name: str) -> None:
    model = tiny_codec(name)
    before = [p.clone() for p in model.parameters()]
    x = images(model, 4)
    result = CTSPruning(sparsity=0.45, objective="mse", steps=5).compress(model, x)
    check_exact_weight_pruning(model, before, result.model, x, 0.45)


def test_decoder_is_not_touched_and_runs_are_deterministic() -> None:
    model = tiny_codec("cnn")
    x = images(model, 4)
    a = CTSPruning(sparsity=0.5, steps=10, seed=1).compress(model, x)
    b = CTSPruning(sparsity=0.5, steps=10, seed=1).compress(model, x)
    c = CTSPruning(sparsity=0.5, steps=10, seed=2).compress(model, x)
    assert torch.equal(a.model.decoder[0].weight, model.decoder[0].weight)
    wa, wb, wc = (
        torch.cat([w.reshape(-1) for _, w in prunable_weights(r.model)]) for r in (a, b, c)
    )
    assert torch.equal(wa, wb)
    assert not torch.equal(wa != 0, wc != 0)


def test_registered_with_its_paper() -> None:
    assert COMPRESSION.info("cts").paper == "arXiv:2512.07142"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.0}, "sparsity"), ({"objective": "ce"}, "objective"), ({"steps": 0}, "steps"),
     ({"lr": 0.0}, "lr"), ({"temperature": 0.0}, "temperature"), ({"init_keep": 1.0}, "init_keep"),
     ({"seed": -1}, "seed"), ({"steps": 2.5}, "steps")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        CTSPruning(**options)


def test_missing_images_are_refused() -> None:
    with pytest.raises(ConfigError, match="^images: None is invalid; allowed: calibration"):
        CTSPruning().compress(tiny_codec())
