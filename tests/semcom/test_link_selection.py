"""The selection step of SemanticLink: a reducing estimator's keep mask before the allocation.

- every frame sends only features of its image's keep mask, at most ``keep`` of them, and all
  of them when the budgets are generous;
- features outside the mask are zero-filled at the receiver; kept ones carry the reduction's
  features (checked on the noiseless link against the quantiser of channels.bits);
- a dropped feature is never selected, even when it holds all the importance weight (without
  the step the allocator does select it);
- a reducer that keeps everything gives exactly the link without the step;
- a registered reducer (zero-tprune) on an untrained ViT keeps exactly ``keep`` per frame;
- bad arguments fail with one-line ConfigErrors.

Tiny untrained ViT (1x8x8 inputs, N = 16 tokens of 2x2 pixels): a few seconds in all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.bits import dequantize, quantize
from channels.errors import ConfigError
from semcom.importance import make_estimator
from semcom.importance.reduction import Reduction, top_k_mask
from semcom.link import SemanticLink, drop_distortion
from semcom.models.build import build_model

N, KEEP = 16, 5


class EnergyReducer:
    """Keeps each image's ``keep`` features of largest ``mean_l z_l^2``; sends ``sign · z``."""

    def __init__(self, sign: float = 1.0, drop: int | None = None) -> None:
        self.sign, self.drop = sign, drop

    def reduce(self, model, images, keep):  # noqa: ANN001, ANN201
        with torch.no_grad():
            z = model.encode(images)
        energy = z.pow(2).mean(dim=2)
        if self.drop is not None:  # this feature is never kept
            energy[:, self.drop] = -1.0
        mask = top_k_mask(energy, keep)
        return Reduction(mask, self.sign * z * mask[..., None])


class AllReducer:
    def reduce(self, model, images, keep):  # noqa: ANN001, ANN201
        with torch.no_grad():
            z = model.encode(images)
        return Reduction(torch.ones(z.shape[:2], dtype=torch.bool), z)


class MiscountReducer(EnergyReducer):
    def reduce(self, model, images, keep):  # noqa: ANN001, ANN201
        return super().reduce(model, images, keep - 1)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    options = {"input_shape": [1, 8, 8], "dim": 16, "depth": 1, "heads": 2}
    return build_model("vit", n_features=N, **options).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _link(model, images, weights=None, **kwargs) -> SemanticLink:  # noqa: ANN001
    w = np.full(N, 1.0 / N) if weights is None else weights
    options = {"channel": "rayleigh", "n_subchannels": N, "snr_db": 5.0, "eta": 0.5,
               "backend": "cpu", **kwargs}  # fmt: skip
    return SemanticLink(model, w, drop_distortion(model, images), **options)


def _kept(reducer, model, images, keep=KEEP) -> np.ndarray:  # noqa: ANN001
    return reducer.reduce(model, images, keep).keep.numpy()


def test_frames_send_only_kept_features_and_zero_fill_the_rest(model, images):
    reducer = EnergyReducer()
    kept = _kept(reducer, model, images)
    assert (kept.sum(axis=1) == KEEP).all()
    for draw in range(2):
        frames = _link(model, images, selection=reducer, keep=KEEP).simulate(images, draw)
        assert not (frames.sent & ~kept).any(), "a dropped feature was sent"
        assert (frames.sent.sum(axis=1) <= KEEP).all()
        assert (frames.bits_per_symbol[~kept] == 0).all()
        assert (frames.z_hat[~kept] == 0.0).all(), "unsent features are zero-filled"
    # with generous budgets every kept feature is sent
    generous = _link(model, images, selection=reducer, keep=KEEP, snr_db=30.0, eta=4.0)
    frames = generous.simulate(images, 0)
    assert (frames.sent == kept).all()


def test_kept_features_carry_the_reductions_values(model, images):
    """Noiseless link: ẑ = dequantize(quantize(reduction.features)) on kept, 0 elsewhere."""
    reducer = EnergyReducer(sign=-1.0)  # what is sent is not the encoder output
    reduction = reducer.reduce(model, images, KEEP)
    link = _link(model, images, channel="noiseless", selection=reducer, keep=KEEP)
    frames = link.simulate(images, 0)
    expected = dequantize(quantize(reduction.features.double().numpy(), 8), 8)
    expected[~reduction.keep.numpy()] = 0.0
    np.testing.assert_array_equal(frames.z_hat, expected)
    assert (frames.sent == reduction.keep.numpy()).all()


def test_a_dropped_feature_is_never_selected_even_with_all_the_weight(model, images):
    w = np.zeros(N)
    w[3] = 1.0  # all the importance on feature 3
    drop = drop_distortion(model, images)
    free = SemanticLink(model, w, drop, n_subchannels=N, snr_db=5.0, backend="cpu")
    assert free.simulate(images, 0).sent[:, 3].all(), "without selection it is always sent"
    reducer = EnergyReducer(drop=3)
    frames = _link(model, images, w, selection=reducer, keep=KEEP).simulate(images, 0)
    assert not frames.sent[:, 3].any()
    assert np.isfinite(frames.objective).all()
    # the objective counts feature 3 at its drop distortion (L d_drop,3, weight 1) at least
    assert (frames.objective >= model.scalars_per_feature * drop[3] - 1e-12).all()


def test_keeping_every_feature_equals_the_link_without_selection(model, images):
    plain = _link(model, images).simulate(images, 1)
    kept = _link(model, images, selection=AllReducer(), keep=N).simulate(images, 1)
    assert torch.equal(plain.x_hat, kept.x_hat)
    np.testing.assert_array_equal(plain.bits_per_symbol, kept.bits_per_symbol)
    np.testing.assert_array_equal(plain.z_hat, kept.z_hat)
    np.testing.assert_allclose(plain.objective, kept.objective, rtol=1e-12)


def test_zero_tprune_keeps_exactly_keep_per_frame(model, images):
    reducer = make_estimator("zero-tprune")
    link = _link(model, images, selection=reducer, keep=8)
    frames = link.simulate(images, 0)
    kept = reducer.reduce(model, images, 8).keep.numpy()
    assert (kept.sum(axis=1) == 8).all()
    assert not (frames.sent & ~kept).any() and (frames.z_hat[~kept] == 0).all()
    result = link.evaluate(images, n_draws=2)
    assert result.mean_selected <= 8


def test_bad_selection_arguments(model, images):
    with pytest.raises(ConfigError, match=r"^selection: 'MaskingImportance' is invalid"):
        _link(model, images, selection=make_estimator("masking"), keep=4)
    for keep in (0, N + 1, None, 2.5, True):
        with pytest.raises(ConfigError, match=r"^keep: .* is invalid; allowed: an integer in"):
            _link(model, images, selection=EnergyReducer(), keep=keep)
    with pytest.raises(ConfigError, match=r"^keep: 4 is invalid; allowed: None without"):
        _link(model, images, keep=4)
    link = _link(model, images, selection=MiscountReducer(), keep=4)
    with pytest.raises(ConfigError, match=r"^selection: reduce kept \[3, 3"):
        link.simulate(images, 0)


class CountingReducer(EnergyReducer):
    calls = 0

    def reduce(self, model, images, keep):  # noqa: ANN001, ANN201
        type(self).calls += 1
        return super().reduce(model, images, keep)


def test_reduce_runs_once_per_image_batch_across_draws(model, images):
    """The step depends on the images only: three draws of one batch call ``reduce`` once, and
    give the frames of links that each ran it afresh; other images run it again."""
    reducer = CountingReducer()
    link = _link(model, images, selection=reducer, keep=KEEP)
    frames = [link.simulate(images, draw) for draw in range(3)]
    assert CountingReducer.calls == 1
    for draw, cached in enumerate(frames):
        fresh = _link(model, images, selection=EnergyReducer(), keep=KEEP).simulate(images, draw)
        np.testing.assert_array_equal(cached.z_hat, fresh.z_hat)
        np.testing.assert_array_equal(cached.sent, fresh.sent)
    link.simulate(images.flip(0), 0)
    assert CountingReducer.calls == 2
