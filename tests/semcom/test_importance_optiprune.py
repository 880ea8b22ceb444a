"""OptiPrune: attention overlap axioms and its total-variation identity; SimPrune against a
brute-force greedy reference, duplicates first, merged groups keep their mean; family contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, OptiPruneImportance, make_estimator
from semcom.importance.optiprune import attention_overlap, peak_attention, sim_prune
from semcom.models.build import build_model
from tests.semcom.vit_helpers import images, tiny_vit

# --- property: the entanglement overlap ---------------------------------------------------------


def test_overlap_axioms_and_total_variation_identity() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(12), size=200)
    q = rng.dirichlet(np.full(12, 0.3), size=200)
    q[:50, :6] = 0.0  # some sparse maps
    q /= q.sum(axis=1, keepdims=True)
    f = attention_overlap(torch.from_numpy(p), torch.from_numpy(q)).numpy()
    assert np.all((f >= 0) & (f <= 0.5))
    # for probability maps: sum min(p, q) = 1 - TV(p, q), so f = (1 - TV) / 2
    tv = 0.5 * np.abs(p - q).sum(axis=1)
    np.testing.assert_allclose(f, (1 - tv) / 2, atol=1e-14)
    fp = attention_overlap(torch.from_numpy(p), torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(fp, 0.5, atol=1e-15)  # identical maps
    back = attention_overlap(torch.from_numpy(3 * q), torch.from_numpy(3 * p)).numpy()
    np.testing.assert_allclose(back, f, atol=1e-14)  # symmetric, scale-free
    disjoint = torch.tensor([[0.2, 0.8, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    assert float(attention_overlap(*disjoint)) == 0.0


def test_peak_attention_is_the_largest_received_share() -> None:
    rng = np.random.default_rng(1)
    heads = rng.dirichlet(np.ones(6), size=(2, 3, 6))  # [B, heads, N, N]
    a = peak_attention(torch.from_numpy(heads)).numpy()
    for b in range(2):
        mean = heads[b].mean(axis=0)
        assert [a[b, j] for j in range(6)] == pytest.approx(
            [max(mean[i, j] for i in range(6)) for j in range(6)], abs=1e-15
        )


# --- property: SimPrune -------------------------------------------------------------------------


def brute_force_sim_prune(z, scores, keep, protect, mode, basis=None, kind="cosine"):
    """Loops straight from the definition: one greedy removal at a time."""
    n = len(z)
    feats = [z[i].astype(np.float64).copy() for i in range(n)]
    vecs = [(z if basis is None else basis)[i].astype(np.float64).copy() for i in range(n)]
    size, owner = [1.0] * n, list(range(n))
    alive = list(range(n))
    shielded = set(sorted(range(n), key=lambda i: -scores[i])[: math.ceil(protect * keep)])

    def sim(u, v):
        if kind == "cosine":
            return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
        return float(2 * np.minimum(u, v).sum() / (u.sum() + v.sum()))

    while len(alive) > keep:
        best = None  # (redundancy, -score, victim, nearest)
        for i in alive:
            if i in shielded:
                continue
            others = [j for j in alive if j != i]
            values = [sim(vecs[i], vecs[j]) for j in others]
            nearest = others[int(np.argmax(values))]
            key = (max(values), -scores[i])
            if best is None or key > best[0]:
                best = (key, i, nearest)
        _, victim, target = best
        alive.remove(victim)
        if mode == "merge":
            total = size[victim] + size[target]
            feats[target] = (size[target] * feats[target] + size[victim] * feats[victim]) / total
            vecs[target] = (size[target] * vecs[target] + size[victim] * vecs[victim]) / total
            size[target] = total
            owner = [target if o == victim else o for o in owner]
        else:
            owner = [-1 if o == victim else o for o in owner]
    mask = np.zeros(n, dtype=bool)
    mask[alive] = True
    sent = np.array([feats[i] if mask[i] else np.zeros_like(feats[i]) for i in range(n)])
    return mask, sent, np.array(owner)


@pytest.mark.parametrize(
    ("keep", "protect", "mode", "kind"),
    [
        (3, 0.5, "drop", "cosine"),
        (3, 0.5, "merge", "cosine"),
        (1, 1.0, "merge", "cosine"),
        (6, 0.0, "drop", "overlap"),
        (5, 0.4, "merge", "overlap"),
    ],
)
def test_sim_prune_equals_brute_force_greedy(keep, protect, mode, kind) -> None:
    rng = np.random.default_rng(keep)
    z = rng.normal(size=(3, 9, 4))
    scores = rng.random((3, 9))
    basis = rng.dirichlet(np.ones(9), size=(3, 9)) if kind == "overlap" else None
    mask, sent, owner = sim_prune(
        torch.from_numpy(z),
        torch.from_numpy(scores),
        keep,
        protect=protect,
        mode=mode,
        basis=None if basis is None else torch.from_numpy(basis),
        similarity=kind,
    )
    for b in range(3):
        ref = brute_force_sim_prune(
            z[b], scores[b], keep, protect, mode, None if basis is None else basis[b], kind
        )
        np.testing.assert_array_equal(mask[b].numpy(), ref[0])
        np.testing.assert_allclose(sent[b].numpy(), ref[1], atol=1e-12)
        np.testing.assert_array_equal(owner[b].numpy(), ref[2])


def test_sim_prune_removes_exact_duplicates_first() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(1, 8, 4))
    z[0, 5], z[0, 6] = z[0, 1], z[0, 2]  # two duplicate pairs
    scores = torch.from_numpy(rng.random((1, 8)))
    for mode in ("drop", "merge"):
        mask, sent, _ = sim_prune(torch.from_numpy(z), scores, 6, protect=0.0, mode=mode)
        kept = set(np.flatnonzero(mask[0].numpy()))
        assert {0, 3, 4, 7} <= kept and len(kept & {1, 5}) == 1 and len(kept & {2, 6}) == 1
        for i in kept:  # a merged duplicate pair still carries the duplicated value
            np.testing.assert_allclose(sent[0, i].numpy(), z[0, i], atol=1e-12)


def test_protected_tokens_survive_and_merged_groups_keep_their_mean() -> None:
    model, x = tiny_vit(), images(4)
    est = OptiPruneImportance(mode="merge", protect=0.5)
    red = est.reduce(model, x, 4)
    scores = est.token_scores(model, x)
    with torch.no_grad():
        z = model.encode(x)
    top = torch.argsort(scores, dim=1, descending=True)[:, :2]  # ceil(0.5 * 4) protected
    assert bool(torch.gather(red.keep, 1, top).all())
    _, _, owner = sim_prune(z, scores, 4, protect=0.5, mode="merge")
    for b in range(4):
        groups = owner[b].tolist()
        assert sorted(set(groups)) == torch.nonzero(red.keep[b]).flatten().tolist()  # nothing lost
        for k in set(groups):
            members = [i for i, o in enumerate(groups) if o == k]
            np.testing.assert_allclose(
                red.features[b, k].numpy(), z[b, members].mean(dim=0).numpy(), atol=1e-6
            )


# --- family contract --------------------------------------------------------------------------


def test_fit_contract_and_determinism() -> None:
    x = images(5)
    est = OptiPruneImportance().fit(tiny_vit(), x)
    w = est.importances_
    assert w.dtype == np.float64 and w.shape == (16,)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    scores = est.token_scores(tiny_vit(), x).numpy()
    np.testing.assert_allclose(est.raw_importances_, scores.mean(axis=0), atol=1e-12)
    assert np.all((scores > 0) & (scores <= 1))
    again = OptiPruneImportance(batch_size=2).fit(tiny_vit(), x)
    np.testing.assert_allclose(again.importances_, w, atol=1e-12)
    assert not np.allclose(OptiPruneImportance().fit(tiny_vit(seed=5), x).importances_, w)


@pytest.mark.parametrize("mode", ["drop", "merge"])
@pytest.mark.parametrize("keep", [1, 7, 16])
def test_reduce_keeps_exactly_keep(mode: str, keep: int) -> None:
    model, x = tiny_vit(), images(3)
    red = OptiPruneImportance(batch_size=2, mode=mode, similarity="overlap").reduce(model, x, keep)
    assert red.keep.dtype == torch.bool and red.kept_per_image.tolist() == [keep] * 3
    assert red.features.shape == (3, 16, 16) and red.features.dtype == torch.float32
    assert bool((red.features[~red.keep] == 0).all())
    if mode == "drop":
        with torch.no_grad():
            z = model.encode(x)
        assert torch.equal(red.features, z * red.keep[:, :, None])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"layer": 1.5}, "layer"),
        ({"protect": -0.1}, "protect"),
        ({"protect": True}, "protect"),
        ({"mode": "fold"}, "mode"),
        ({"similarity": "l2"}, "similarity"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_raise_one_line_config_error(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        OptiPruneImportance(**options)


def test_bad_model_layer_and_keep_are_refused_before_work() -> None:
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="^model: 'cnn' is invalid; allowed: a model with atten"):
        OptiPruneImportance().fit(build_model("cnn", 16), images(1))
    with pytest.raises(ConfigError, match="^layer: -3 is invalid"):
        OptiPruneImportance(layer=-3).reduce(tiny_vit(), images(1), 4)
    with pytest.raises(ConfigError, match="^keep: "):
        OptiPruneImportance().reduce(tiny_vit(), images(1), 0)


def test_registered_with_its_paper() -> None:
    assert IMPORTANCE.get("optiprune") is OptiPruneImportance
    assert IMPORTANCE.info("optiprune").paper == "arXiv:2507.00789"
    assert make_estimator("optiprune", mode="merge").mode == "merge"
