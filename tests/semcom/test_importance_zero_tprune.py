"""Zero-TPrune: weighted PageRank against power iteration, numpy.linalg.eig and networkx;
I-/S-stage reduction against a brute-force reference; the estimator family contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, ZeroTPruneImportance, make_estimator
from semcom.importance.zero_tprune import s_stage, weighted_pagerank
from semcom.models.build import build_model
from tests.semcom.vit_helpers import images, tiny_vit


def head_mean(model, x: torch.Tensor, layer: int) -> np.ndarray:
    with torch.no_grad():
        _, weights = model.encoder_trace(x)
    a = weights[layer].double().mean(dim=1).numpy()
    np.testing.assert_allclose(a.sum(axis=2), 1.0, atol=1e-6)  # row-stochastic (float32)
    return a / a.sum(axis=2, keepdims=True)  # exactly, as the WPR definition assumes


def stationary_by_eig(a: np.ndarray) -> np.ndarray:
    """Dominant eigenvector of aᵀ (eigenvalue 1), scaled to sum 1."""
    values, vectors = np.linalg.eig(a.T)
    top = int(np.argmax(values.real))
    assert abs(values[top] - 1.0) < 1e-12
    assert np.all(np.abs(np.delete(values, top)) < 1.0 - 1e-9)  # primitive: unique fixed point
    v = vectors[:, top].real
    return v / v.sum()


def power_iteration(a: np.ndarray, steps: int) -> np.ndarray:
    v = np.full(a.shape[0], 1.0 / a.shape[0])
    for _ in range(steps):
        v = a.T @ v
    return v


# --- property: the PageRank vector -------------------------------------------------------------


@pytest.mark.parametrize("layer", [0, 1])
def test_wpr_is_the_stationary_distribution_of_the_attention_graph(layer: int) -> None:
    model, x = tiny_vit(), images(3)
    s = ZeroTPruneImportance(layer=layer, iterations=2000, tol=1e-15).token_scores(model, x)
    s = s.numpy()
    assert s.dtype == np.float64 and s.shape == (3, 16)
    assert np.all(s >= 0)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, atol=1e-12)
    for b, a in enumerate(head_mean(model, x, layer)):
        np.testing.assert_allclose(s[b], power_iteration(a, 2000), atol=1e-12)
        np.testing.assert_allclose(s[b], stationary_by_eig(a), atol=1e-10)
        np.testing.assert_allclose(a.T @ s[b], s[b], atol=1e-12)


def test_wpr_matches_networkx_pagerank() -> None:
    nx = pytest.importorskip("networkx")
    model, x = tiny_vit(), images(2)
    s = ZeroTPruneImportance(iterations=2000, tol=1e-15).token_scores(model, x).numpy()
    for b, a in enumerate(head_mean(model, x, -1)):
        graph = nx.from_numpy_array(a, create_using=nx.DiGraph)  # edge i -> j, weight A[i, j]
        pr = nx.pagerank(graph, alpha=1.0, weight="weight", tol=1e-15, max_iter=100_000)
        np.testing.assert_allclose(s[b], [pr[i] for i in range(16)], atol=1e-9)


def test_wpr_slow_mixing_graph_needs_its_iterations() -> None:
    """|λ₂| = 0.98: a few steps stay far from the eigenvector; enough steps reach it."""
    rng = np.random.default_rng(3)
    n = 6
    rows = rng.dirichlet(np.ones(n), size=n)
    a = 0.98 * np.eye(n) + 0.02 * rows  # sticky random walk, still primitive
    target = stationary_by_eig(a)
    t = torch.from_numpy(a)[None]
    few = weighted_pagerank(t, iterations=5, tol=0.0)[0].numpy()
    many = weighted_pagerank(t, iterations=5000, tol=1e-15)[0].numpy()
    assert np.abs(few - target).sum() > 1e-3
    np.testing.assert_allclose(many, target, atol=1e-10)


def test_wpr_uniform_and_random_ergodic_graphs() -> None:
    uniform = torch.full((2, 4, 7, 7), 1.0 / 7, dtype=torch.float64)
    np.testing.assert_allclose(weighted_pagerank(uniform).numpy(), 1.0 / 7, atol=1e-15)
    rng = np.random.default_rng(0)
    heads = rng.dirichlet(np.ones(9), size=(5, 3, 9))  # [B, heads, N, N], rows sum to 1
    s = weighted_pagerank(torch.from_numpy(heads), iterations=1000, tol=1e-15).numpy()
    for b in range(5):
        a = heads[b].mean(axis=0)  # per-head averaging inside each step = mean matrix
        np.testing.assert_allclose(s[b], stationary_by_eig(a), atol=1e-12)


# --- property: the I- and S-stages ------------------------------------------------------------


def brute_force_reduce(z: np.ndarray, s: np.ndarray, keep: int, share: float) -> np.ndarray:
    """Per-image loops straight from the definition (no shared code with the module)."""
    n = len(s)
    removals = n - keep
    r2 = min(round(share * removals), keep)
    survivors = sorted(range(n), key=lambda i: -s[i])[: n - (removals - r2)]
    group_a, group_b = survivors[0::2], survivors[1::2]

    def cos(i: int, j: int) -> float:
        return float(z[i] @ z[j] / (np.linalg.norm(z[i]) * np.linalg.norm(z[j])))

    redundancy = {i: max(cos(i, j) for j in group_a) for i in group_b}
    dropped = sorted(group_b, key=lambda i: -redundancy[i])[:r2]
    mask = np.zeros(n, dtype=bool)
    mask[[i for i in survivors if i not in dropped]] = True
    return mask


@pytest.mark.parametrize(("keep", "share"), [(1, 0.5), (5, 0.5), (8, 0.5), (8, 1.0), (6, 0.0)])
def test_reduce_equals_brute_force_stages(keep: int, share: float) -> None:
    model, x = tiny_vit(), images(4)
    est = ZeroTPruneImportance(similarity_share=share, iterations=2000, tol=1e-15)
    red = est.reduce(model, x, keep)
    with torch.no_grad():
        z = model.encode(x).double().numpy()
    for b, a in enumerate(head_mean(model, x, -1)):
        expected = brute_force_reduce(z[b].reshape(16, -1), stationary_by_eig(a), keep, share)
        np.testing.assert_array_equal(red.keep[b].numpy(), expected)


def test_s_stage_drops_a_duplicate_of_a_more_important_token_first() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 6, 4, generator=g, dtype=torch.float64)
    z[0, 4] = z[0, 1]  # token 4 duplicates token 1
    s = torch.tensor([[0.30, 0.25, 0.05, 0.10, 0.24, 0.06]], dtype=torch.float64)
    # ranks: 0, 1, 4, 3, 5, 2 -> A = {0, 4, 5}, B = {1, 3, 2}: token 1 is B's duplicate of 4
    out = s_stage(z, s, torch.ones(1, 6, dtype=torch.bool), 1)
    assert out[0].tolist() == [True, False, True, True, True, True]


# --- family contract --------------------------------------------------------------------------


def test_fit_contract_and_determinism() -> None:
    x = images(5)
    est = ZeroTPruneImportance().fit(tiny_vit(), x)
    w = est.importances_
    assert w.dtype == np.float64 and w.shape == (16,)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    assert est.raw_importances_.shape == (16,) and est.n_images_ == 5
    # mean of per-image probability vectors: already normalised
    np.testing.assert_allclose(est.raw_importances_, w, atol=1e-12)
    again = ZeroTPruneImportance(batch_size=2).fit(tiny_vit(), x)
    np.testing.assert_allclose(again.importances_, w, atol=1e-12)
    other = ZeroTPruneImportance().fit(tiny_vit(seed=5), x)
    assert not np.allclose(other.importances_, w)


@pytest.mark.parametrize("keep", [1, 5, 16])
def test_reduce_keeps_exactly_keep(keep: int) -> None:
    model, x = tiny_vit(), images(3)
    red = ZeroTPruneImportance(batch_size=2).reduce(model, x, keep)
    assert red.keep.shape == (3, 16) and red.keep.dtype == torch.bool
    assert red.kept_per_image.tolist() == [keep] * 3
    with torch.no_grad():
        z = model.encode(x)
    assert torch.equal(red.features, z * red.keep[:, :, None])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"layer": "last"}, "layer"),
        ({"iterations": 0}, "iterations"),
        ({"tol": -1.0}, "tol"),
        ({"similarity_share": 1.5}, "similarity_share"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_raise_one_line_config_error(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        ZeroTPruneImportance(**options)


def test_bad_model_layer_and_keep_are_refused_before_work() -> None:
    torch.manual_seed(0)
    cnn = build_model("cnn", 16)
    with pytest.raises(ConfigError, match=r"^model: 'cnn' is invalid; allowed: a model with atten"):
        ZeroTPruneImportance().fit(cnn, images(1))
    with pytest.raises(ConfigError, match="^layer: 2 is invalid"):
        ZeroTPruneImportance(layer=2).fit(tiny_vit(), images(1))
    for keep in (0, 17, 2.0, True):
        with pytest.raises(ConfigError, match="^keep: "):
            ZeroTPruneImportance().reduce(tiny_vit(), images(1), keep)


def test_registered_with_its_paper() -> None:
    assert IMPORTANCE.get("zero-tprune") is ZeroTPruneImportance
    assert IMPORTANCE.info("zero-tprune").paper == "arXiv:2305.17328"
    assert make_estimator("zero-tprune", layer=0).layer == 0
