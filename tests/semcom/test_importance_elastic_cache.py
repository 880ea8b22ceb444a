"""elastic-cache: attention-received scores, anchor assignment and merging against scipy/numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, ElasticCacheImportance, estimate, make_estimator
from semcom.importance.elastic_cache import (
    assign_by_position,
    assign_by_similarity,
    merge_into_anchors,
)
from semcom.models import build_model
from tests.semcom import vit_helpers
from tests.semcom.vit_helpers import images

pytestmark = pytest.mark.usefixtures("one_thread_module")


def tiny_vit(seed: int = 0, depth: int = 2) -> torch.nn.Module:
    return vit_helpers.tiny_vit(seed, depth=depth, scalars_per_feature=4)


def test_registered_with_its_paper() -> None:
    info = IMPORTANCE.info("elastic-cache")
    assert info.paper == "arXiv:2407.18121"
    assert IMPORTANCE.get("elastic-cache") is ElasticCacheImportance


def test_score_is_the_attention_received_and_sums_to_n_per_block() -> None:
    model, x = tiny_vit(), images()
    with torch.no_grad():
        _, weights = model.encoder_trace(x)
    a = np.stack([w.double().numpy() for w in weights])  # [layers, B, H, N, N]
    # brute force: for each key j, add up A[l, b, h, i, j] over i and l, average over h
    expected = np.zeros((6, 16))
    for layer in range(2):
        for h in range(2):
            for i in range(16):
                expected += a[layer, :, h, i, :] / 2
    scores = ElasticCacheImportance().token_scores(model, x)
    assert scores.dtype == torch.float64 and scores.shape == (6, 16)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-10)
    # every attention row sums to 1, so each block hands out exactly N units of attention
    np.testing.assert_allclose(scores.sum(dim=1).numpy(), 2 * 16, rtol=1e-5)
    last = ElasticCacheImportance(layers="last").token_scores(model, x)
    np.testing.assert_allclose(last.numpy(), a[1].mean(axis=1).sum(axis=1), rtol=1e-10)
    block1 = ElasticCacheImportance(layers=1).token_scores(model, x)
    np.testing.assert_allclose(block1.numpy(), a[0].mean(axis=1).sum(axis=1), rtol=1e-10)


def test_similarity_assignment_matches_scipy_cosine() -> None:
    g = torch.Generator().manual_seed(4)
    z = torch.randn(5, 12, 3, generator=g, dtype=torch.float64)
    anchors = torch.zeros(5, 12, dtype=torch.bool)
    for b in range(5):
        anchors[b, torch.randperm(12, generator=g)[: 2 + b]] = True
    got = assign_by_similarity(z, anchors)
    for b in range(5):
        idx = np.flatnonzero(anchors[b].numpy())
        dist = cdist(z[b].numpy(), z[b, idx].numpy(), metric="cosine")  # 1 - cos
        want = idx[dist.argmin(axis=1)]
        want[idx] = idx
        np.testing.assert_array_equal(got[b].numpy(), want)


def test_position_assignment_matches_scipy_euclidean_on_the_grid() -> None:
    g = torch.Generator().manual_seed(5)
    anchors = torch.zeros(3, 16, dtype=torch.bool)
    for b in range(3):
        anchors[b, torch.randperm(16, generator=g)[:5]] = True
    got = assign_by_position(anchors, (4, 4))
    coords = np.array([(i // 4, i % 4) for i in range(16)], dtype=float)
    for b in range(3):
        idx = np.flatnonzero(anchors[b].numpy())
        want = idx[cdist(coords, coords[idx]).argmin(axis=1)]  # first minimum: lower index
        np.testing.assert_array_equal(got[b].numpy(), want)


def test_merging_preserves_each_group_sum_up_to_its_count() -> None:
    g = torch.Generator().manual_seed(6)
    z = torch.randn(4, 10, 3, generator=g, dtype=torch.float64)
    anchors = torch.zeros(4, 10, dtype=torch.bool)
    anchors[:, [1, 4, 7]] = True
    target = assign_by_similarity(z, anchors)
    merged = merge_into_anchors(z, anchors, target)
    for b in range(4):
        sums = np.zeros((10, 3))
        counts = np.zeros(10)
        np.add.at(sums, target[b].numpy(), z[b].numpy())
        np.add.at(counts, target[b].numpy(), 1)
        for a in (1, 4, 7):
            np.testing.assert_allclose(merged[b, a].numpy() * counts[a], sums[a], rtol=1e-12)
        assert counts.sum() == 10 and np.all(merged[b, ~anchors[b]].numpy() == 0)
    # the total over all features is preserved once each anchor is weighted by its group size
    np.testing.assert_allclose(
        (merged * torch.stack([torch.bincount(t, minlength=10) for t in target])[..., None])
        .sum(dim=1)
        .numpy(),
        z.sum(dim=1).numpy(),
        rtol=1e-12,
    )


@pytest.mark.parametrize("assign", ["similarity", "position"])
def test_reduce_keeps_exactly_keep_anchors_and_keep_n_is_the_identity(assign: str) -> None:
    model, x = tiny_vit(), images()
    est = ElasticCacheImportance(assign=assign, batch_size=4)
    z = model.encode(x).detach()
    for keep in (1, 5, 15):
        red = est.reduce(model, x, keep=keep)
        assert red.keep.shape == (6, 16) and red.features.shape == z.shape
        assert red.kept_per_image.tolist() == [keep] * 6
        np.testing.assert_array_equal(
            red.keep.numpy(), est.reduce(model, x, keep).keep.numpy()
        )  # deterministic
        # anchors are the top-keep of the attention received
        scores = est.token_scores(model, x).numpy()
        for b in range(6):
            kept = np.flatnonzero(red.keep[b].numpy())
            assert scores[b, kept].min() >= np.sort(scores[b])[::-1][keep - 1] - 1e-12
        assert torch.all(red.features[~red.keep] == 0)
    full = est.reduce(model, x, keep=16)
    assert bool(full.keep.all())
    torch.testing.assert_close(full.features, z)


def test_family_contract_and_batch_size_invariance() -> None:
    model, x = tiny_vit(), images(7)
    w = estimate(model, x, "elastic-cache")
    assert w.shape == (16,) and w.dtype == np.float64
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
    np.testing.assert_array_equal(w, estimate(model, x, "elastic-cache"))
    for batch_size in (1, 3):
        np.testing.assert_allclose(
            estimate(model, x, "elastic-cache", batch_size=batch_size), w, rtol=1e-6
        )
    est = make_estimator("elastic-cache", layers="last").fit(model, x)
    np.testing.assert_allclose(
        est.raw_importances_, est.token_scores(model, x).mean(dim=0).numpy(), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"layers": "first"}, "layers"),
        ({"layers": 0}, "layers"),
        ({"layers": True}, "layers"),
        ({"assign": "random"}, "assign"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_fail_with_the_field_named(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_estimator("elastic-cache", **options)


def test_bad_model_keep_and_block_fail_clearly() -> None:
    torch.manual_seed(0)
    cnn = build_model("cnn", 4, input_shape=[1, 8, 8], norm="none")
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"model: 'cnn'.*a model with attention \(vit\)"):
        ElasticCacheImportance().fit(cnn, x)
    with pytest.raises(ConfigError, match="model"):
        ElasticCacheImportance().reduce(cnn, x, keep=2)
    model, x = tiny_vit(), images(2)
    for keep in (0, 17, 2.0):
        with pytest.raises(ConfigError, match="keep"):
            ElasticCacheImportance().reduce(model, x, keep=keep)
    with pytest.raises(ConfigError, match="layers"):
        ElasticCacheImportance(layers=3).fit(model, x)
