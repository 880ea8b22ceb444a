"""AMP: Taylor scores against finite differences, the width search against a linear scan, and
the compression family contract."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.compression import AMP, COMPRESSION, measure_encoder
from semcom.compression.amp import binary_search_width, entropy_objective
from semcom.compression.hidden_units import remove_units, unit_groups
from tests.semcom.compression_helpers import (
    check_untouched_and_deterministic,
    codec_round_trip,
    compress_small,
    digits,
    removed_units,
    small_models,
    trained_mlp,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_registered_with_its_paper() -> None:
    assert COMPRESSION.get("amp") is AMP
    assert COMPRESSION.info("amp").paper == "arXiv:2603.08100"


def test_binary_search_equals_a_linear_scan_on_monotone_curves() -> None:
    """For a loss that rises as the width falls, the binary search returns the smallest width
    within tolerance, the one a linear scan over every width finds."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        size = int(rng.integers(1, 300))
        # Loss by width 1..size: non-increasing in w (more units, lower loss), with plateaus.
        steps = rng.exponential(1.0, size) * (rng.random(size) < 0.7)
        loss = np.cumsum(steps[::-1])[::-1]
        base, tol = loss[-1], float(rng.exponential(loss[0] - loss[-1] + 1e-9) * rng.random())
        calls: list[int] = []

        def feasible(w: int, loss=loss, base=base, tol=tol, calls=calls) -> bool:
            calls.append(w)
            return loss[w - 1] - base <= tol

        scan = next(w for w in range(1, size + 1) if loss[w - 1] - base <= tol)
        assert binary_search_width(feasible, size) == scan
        assert len(calls) <= math.ceil(math.log2(size)) if size > 1 else not calls


def test_taylor_scores_equal_finite_differences() -> None:
    """``s_k = mean_b |dℓ_b/dε|`` where the consumer's input column ``k`` is scaled by
    ``1 + ε``; central differences in float64 on a trained codec, per image."""
    model = trained_mlp(dtype=torch.float64)
    x = digits()[:12].to(torch.float64)
    scores = AMP(batch_size=5).taylor_scores(model, x)
    eps = 1e-6
    for group, got in zip(unit_groups(model), scores, strict=True):
        expected = np.zeros(group.size)
        for k in range(group.size):
            per_image = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    group.consumer.weight[:, k] *= 1.0 + sign * eps
                    err = (model.decode(model.encode(x)) - x) ** 2
                    group.consumer.weight[:, k] /= 1.0 + sign * eps
                per_image.append(err.flatten(1).mean(dim=1).numpy())
            expected[k] = np.mean(np.abs((per_image[0] - per_image[1]) / (2 * eps)))
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-12)


def test_a_dead_unit_scores_zero() -> None:
    """A unit whose activation is always 0 (zero incoming row and bias) has Taylor score 0."""
    model = trained_mlp()
    group = unit_groups(model)[0]
    with torch.no_grad():
        group.producer.weight[5] = 0.0
        group.producer.bias[5] = 0.0
    for objective in ("mse", "entropy"):
        scores = AMP(objective=objective).taylor_scores(model, digits()[:64])
        assert scores[0][5] == 0.0
        assert (scores[0] > 0).sum() >= group.size - 2


def test_entropy_objective_matches_numpy() -> None:
    z = torch.randn(6, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = z.reshape(6, -1).numpy()
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    logits = 7.0 * u @ u.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = float(np.mean(-(p * np.log(p)).sum(axis=1)))
    assert float(entropy_objective(z, 7.0)) == pytest.approx(expected, rel=1e-12)


def test_adaptive_widths_stop_at_the_tolerance() -> None:
    """Adaptive mode, checked by removing units from copies (no gating hooks): each layer's
    width is within the tolerance of the previous layer's accepted loss, one unit fewer is not
    (processing the layers last to first, as the paper does)."""
    model = trained_mlp()
    x = digits()[:256]
    amp = AMP(sparsity=None, tolerance=0.05)
    result = amp.compress(model, x)
    scores = amp.taylor_scores(model, x)
    groups = unit_groups(model)
    widths = [result.details["widths"][g.name] for g in groups]
    assert 0 < result.details["removed_units"] < sum(g.size for g in groups)

    def ln_mse(current: list[int]) -> float:
        work = copy.deepcopy(model)
        for g, s, w in zip(unit_groups(work), scores, current, strict=True):
            keep = torch.zeros(g.size, dtype=torch.bool)
            keep[torch.sort(-s, stable=True).indices[:w]] = True
            remove_units(g, keep)
        with torch.no_grad():
            return math.log(float(torch.mean((work.decode(work.encode(x)) - x) ** 2)))

    current = [g.size for g in groups]
    accepted = ln_mse(current)
    for layer in reversed(range(len(groups))):
        current[layer] = widths[layer]
        assert ln_mse(current) - accepted <= 0.05 + 1e-9
        if widths[layer] > 1:
            fewer = list(current)
            fewer[layer] -= 1
            assert ln_mse(fewer) - accepted > 0.05 - 1e-9
        accepted = ln_mse(current)
    assert result.details["loss_after"] == pytest.approx(accepted, abs=1e-6)


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9])
def test_budget_is_hit_exactly(sparsity: float) -> None:
    model = trained_mlp()
    result = AMP(sparsity=sparsity).compress(model, digits()[:128])
    target = round(sparsity * 48)
    assert result.details["removed_units"] == target
    assert removed_units(result.model) == target
    assert all(w >= 1 for w in result.details["widths"].values())
    # Encoder Linear 64->32->16->32; r0, r1 units removed from the two hidden layers zero
    # their rows and biases and the next layer's columns (r0·r1 entries are both).
    dense = measure_encoder(model, model.input_shape)
    r0, r1 = (
        32 - result.details["widths"]["encoder.1"],
        16 - result.details["widths"]["encoder.3"],
    )
    zeroed = (64 + 1) * r0 + (32 + 1) * r1 + 16 * r0 - r0 * r1 + 32 * r1
    assert dense.nonzero_params - result.size.nonzero_params == zeroed


def test_more_sparsity_costs_more_loss_and_beats_random_units() -> None:
    model = trained_mlp()
    x = digits()[:256]
    losses = [AMP(sparsity=s).compress(model, x).details["loss_after"] for s in (0.2, 0.5, 0.8)]
    assert losses[0] < losses[1] < losses[2]
    # Random units at the same per-layer widths as AMP's 50 % result.
    widths = AMP(sparsity=0.5).compress(model, x).details["widths"]
    rng = torch.Generator().manual_seed(0)
    worse = 0
    for _ in range(5):
        work = copy.deepcopy(model)
        for g in unit_groups(work):
            keep = torch.zeros(g.size, dtype=torch.bool)
            keep[torch.randperm(g.size, generator=rng)[: widths[g.name]]] = True
            remove_units(g, keep)
        with torch.no_grad():
            mse = float(torch.mean((work.decode(work.encode(x)) - x) ** 2))
        worse += math.log(mse) > losses[1]
    assert worse == 5


def test_input_unchanged_and_deterministic() -> None:
    method = AMP(sparsity=0.4, objective="entropy", batch_size=50)
    check_untouched_and_deterministic(method, trained_mlp(), digits()[:128])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_compressed_codec_keeps_its_shapes(index: int) -> None:
    model, result = compress_small(AMP(sparsity=0.3), index)
    total = sum(g.size for g in unit_groups(model))
    assert removed_units(result.model) == result.details["removed_units"] == round(0.3 * total)
    assert codec_round_trip(result.model) == codec_round_trip(model)
    assert result.size.params == measure_encoder(model, model.input_shape).params


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.0}, "sparsity"), ({"sparsity": -0.1}, "sparsity"),
     ({"sparsity": "half"}, "sparsity"), ({"sparsity": True}, "sparsity"),
     ({"tolerance": 0.0}, "tolerance"), ({"tolerance": float("nan")}, "tolerance"),
     ({"objective": "ce"}, "objective"), ({"temperature": -1}, "temperature"),
     ({"search_steps": 0}, "search_steps"), ({"batch_size": 0}, "batch_size"),
     ({"objective": "entropy", "batch_size": 1}, "batch_size"), ({"signed": 1}, "signed")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        AMP(**options)


def test_unmeetable_budget_and_missing_images_are_refused() -> None:
    model = small_models()[0]  # 16 + 8 hidden units; each layer keeps one: at most 22 removed
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"^sparsity: 0\.99 .*0\.9167"):
        AMP(sparsity=0.99).compress(model, x)
    with pytest.raises(ConfigError, match="^images:"):
        AMP().compress(model, None)
    with pytest.raises(ConfigError, match="^images:"):
        AMP().compress(model, torch.rand(4, 3, 8, 8))
