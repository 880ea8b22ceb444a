"""var: sink detection on planted massive activations; redistribution against a brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.importance import (
    IMPORTANCE,
    ElasticCacheImportance,
    VarImportance,
    estimate,
    make_estimator,
)
from semcom.importance.var import (
    default_tau,
    dimension_activity,
    find_sinks,
    redistribute,
    rms_normalize,
    sink_dimensions,
)
from semcom.models import build_model
from tests.semcom import vit_helpers
from tests.semcom.vit_helpers import images

pytestmark = pytest.mark.usefixtures("one_thread_module")


def tiny_vit(seed: int = 0) -> torch.nn.Module:
    return vit_helpers.tiny_vit(seed, scalars_per_feature=4)


def test_registered_with_its_paper() -> None:
    assert IMPORTANCE.info("var").paper == "arXiv:2503.03321"


def test_planted_massive_activations_are_found_with_their_dimensions() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 12, 64, generator=g, dtype=torch.float64)
    # sinks live in fixed dimensions (7 and 20) across images, at varying positions
    h[0, 3, 7], h[1, 8, 7], h[2, 5, 7] = 60.0, -60.0, 45.0  # the magnitude counts
    h[0, 10, 20], h[1, 0, 20], h[2, 5, 20] = 50.0, 50.0, -50.0
    dims = sink_dimensions(dimension_activity([h]), 2)
    assert dims == [7, 20]
    sinks = find_sinks(h, dims, tau=4.0)
    want = [(0, 3), (0, 10), (1, 0), (1, 8), (2, 5)]
    assert sorted(map(tuple, sinks.nonzero().tolist())) == want
    # a one-off outlier in a third dimension does not win (median over images), nor does a
    # dimension that is large for every token (an offset, not a massive activation)
    h[0, 1, 33] = 70.0
    h[:, :, 40] += 30.0
    assert sink_dimensions(dimension_activity([h]), 2) == [7, 20]
    # RMSNorm against numpy: unit root-mean-square per token
    np.testing.assert_allclose(
        rms_normalize(h).numpy(),
        h.numpy() / np.sqrt((h.numpy() ** 2).mean(axis=-1, keepdims=True) + 1e-6),
        rtol=1e-12,
    )
    assert default_tau(4096) == 20.0 and default_tau(16384) == 40.0 and default_tau(64) == 3.0


def brute_force(a: np.ndarray, sinks: np.ndarray, p: float, rho: float) -> np.ndarray:
    out = a.copy()
    b_, h_, n, _ = a.shape
    for b in range(b_):
        s = np.flatnonzero(sinks[b])
        rest = np.flatnonzero(~sinks[b])
        for h in range(h_):
            for i in range(n):
                row = a[b, h, i]
                share = row[s].sum()
                if share > rho or row[rest].sum() == 0:
                    continue
                out[b, h, i, s] = p * row[s]
                out[b, h, i, rest] = row[rest] + (1 - p) * share * row[rest] / row[rest].sum()
    return out


@pytest.mark.parametrize(("p", "rho"), [(0.6, 0.5), (0.0, 1.0), (0.3, 0.2)])
def test_redistribution_matches_a_brute_force_and_conserves_every_row(p: float, rho: float) -> None:
    g = torch.Generator().manual_seed(2)
    attn = torch.softmax(2 * torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), dim=-1)
    sinks = torch.zeros(4, 8, dtype=torch.bool)
    sinks[0, 2] = sinks[1, [0, 5]] = sinks[3, :] = True  # image 2: none; image 3: all sinks
    attn[1, :, :4, [0, 5]] *= 40  # some rows dominated by sinks (not image-centric)
    attn = attn / attn.sum(dim=-1, keepdim=True)
    out = redistribute(attn, sinks, p, rho)
    np.testing.assert_allclose(
        out.numpy(), brute_force(attn.numpy(), sinks.numpy(), p, rho), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(out.sum(dim=-1).numpy(), 1.0, rtol=1e-12)  # mass conserved
    assert float(out.min()) >= 0
    # proportions among the non-sink tokens are unchanged
    b = 1
    rest = ~sinks[b]
    ratio = out[b][..., rest] / attn[b][..., rest]
    np.testing.assert_allclose(ratio.numpy(), ratio[..., :1].expand_as(ratio).numpy(), rtol=1e-10)
    # no sinks, or nothing but sinks: untouched
    torch.testing.assert_close(out[2], attn[2])
    torch.testing.assert_close(out[3], attn[3])
    # p = 1 is the identity
    torch.testing.assert_close(redistribute(attn, sinks, 1.0, rho), attn)


def test_sink_dominated_rows_are_left_alone() -> None:
    attn = torch.tensor([[[[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]]]], dtype=torch.float64)
    sinks = torch.tensor([[True, False, False]])
    out = redistribute(attn, sinks, 0.6, 0.5)
    torch.testing.assert_close(out[0, 0, 0], attn[0, 0, 0])  # share 0.7 > rho
    # share 0.3: the sink keeps 0.18, the freed 0.12 goes 3:4 to the others
    torch.testing.assert_close(
        out[0, 0, 1], torch.tensor([0.18, 0.3 + 0.12 * 3 / 7, 0.4 + 0.12 * 4 / 7]).double()
    )


def planted_sink_vit() -> torch.nn.Module:
    """Token 5 carries a massive activation in hidden dimension 7 (its position embedding)."""
    model = tiny_vit()
    with torch.no_grad():
        model.pos_enc[0, 5, 7] = 40.0
    return model


def test_a_planted_sink_is_detected_and_discounted_in_the_vit() -> None:
    model, x = planted_sink_vit(), images()
    est = VarImportance().fit(model, x)
    assert 7 in est.sink_dims_
    sinks = est.sink_tokens(model, x)  # [blocks, B, N]
    assert bool(sinks[:, :, 5].all())  # token 5 is a sink in every image and block
    plain = ElasticCacheImportance().token_scores(model, x)
    var = est.token_scores(model, x)
    assert torch.all(var[:, 5] < plain[:, 5])  # its attention was partly given away
    np.testing.assert_allclose(var.sum(dim=1).numpy(), plain.sum(dim=1).numpy(), rtol=1e-9)
    # p = 1 redistributes nothing: the plain attention received
    same = VarImportance(p=1.0).fit(model, x)
    np.testing.assert_allclose(same.token_scores(model, x).numpy(), plain.numpy(), rtol=1e-12)
    # given dims and tau are used as such
    fixed = VarImportance(sink_dims=[7], tau=3.0).fit(model, x)
    assert fixed.sink_dims_ == [7] and 0 < fixed.sink_rate_ < 1


def test_family_contract() -> None:
    model, x = planted_sink_vit(), images(7)
    w = estimate(model, x, "var")
    assert w.shape == (16,) and w.dtype == np.float64
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
    np.testing.assert_array_equal(w, estimate(model, x, "var"))
    np.testing.assert_allclose(estimate(model, x, "var", batch_size=3), w, rtol=1e-6)
    est = make_estimator("var", layers="last").fit(model, x)
    np.testing.assert_allclose(
        est.raw_importances_, est.token_scores(model, x).mean(dim=0).numpy(), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"p": 1.5}, "p"),
        ({"p": "0.6"}, "p"),
        ({"rho": 0.0}, "rho"),
        ({"tau": -1.0}, "tau"),
        ({"sink_dims": []}, "sink_dims"),
        ({"sink_dims": [1, 1]}, "sink_dims"),
        ({"sink_dims": [-1]}, "sink_dims"),
        ({"n_sink_dims": 0}, "n_sink_dims"),
        ({"layers": 1.5}, "layers"),
    ],
)
def test_bad_options_fail_with_the_field_named(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_estimator("var", **options)


def test_bad_model_and_out_of_range_dims_fail_clearly() -> None:
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match=r"model: 'cnn'.*attention"):
        VarImportance().fit(build_model("cnn", 4, input_shape=[1, 8, 8]), torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="sink_dims"):
        VarImportance(sink_dims=[16]).fit(tiny_vit(), images(2))
    with pytest.raises(ConfigError, match="n_sink_dims"):
        VarImportance(n_sink_dims=17).fit(tiny_vit(), images(2))
