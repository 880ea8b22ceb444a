"""VFlowOpt: patch entropy against scipy, the importance map and the recycling stage against
brute-force loops (exact budget, cell-wise weighted sums kept), progressive stages, flow-guided
tuning, and the estimator family contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, VFlowOptImportance, make_estimator
from semcom.importance.base import per_image_mse
from semcom.importance.recycling import cell_index, prune_and_recycle, stage_budgets
from semcom.importance.vflowopt import patch_entropy, vflow_importance
from semcom.models.build import build_model
from tests.semcom.vit_helpers import images, tiny_vit

# --- property: patch entropy ------------------------------------------------------------------


def test_patch_entropy_limits_and_scipy_reference() -> None:
    constant = torch.full((1, 3, 16, 16), 0.3)
    levels = torch.randperm(256, generator=torch.Generator().manual_seed(0)).double() / 255
    every_level = levels.reshape(1, 1, 16, 16).expand(1, 3, 16, 16)  # each grey level once
    halves = torch.cat([torch.zeros(1, 3, 8, 16), torch.ones(1, 3, 8, 16)], dim=2)
    e = patch_entropy(torch.cat([constant, every_level.float(), halves]), 16)
    assert e.flatten().tolist() == pytest.approx([0.0, 8.0, 1.0], abs=1e-12)
    x = images(2)
    got = patch_entropy(x, 8).numpy()
    grey = np.round(255 * x.double().mean(dim=1).numpy()).astype(int)
    for b in range(2):
        for i in range(16):
            r, c = divmod(i, 4)
            _, counts = np.unique(grey[b, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8], return_counts=True)
            assert got[b, i] == pytest.approx(stats.entropy(counts, base=2), abs=1e-12)


# --- property: importance map -----------------------------------------------------------------


def brute_force_importance(a, entropy, alive, t, alpha):
    """Loops over one image: a [N, N] head-mean attention, alive a list of live tokens."""
    sub = {i: {j: a[i, j] for j in alive} for i in alive}
    for i in alive:
        total = sum(sub[i].values())
        sub[i] = {j: v / total for j, v in sub[i].items()}
    received = {j: sum(sub[i][j] for i in alive) / len(alive) for j in alive}
    mean = sum(received.values()) / len(alive)
    glob = [j for j in alive if received[j] > t * mean] or [max(alive, key=received.get)]
    soft = np.exp([entropy[j] for j in alive])
    soft = dict(zip(alive, soft / soft.sum(), strict=True))
    out = np.zeros(len(a))
    for j in alive:
        out[j] = sum(sub[g][j] for g in glob) / len(glob) + alpha * soft[j]
    return out


@pytest.mark.parametrize(("t", "alpha"), [(1.0, 0.5), (0.0, 0.0), (2.0, 3.0), (100.0, 1.0)])
def test_importance_map_equals_brute_force(t: float, alpha: float) -> None:
    rng = np.random.default_rng(int(10 * t) + 1)
    heads = rng.dirichlet(np.full(10, 0.4), size=(4, 3, 10))
    entropy = rng.uniform(0, 6, size=(4, 10))
    alive = np.zeros((4, 10), dtype=bool)
    for b, count in enumerate((10, 7, 5, 1)):
        alive[b, rng.choice(10, size=count, replace=False)] = True
    got = vflow_importance(
        torch.from_numpy(heads), torch.from_numpy(entropy), t, alpha, torch.from_numpy(alive)
    ).numpy()
    for b in range(4):
        live = [int(i) for i in np.flatnonzero(alive[b])]
        ref = brute_force_importance(heads[b].mean(axis=0), entropy[b], live, t, alpha)
        np.testing.assert_allclose(got[b], ref, atol=1e-13)
        assert got[b].sum() == pytest.approx(1.0 + alpha, abs=1e-12)  # both terms sum to 1


# --- property: recycling ----------------------------------------------------------------------


def suffix_cells(order, cells, p):
    return len({cells[i] for i in order[p:]})


@pytest.mark.parametrize("keep", [4, 5, 9, 12, 15])
def test_recycling_keeps_cell_weighted_sums_and_the_exact_budget(keep: int) -> None:
    rng = np.random.default_rng(keep)
    n, grid, cell = 16, (4, 4), 2
    cells = cell_index(n, grid, cell)
    z = torch.from_numpy(rng.normal(size=(3, n, 5)))
    s = torch.from_numpy(rng.random((3, n)))
    alive, sent, owner = prune_and_recycle(z, s, torch.ones(3, n, dtype=torch.bool), keep, cells)
    assert alive.sum(dim=1).tolist() == [keep] * 3
    for b in range(3):
        order = [int(i) for i in np.argsort(-s[b].numpy(), kind="stable")]
        # brute force: the largest p with p + (cells among the pruned) = keep
        p = max(q for q in range(keep + 1) if q + suffix_cells(order, cells, q) == keep)
        groups: dict[int, list[int]] = {}
        for i, o in enumerate(owner[b].tolist()):
            groups.setdefault(o, []).append(i)
        assert -1 not in groups  # nothing is lost: every token is carried by a kept one
        assert set(groups) == set(np.flatnonzero(alive[b].numpy()))
        for i in order[:p]:  # the top-p tokens stay as they are
            assert groups[i] == [i] and torch.equal(sent[b, i], z[b, i])
        pruned = order[p:]
        by_cell = {c: sorted(i for i in pruned if cells[i] == c) for c in set(cells)}
        recycled = sorted(sorted(g) for k, g in groups.items() if k in pruned)
        assert recycled == sorted(g for g in by_cell.values() if g)  # one token per cell
        for host in (k for k in groups if k in pruned):
            members = groups[host]
            assert host == max(members, key=lambda i: s[b, i])
            w = s[b, members]
            np.testing.assert_allclose(  # Σ S_i z_i is kept in each cell
                (w[:, None] * z[b, members]).sum(dim=0), w.sum() * sent[b, host], atol=1e-12
            )


def test_recycling_with_more_cells_than_budget_keeps_heaviest_groups() -> None:
    rng = np.random.default_rng(0)
    cells = cell_index(16, (4, 4), 2)  # 4 cells, budget 2
    s = torch.from_numpy(rng.random((1, 16)))
    z = torch.from_numpy(rng.normal(size=(1, 16, 3)))
    alive, _, owner = prune_and_recycle(z, s, torch.ones(1, 16, dtype=torch.bool), 2, cells)
    totals = {c: sum(float(s[0, i]) for i in range(16) if cells[i] == c) for c in range(4)}
    best = sorted(totals, key=lambda c: -totals[c])[:2]
    hosts = np.flatnonzero(alive[0].numpy())
    assert sorted(cells[h] for h in hosts) == sorted(best)
    assert sorted(i for i in range(16) if owner[0, i] >= 0) == [
        i for i in range(16) if cells[i] in best
    ]


def test_without_recycling_the_top_scores_are_kept() -> None:
    s = torch.tensor([[0.1, 0.9, 0.3, 0.7, 0.5, 0.2]])
    alive, sent, owner = prune_and_recycle(
        torch.ones(1, 6, 2), s, torch.ones(1, 6, dtype=torch.bool), 3, [0] * 6, recycle=False
    )
    assert alive[0].tolist() == [False, True, False, True, True, False]
    assert owner[0].tolist() == [-1, 1, -1, 3, 4, -1]


def test_stage_budgets_fall_geometrically_to_keep() -> None:
    assert stage_budgets(16, 8, 1) == [8]
    assert stage_budgets(16, 4, 2) == [8, 4]
    assert stage_budgets(16, 8, 2) == [11, 8]
    assert stage_budgets(64, 1, 3) == [16, 4, 1]


def test_single_stage_reduce_is_the_documented_pipeline() -> None:
    model, x = tiny_vit(), images(3)
    est = VFlowOptImportance(layers=[-1], t=1.5, alpha=0.7)
    red = est.reduce(model, x, 6)
    with torch.no_grad():
        tokens, weights = model.encoder_trace(x)
        z = model.encode(x)
    scores = vflow_importance(weights[-1], patch_entropy(x, 8), 1.5, 0.7)
    cells = cell_index(16, (4, 4), 2)
    alive, sent, _ = prune_and_recycle(z, scores, torch.ones(3, 16, dtype=torch.bool), 6, cells)
    assert torch.equal(red.keep, alive)
    assert torch.equal(red.features, sent * alive[:, :, None])


def test_progressive_stages_and_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = tiny_vit(), images(3)
    two = VFlowOptImportance().reduce(model, x, 5)  # stages at blocks 0 then 1: 16 -> 9 -> 5
    assert two.kept_per_image.tolist() == [5] * 3
    est = VFlowOptImportance(layers=[0, 1])
    out = est.tune(model, x, 5, t_grid=[0.5, 2.0], alpha_grid=[0.0, 1.0])
    assert len(out["table"]) == 4
    assert out["discrepancy"] == min(row[2] for row in out["table"])
    assert (est.t, est.alpha) == (out["t"], out["alpha"])
    with torch.no_grad():
        full = model.decode(model.encode(x))
    for t, alpha, value in out["table"]:  # independent recomputation of the flow discrepancy
        red = VFlowOptImportance(t=t, alpha=alpha).reduce(model, x, 5)
        with torch.no_grad():
            expected = per_image_mse(full, model.decode(red.features)).mean().item()
        assert value == pytest.approx(expected, rel=1e-9)
    monkeypatch.setattr(VFlowOptImportance, "T_GRID", (0.5, 2.0))
    monkeypatch.setattr(VFlowOptImportance, "ALPHA_GRID", (0.0, 1.0))
    tuned = VFlowOptImportance(tune_keep=5).fit(model, x)  # the same grid, the same winner
    assert (tuned.t, tuned.alpha) == (out["t"], out["alpha"])


# --- family contract --------------------------------------------------------------------------


def test_fit_contract_and_determinism() -> None:
    x = images(5)
    est = VFlowOptImportance().fit(tiny_vit(), x)
    w = est.importances_
    assert w.dtype == np.float64 and w.shape == (16,)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    scores = est.token_scores(tiny_vit(), x).numpy()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(est.raw_importances_, scores.mean(axis=0), atol=1e-12)
    again = VFlowOptImportance(batch_size=2).fit(tiny_vit(), x)
    np.testing.assert_allclose(again.importances_, w, atol=1e-12)
    assert not np.allclose(VFlowOptImportance().fit(tiny_vit(seed=5), x).importances_, w)


@pytest.mark.parametrize(("keep", "recycle"), [(1, True), (3, True), (6, False), (16, True)])
def test_reduce_keeps_exactly_keep(keep: int, recycle: bool) -> None:
    model, x = tiny_vit(), images(3)
    red = VFlowOptImportance(batch_size=2, recycle=recycle).reduce(model, x, keep)
    assert red.keep.dtype == torch.bool and red.kept_per_image.tolist() == [keep] * 3
    assert red.features.shape == (3, 16, 16) and red.features.dtype == torch.float32
    assert bool((red.features[~red.keep] == 0).all())


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"layers": "0"}, "layers"),
        ({"layers": []}, "layers"),
        ({"layers": [0, 1.0]}, "layer"),
        ({"t": -1.0}, "t"),
        ({"alpha": math.nan}, "alpha"),
        ({"cell": 0}, "cell"),
        ({"recycle": "yes"}, "recycle"),
        ({"tune_keep": 0}, "tune_keep"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_raise_one_line_config_error(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        VFlowOptImportance(**options)


def test_bad_model_layer_and_keep_are_refused_before_work() -> None:
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="^model: 'cnn' is invalid; allowed: a model with atten"):
        VFlowOptImportance().fit(build_model("cnn", 16), images(1))
    with pytest.raises(ConfigError, match="^layer: 2 is invalid"):
        VFlowOptImportance(layers=[0, 2]).reduce(tiny_vit(), images(1), 4)
    with pytest.raises(ConfigError, match="^keep: "):
        VFlowOptImportance().reduce(tiny_vit(), images(1), 17)


def test_registered_with_its_paper() -> None:
    assert IMPORTANCE.get("vflowopt") is VFlowOptImportance
    assert IMPORTANCE.info("vflowopt").paper == "arXiv:2508.05211"
    assert make_estimator("vflowopt", layers=[1], alpha=0.0).layers == (1,)
