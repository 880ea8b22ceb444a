"""gaam: Gaussian adaptive attention against scipy's normal pdf, its invariances, and its fit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import norm

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, GaamImportance, MaskingImportance, make_estimator
from semcom.importance.base import per_image_mse
from semcom.importance.gaam import EPS, GaussianAdaptiveAttention
from semcom.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread_module")


def module(heads: int, gaussians: int, seed: int = 0) -> GaussianAdaptiveAttention:
    gen = torch.Generator().manual_seed(seed)
    gaam = GaussianAdaptiveAttention(heads, gaussians)
    with torch.no_grad():
        gaam.offsets.copy_(torch.randn(heads, gaussians, generator=gen, dtype=torch.float64))
        gaam.scales.copy_(torch.randn(heads, gaussians, generator=gen, dtype=torch.float64).exp())
    return gaam


def test_registered_with_its_paper() -> None:
    assert IMPORTANCE.info("gaam").paper == "arXiv:2401.11143"


@pytest.mark.parametrize(("heads", "gaussians"), [(1, 1), (1, 3), (3, 2)])
def test_weights_equal_the_normalised_product_of_scipy_normal_pdfs(
    heads: int, gaussians: int
) -> None:
    gaam = module(heads, gaussians, seed=heads + gaussians)
    z = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with torch.no_grad():
        a = gaam(z).numpy()
    delta, c = gaam.offsets.detach().numpy(), gaam.scales.detach().numpy()
    for h, idx in enumerate(gaam.chunks(10)):
        x = z.numpy()[:, idx.numpy()]  # [B, n_c, L]
        mu, sigma = x.mean(axis=1, keepdims=True), np.sqrt(x.var(axis=1, keepdims=True) + EPS)
        dens = np.ones_like(x)
        for k in range(gaussians):
            dens *= norm.pdf((x - mu - delta[h, k]) / sigma, loc=0.0, scale=abs(c[h, k]))
        np.testing.assert_allclose(
            a[:, idx.numpy()], dens / dens.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-300
        )
        # non-negative and a distribution over each chunk, per image and column
        assert np.all(a >= 0)
        np.testing.assert_allclose(a[:, idx.numpy()].sum(axis=1), 1.0, rtol=1e-12)


def test_shift_and_scale_invariance_along_the_axis() -> None:
    gaam = module(2, 2, seed=1)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3, 8, 4, generator=g, dtype=torch.float64)
    shift = torch.randn(3, 1, 4, generator=g, dtype=torch.float64)  # constant along the axis
    with torch.no_grad():
        a = gaam(z)
        torch.testing.assert_close(gaam(z + 5.0 * shift), a, rtol=1e-6, atol=1e-12)
    # the offsets are in value units, so only a Gaussian centred on the mean is scale-free
    centred = GaussianAdaptiveAttention(2, 2)
    with torch.no_grad():
        torch.testing.assert_close(centred(3.0 * z), centred(z), rtol=1e-6, atol=1e-12)
        assert not torch.allclose(gaam(3.0 * z), a)


def test_zero_offsets_give_weights_symmetric_about_the_mean() -> None:
    gaam = module(1, 3)
    with torch.no_grad():
        gaam.offsets.zero_()
    z = torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    mirrored = 2 * z.mean(dim=1, keepdim=True) - z  # reflect every value about its column mean
    with torch.no_grad():
        torch.testing.assert_close(gaam(mirrored), gaam(z), rtol=1e-10, atol=1e-14)
        # and the weight falls with the distance to the mean
        a = gaam(z)
    dist = (z - z.mean(dim=1, keepdim=True)).abs()
    for b in range(2):
        for col in range(3):
            order = torch.argsort(dist[b, :, col])
            assert torch.all(torch.diff(a[b, order, col]) <= 1e-15)


def test_selection_keeps_the_top_share_of_each_chunk() -> None:
    gaam = module(2, 2, seed=3)
    z = torch.randn(4, 10, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        keep = gaam.selection(z, 0.4)
        abar = gaam.factor(z)
    np.testing.assert_allclose(abar.numpy(), gaam(z).numpy().mean(axis=2), rtol=1e-12)
    for idx in gaam.chunks(10):  # chunks of 5: round(0.4 * 5) = 2 kept, the two largest
        assert keep[:, idx].sum(dim=1).tolist() == [2] * 4
        for b in range(4):
            top = np.argsort(-abar[b, idx].numpy(), kind="stable")[:2]
            assert set(np.flatnonzero(keep[b, idx].numpy())) == set(top)
    # the parameter vector round-trips
    theta = gaam.vector()
    other = GaussianAdaptiveAttention(2, 2)
    other.set_vector(theta)
    torch.testing.assert_close(other.scales, gaam.scales)
    torch.testing.assert_close(other.offsets, gaam.offsets)


class Planted(torch.nn.Module):
    """``z = x`` (8 features of 2 scalars); the decoder reads features 0-3 only."""

    n_features, scalars_per_feature = 8, 2

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 8, 2)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        used = torch.tensor([1.0] * 4 + [0.0] * 4, dtype=z.dtype)[None, :, None]
        return (z * used).reshape(-1, 1, 4, 4)


def planted_images(n: int = 120) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    z = 0.3 * torch.randn(n, 8, 2, generator=g, dtype=torch.float64)
    z[:, :4] += 1.5  # the used features sit in the upper tail of every column
    return z.reshape(n, 1, 4, 4)


def test_fit_reaches_the_brute_force_best_selection_on_a_planted_model() -> None:
    x = planted_images()
    est = GaamImportance(fit_batch=40).fit(Planted(), x)
    # brute force over all 70 ways to keep 4 of the 8 features (the same for every image)
    z = Planted().encode(x)
    pick = torch.randperm(120, generator=torch.Generator().manual_seed(0))[:40]
    best = min(
        per_image_mse(
            x[pick],
            Planted().decode(z[pick] * torch.isin(torch.arange(8), torch.tensor(s))[None, :, None]),
        )
        .mean()
        .item()
        for s in itertools.combinations(range(8), 4)
    )
    assert est.loss_ == pytest.approx(best, rel=1e-9)
    assert est.loss_ <= min(est.grid_losses_)
    masking = MaskingImportance().fit(Planted(), x).importances_
    assert set(np.argsort(-est.importances_)[:4]) == set(np.argsort(-masking)[:4]) == {0, 1, 2, 3}
    assert float(est.module_.offsets.mean()) > 0  # the Gaussian sits in the upper tail
    np.testing.assert_allclose(
        est.raw_importances_, est.token_scores(Planted(), x).mean(dim=0).numpy(), rtol=1e-12
    )


def test_family_contract_on_the_codecs() -> None:
    torch.manual_seed(0)
    for model, shape in (
        (build_model("vit", 16, dim=16, heads=2, depth=1, scalars_per_feature=4), (3, 32, 32)),
        (build_model("cnn", 4, input_shape=[1, 8, 8], norm="none"), (1, 8, 8)),
    ):
        model.eval()
        x = torch.rand(10, *shape, generator=torch.Generator().manual_seed(1))
        est = GaamImportance(steps=4, fit_batch=5, batch_size=3).fit(model, x)
        w = est.importances_
        assert w.shape == (model.n_features,) and w.dtype == np.float64
        assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
        again = GaamImportance(steps=4, fit_batch=5, batch_size=7).fit(model, x)
        np.testing.assert_allclose(again.importances_, w, rtol=1e-6)  # same seed, same result
        assert all(p.grad is None for p in model.parameters())  # the codec is not touched


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"heads": 0}, "heads"),
        ({"gaussians": 1.5}, "gaussians"),
        ({"budget": 1.0}, "budget"),
        ({"budget": 0}, "budget"),
        ({"steps": -1}, "steps"),
        ({"fit_batch": 0}, "fit_batch"),
        ({"seed": -2}, "seed"),
    ],
)
def test_bad_options_fail_with_the_field_named(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_estimator("gaam", **options)


def test_too_many_heads_and_unfitted_scores_fail_clearly() -> None:
    with pytest.raises(ConfigError, match=r"heads: 5 .*\[1, 4\]"):
        GaamImportance(heads=5).fit(Planted(), planted_images(4))
    with pytest.raises(ConfigError, match="fit"):
        GaamImportance().token_scores(Planted(), planted_images(4))
