"""Pruning as a game: the method's properties (a unit with no outgoing weights leaves on the
closed-form path; a duplicate pair is resolved by competition), a brute-force Nash check of the
equilibrium, and the compression family contract."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, PruningGame, measure_encoder
from semcom.compression.budget import mean_loss, reconstruction_loss
from semcom.compression.hidden_units import gated, unit_groups
from semcom.compression.pruning_game import redundancy
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

FROZEN = {"sparsity": None, "finetune_lr": 0.0, "batch_size": 256}  # full batch: deterministic play


def test_registered_with_its_paper() -> None:
    assert COMPRESSION.get("pruning-game") is PruningGame
    assert COMPRESSION.info("pruning-game").paper == "arXiv:2512.22106"


def test_redundancy_is_abs_cosine_of_incoming_rows() -> None:
    group = unit_groups(small_models()[1])[0]  # a Conv2d: rows are flattened filters
    w = group.producer.weight.detach().reshape(group.size, -1).double().numpy()
    u = w / np.linalg.norm(w, axis=1, keepdims=True)
    expected = np.abs(u @ u.T)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(redundancy(group).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("steps", [10, 60, 100, 140])
def test_unit_without_outgoing_weights_leaves_on_the_closed_form_path(steps: int) -> None:
    """Its loss gradient is exactly 0, so with γ = 0 the utility gradient is −λ and
    ``s(t) = max(0, 1 − t·η·λ)``: 0 from t = 1/(ηλ) = 100 on."""
    model = trained_mlp()
    group = unit_groups(model)[0]
    with torch.no_grad():
        group.consumer.weight[:, 3] = 0.0
    game = PruningGame(**FROZEN, cost=0.02, competition=0.0, lr=0.5, steps=steps)
    s, du, _ = game.play(model, digits()[:64])
    assert float(s[0][3]) == pytest.approx(max(0.0, 1.0 - steps * 0.01), abs=1e-12)
    assert float(du[0][3]) == pytest.approx(-0.02, abs=1e-15)
    if steps < 100:
        assert (s[0] > 0).sum() > group.size // 2  # the others have not all left


def test_unit_without_outgoing_weights_leaves_under_competition_too() -> None:
    model = trained_mlp()
    with torch.no_grad():
        unit_groups(model)[1].consumer.weight[:, 7] = 0.0
    s, _, _ = PruningGame(**FROZEN, cost=0.02, competition=0.5, steps=60, lr=1.0).play(
        model, digits()[:64]
    )
    assert float(s[1][7]) == 0.0


def _duplicated() -> tuple[torch.nn.Module, int, int]:
    """A trained codec where unit j of layer 0 duplicates the most important unit i: the same
    incoming weights and bias, and i's outgoing column split 0.6 / 0.4 between them."""
    from semcom.compression import AMP

    model = trained_mlp()
    scores = AMP().taylor_scores(model, digits()[:128])[0]
    i, j = (int(k) for k in torch.argsort(scores, descending=True)[:2])
    group = unit_groups(model)[0]
    with torch.no_grad():
        group.producer.weight[j] = group.producer.weight[i]
        group.producer.bias[j] = group.producer.bias[i]
        column = group.consumer.weight[:, i].clone()
        group.consumer.weight[:, i] = 0.6 * column
        group.consumer.weight[:, j] = 0.4 * column
    return model, i, j


def test_an_exact_duplicate_is_resolved_by_competition() -> None:
    """With γ > 0 the weaker copy drops to s = 0 and the stronger one stays; without
    competition both keep participating."""
    model, i, j = _duplicated()
    x = digits()[:128]
    s, _, _ = PruningGame(**FROZEN, cost=1e-3, competition=0.5, steps=300).play(model, x)
    assert float(s[0][j]) == 0.0 and float(s[0][i]) > 0.5
    s, _, _ = PruningGame(**FROZEN, cost=1e-3, competition=0.0, steps=300).play(model, x)
    assert float(s[0][j]) > 0.5 and float(s[0][i]) > 0.5


def test_the_end_state_is_a_local_nash_equilibrium() -> None:
    """No player gains more than 1e-6 by a unilateral change of its participation within ±0.05
    (21 levels, clipped to [0, 1]), the utility evaluated by forward passes only (frozen
    weights). Projected gradient play reaches a first-order (local) equilibrium; a global best
    response is guaranteed only where ``U_i`` is concave in ``s_i``, which the codec's loss
    need not be."""
    model = trained_mlp(hidden=(6, 4), steps=400)
    x = digits()[:128]
    cost, competition = 0.02, 0.05
    game = PruningGame(**FROZEN, cost=cost, competition=competition, steps=1500, lr=0.1)
    base = mean_loss(model, x, 256)
    s, du, _ = game.play(model, x)
    for si, di in zip(s, du, strict=True):  # first-order (KKT) conditions of each player
        assert bool((di[si == 0] <= 0).all() and (di[si == 1] >= 0).all())
        interior = di[(si > 0) & (si < 1)]
        assert interior.numel() == 0 or float(interior.abs().max()) < 1e-3
    groups = unit_groups(model)
    rivals = [redundancy(g) for g in groups]
    assert any(float(si.min()) == 0.0 for si in s)  # someone left
    assert any(0.0 < float(v) < 1.0 for si in s for v in si)  # someone is interior

    def utility(layer: int, k: int, value: float) -> float:
        trial = [si.clone() for si in s]
        trial[layer][k] = value
        with torch.no_grad(), gated({g: t.float() for g, t in zip(groups, trial, strict=True)}):
            loss = float(reconstruction_loss(model, x)) / base
        mean_rival = float(rivals[layer][k] @ trial[layer]) / (trial[layer].numel() - 1)
        return -loss - cost * value - competition * value * mean_rival

    for layer, si in enumerate(s):
        for k in range(si.numel()):
            now = utility(layer, k, float(si[k]))
            grid = np.clip(float(si[k]) + np.linspace(-0.05, 0.05, 21), 0.0, 1.0)
            best = max(utility(layer, k, float(v)) for v in grid)
            assert best - now <= 1e-6, (layer, k, float(si[k]))


def test_compressed_codec_computes_the_equilibrium_network() -> None:
    """Folding: the compressed codec equals the played codec with the final participations as
    gates (removed units at 0)."""
    model = trained_mlp()
    x = digits()[:100]
    game = PruningGame(sparsity=0.5, steps=40, batch_size=64)
    result = game.compress(model, x)
    played = copy.deepcopy(model)
    for p in played.parameters():
        p.requires_grad_(False)
    for p in played.encoder.parameters():
        p.requires_grad_(True)
    s, _, _ = game.play(played, x, target=round(0.5 * 48))
    groups = unit_groups(played)
    gates = {}
    for g, si, name in zip(groups, s, result.details["widths"], strict=True):
        dead = (result.model.get_submodule(name).weight == 0).all(dim=1)
        gates[g] = torch.where(dead, torch.zeros_like(si), si).float()
    with torch.no_grad(), gated(gates):
        expected = played.encode(x)
        got = result.model.encode(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.75])
def test_budget_is_hit_exactly(sparsity: float) -> None:
    model = trained_mlp()
    result = PruningGame(sparsity=sparsity, steps=60).compress(model, digits()[:128])
    target = round(sparsity * 48)
    assert result.details["removed_units"] == removed_units(result.model) == target
    assert all(w >= 1 for w in result.details["widths"].values())
    dense = measure_encoder(model, model.input_shape).nonzero_params
    assert result.size.nonzero_params < dense if target else result.size.nonzero_params <= dense


def test_adaptive_mode_removes_the_units_that_left() -> None:
    model = trained_mlp()
    result = PruningGame(sparsity=None, cost=0.05, steps=300).compress(model, digits()[:128])
    s = result.details["participation"]
    out = sum(int(np.sum(np.asarray(v) <= 1e-3)) for v in s.values())
    assert 0 < result.details["removed_units"] == removed_units(result.model) == out


def test_input_unchanged_and_deterministic() -> None:
    model = trained_mlp()
    method = PruningGame(sparsity=0.3, steps=30, batch_size=50, seed=3)
    check_untouched_and_deterministic(method, model, digits()[:150])
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_compressed_codec_keeps_its_shapes(index: int) -> None:
    model, result = compress_small(PruningGame(sparsity=0.3, steps=10), index)
    total = sum(g.size for g in unit_groups(model))
    assert removed_units(result.model) == result.details["removed_units"] == round(0.3 * total)
    assert codec_round_trip(result.model) == codec_round_trip(model)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.0}, "sparsity"), ({"cost": 0.0}, "cost"), ({"competition": -1}, "competition"),
     ({"steps": 0}, "steps"), ({"lr": 0}, "lr"), ({"finetune_lr": 2.0}, "finetune_lr"),
     ({"price_rate": -1.0}, "price_rate"), ({"threshold": 0.9}, "threshold"),
     ({"batch_size": 0}, "batch_size"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        PruningGame(**options)


def test_unmeetable_budget_and_missing_images_are_refused() -> None:
    model = small_models()[0]
    with pytest.raises(ConfigError, match=r"^sparsity: 0\.99 .*0\.9167"):
        PruningGame(sparsity=0.99).compress(model, torch.rand(4, 1, 8, 8))
    with pytest.raises(ConfigError, match="^images:"):
        PruningGame().compress(model)
