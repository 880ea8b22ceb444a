"""semcom.importance.value_function: v(S) = −E MSE(x, g(z ⊙ m_S)) against direct decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.importance import MaskingImportance, make_estimator
from semcom.importance.value_function import SubsetValue, check_subsets
from semcom.models.build import build_model


def tiny_vit(n: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("vit", n, input_shape=[3, 16, 16], dim=16, heads=2, depth=1, L=4)
    return model.double().eval()


def images(b: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, 16, 16, generator=torch.Generator().manual_seed(seed)).double()


def direct_value(model: torch.nn.Module, x: torch.Tensor, subset: np.ndarray) -> float:
    """One subset, one image at a time: −mean_b mean_p (x − g(z ⊙ m))^2."""
    mask = torch.from_numpy(subset.astype(np.float64))[:, None]
    errors = []
    with torch.no_grad():
        for image in x:
            z = model.encode(image[None])
            x_hat = model.decode(z * mask)
            errors.append((x_hat - image[None]).pow(2).mean().item())
    return -float(np.mean(errors))


def test_values_equal_direct_decoding_of_every_subset() -> None:
    model, x = tiny_vit(), images()
    value = SubsetValue(model, x, batch_size=2, decode_batch=3)
    subsets = np.array([[(k >> i) & 1 for i in range(4)] for k in range(16)], dtype=bool)
    got = value(subsets)
    want = [direct_value(model, x, s) for s in subsets]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert value.n_evaluations == 16


def test_cache_counts_each_subset_once_and_batching_does_not_matter() -> None:
    model, x = tiny_vit(), images()
    value = SubsetValue(model, x)
    rows = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 1, 1]], dtype=bool)
    first = value(rows)
    assert first[0] == first[1] and value.n_evaluations == 2
    np.testing.assert_array_equal(value(rows[::-1]), first[::-1])
    assert value.n_evaluations == 2
    small = SubsetValue(model, x, batch_size=1, decode_batch=1)
    np.testing.assert_allclose(small(rows), first, rtol=1e-12)


def test_leave_one_out_differences_are_the_masking_scores() -> None:
    model, x = tiny_vit(), images()
    value = SubsetValue(model, x)
    full = np.ones(4, dtype=bool)
    loo = ~np.eye(4, dtype=bool)
    masking = MaskingImportance().fit(model, x).raw_importances_
    np.testing.assert_allclose(value(full)[0] - value(loo), masking, rtol=1e-10, atol=1e-15)


def test_continuous_masks_match_binary_values_and_carry_gradients() -> None:
    model, x = tiny_vit(), images()
    value = SubsetValue(model, x)
    rows = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    masks = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    out = value.continuous(masks)
    np.testing.assert_allclose(out.detach().numpy(), value(rows), rtol=1e-12, atol=1e-15)
    (grad,) = torch.autograd.grad(out.sum(), masks)
    assert grad.shape == (3, 4) and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_other_image_fill_replaces_with_a_derangement() -> None:
    class Identity(torch.nn.Module):
        n_features, scalars_per_feature = 2, 1

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, 2, 1)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return z.reshape(-1, 1, 1, 2)

    x = torch.arange(1.0, 9.0, dtype=torch.float64).reshape(4, 1, 1, 2)
    value = SubsetValue(Identity(), x, fill="other-image", seed=3)
    fill = value._fill.reshape(4, 2)
    # every image takes all its replacement features from one other image
    rows = [int(np.flatnonzero((x.reshape(4, 2) == f).all(dim=1).numpy())[0]) for f in fill]
    assert sorted(rows) == [0, 1, 2, 3] and all(r != i for i, r in enumerate(rows))
    # v(∅) = −E (x − x_π)^2 / 2 with the derangement π
    want = -np.mean([((x[i] - x[r]) ** 2).mean().item() for i, r in enumerate(rows)])
    np.testing.assert_allclose(value(np.zeros(2, dtype=bool)), [want], rtol=1e-12)
    with pytest.raises(ConfigError, match="fill"):
        SubsetValue(Identity(), x[:1], fill="other-image")


def test_contribution_distance_of_a_linear_decoder() -> None:
    class Linear(torch.nn.Module):
        """x = A z: columns 0 and 1 equal, column 2 orthogonal to both, column 3 zero."""

        n_features, scalars_per_feature = 4, 1
        a = torch.tensor(
            [[1.0, 1.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]], dtype=torch.float64
        )

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, 4, 1)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return (z.reshape(-1, 4) @ self.a.T).reshape(-1, 1, 1, 3)

    z = torch.rand(6, 1, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z[..., 1] = z[..., 0]  # features 0 and 1 carry the same signal
    d = SubsetValue(Linear(), z).contribution_distance()
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_allclose(np.diag(d), 0.0)
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert d[0, 2] == pytest.approx(0.5, abs=1e-12)
    assert d[3, 0] == pytest.approx(0.5) and d[3, 2] == pytest.approx(0.5)


def test_bad_subsets_and_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="subsets"):
        check_subsets(np.ones((2, 3), dtype=bool), 4)
    with pytest.raises(ConfigError, match="subsets"):
        check_subsets(np.array([[0, 2, 1, 0]]), 4)
    assert check_subsets(np.array([1, 0, 1, 1]), 4).tolist() == [[True, False, True, True]]
    model, x = tiny_vit(), images()
    with pytest.raises(ConfigError, match="fill"):
        SubsetValue(model, x, fill="mean")
    with pytest.raises(ConfigError, match="decode_batch"):
        SubsetValue(model, x, decode_batch=0)
    with pytest.raises(ConfigError, match="model"):
        SubsetValue(object(), x)


@pytest.mark.parametrize(
    "name, options",
    [
        ("lima", {"pending": 4, "weights": "rank"}),
        ("reagent", {"stop_fraction": None, "fill": "other-image"}),
        ("data-shapley", {"algorithm": "g", "n_permutations": 7}),
    ],
)
def test_game_estimators_round_trip_their_options(name: str, options: dict) -> None:
    est = make_estimator(name, **options)
    params = est.get_params()
    assert {k: params[k] for k in options} == options
    assert make_estimator(name, **params).get_params() == params
    with pytest.raises(ConfigError, match="not accepted"):
        make_estimator(name, nonsense=1)
