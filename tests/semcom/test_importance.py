"""semcom.importance: estimator axioms, closed forms, hand-computed gradients, concentration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.importance import (
    IMPORTANCE,
    GradientImportance,
    MaskingImportance,
    estimate,
    gini,
    normalize_importance,
    spearman_vs_index,
    top_k_share,
)


class LinearModel(torch.nn.Module):
    """``x = A vec(z) + c`` on ``[B, C, H, W]``; ``encode`` inverts it (pseudo-inverse of A)."""

    def __init__(self, a: torch.Tensor, n: int, length: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(a.clone(), requires_grad=False)
        self.c = torch.nn.Parameter(torch.full((a.shape[0],), 0.5, dtype=a.dtype), False)
        self.pinv = torch.nn.Parameter(torch.linalg.pinv(a), requires_grad=False)
        self.n_features, self.scalars_per_feature, self.input_shape = n, length, shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) - self.c) @ self.pinv.T
        return z.reshape(-1, self.n_features, self.scalars_per_feature)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z.flatten(1) @ self.a.T + self.c).reshape(-1, *self.input_shape)


def linear_setup(batch: int, seed: int = 0) -> tuple[LinearModel, torch.Tensor, torch.Tensor]:
    """N = 5 features of L = 3 mean-zero independent uniform scalars, feature scales 1, 0.8, ..."""
    n, length, shape = 5, 3, (2, 3, 4)
    g = torch.Generator().manual_seed(seed)
    a = 0.1 * torch.randn(24, n * length, generator=g, dtype=torch.float64)
    model = LinearModel(a, n, length, shape)
    scale = 0.8 ** torch.arange(n, dtype=torch.float64)
    z = (2 * torch.rand(batch, n, length, generator=g, dtype=torch.float64) - 1) * scale[:, None]
    return model, model.decode(z), scale


def test_masking_of_a_linear_decoder_equals_its_closed_form() -> None:
    model, x, scale = linear_setup(4000)
    est = MaskingImportance(batch_size=1000).fit(model, x)
    a = model.a.detach().reshape(24, 5, 3)
    z = model.encode(x).detach()
    # exact identity on the sample: x = g(z), so zeroing feature i adds A_i z_i to the error
    per_feature = [(z[:, i] @ a[:, i].T).pow(2).mean(dim=1).mean().item() for i in range(5)]
    np.testing.assert_allclose(est.raw_importances_, per_feature, rtol=1e-9)
    # population closed form: (1/D) sum_l ||a_l||^2 E[z_l^2], E z^2 = s_i^2 / 3
    closed = (a.pow(2).sum(dim=0) * (scale[:, None] ** 2 / 3)).sum(dim=1).numpy() / 24
    np.testing.assert_allclose(est.raw_importances_, closed, rtol=0.06)
    np.testing.assert_allclose(est.importances_, closed / closed.sum(), rtol=0.06)


def test_clipping_and_the_all_zero_case() -> None:
    class Harmful(torch.nn.Module):
        """Feature 0 reconstructs x; feature 1 is a constant that only adds error."""

        n_features, scalars_per_feature = 2, 1

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.flatten(1)[:, 0], torch.full_like(x[:, 0, 0, 0], 0.5)], 1)[
                ..., None
            ]

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return (z[:, 0] + 0.1 * z[:, 1]).reshape(-1, 1, 1, 1)

    x = torch.rand(16, 1, 1, 1, dtype=torch.float64)
    est = MaskingImportance().fit(Harmful(), x)
    assert est.raw_importances_[1] < 0 and est.importances_.tolist() == [1.0, 0.0]

    class Ignores(torch.nn.Module):
        n_features, scalars_per_feature = 3, 2

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :1, None].expand(-1, 3, 2)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return torch.zeros(z.shape[0], 1, 2, 2, dtype=z.dtype)

    for method in ("masking", "gradient"):
        np.testing.assert_array_equal(estimate(Ignores(), torch.rand(4, 1, 2, 2), method), 1 / 3)
    np.testing.assert_array_equal(normalize_importance([-1.0, 0.0]), [0.5, 0.5])


class TwoByTwo(torch.nn.Module):
    """``z = x`` (two features of one scalar), ``g(z) = A z`` with ``A = [[1, 2], [0, 1]]``."""

    n_features, scalars_per_feature = 2, 1

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 2, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z.reshape(-1, 2) @ self.a.T).reshape(-1, 1, 1, 2)


def test_gradient_times_input_by_hand() -> None:
    x = torch.tensor([[[[0.5, 0.3]]]], dtype=torch.float64)
    model = TwoByTwo()
    # energy: L = (1/2D)||A z||^2, dL/dz = A^T A z / D; A z = (1.1, 0.3), A^T A z = (1.1, 2.5)
    est = GradientImportance(loss="energy").fit(model, x)
    np.testing.assert_allclose(est.raw_importances_, [0.55 * 0.5, 1.25 * 0.3], rtol=1e-12)
    np.testing.assert_allclose(est.importances_, [0.275 / 0.65, 0.375 / 0.65], rtol=1e-12)
    # mse: L = (1/D)||x - A z||^2, dL/dz = -(2/D) A^T (x - A z) = -A^T (-0.6, 0) = (0.6, 1.2)
    est = GradientImportance(loss="mse").fit(model, x)
    np.testing.assert_allclose(est.raw_importances_, [0.6 * 0.5, 1.2 * 0.3], rtol=1e-12)
    assert model.a.grad is None  # parameter gradients untouched


def test_gradient_energy_equals_masking_for_orthonormal_features() -> None:
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(12, 6, generator=g, dtype=torch.float64))
    model = LinearModel(q, 3, 2, (1, 3, 4))
    z = 2 * torch.rand(50, 3, 2, generator=g, dtype=torch.float64) - 1
    x = model.decode(z * torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64)[:, None])
    masking = MaskingImportance().fit(model, x).raw_importances_
    gradient = GradientImportance().fit(model, x)
    # every |dL/dz_l z_l| = z_l^2 / D, the masking score ||z_i||^2 / D
    np.testing.assert_allclose(gradient.raw_importances_, masking, rtol=1e-9)


@pytest.mark.parametrize("method", ["masking", "gradient"])
def test_axioms_and_batch_size_invariance(method: str) -> None:
    model, x, _ = linear_setup(37, seed=5)
    reference = estimate(model, x, method, batch_size=37)
    assert reference.shape == (5,) and reference.dtype == np.float64
    assert np.all(reference >= 0) and np.isclose(reference.sum(), 1.0, rtol=0, atol=1e-12)
    for batch_size in (1, 5, 1000):
        np.testing.assert_allclose(
            estimate(model, x, method, batch_size=batch_size), reference, rtol=1e-10
        )
    if method == "masking":  # how many masked copies are decoded together does not matter
        np.testing.assert_allclose(estimate(model, x, method, decode_batch=1), reference, 1e-10)
    # the ordered scales give an ordered profile
    assert spearman_vs_index(reference) < -0.8


def test_model_mode_is_restored() -> None:
    model, x, _ = linear_setup(4)
    model.train()
    estimate(model, x, "masking")
    assert model.training


def test_invalid_input_raises_config_error() -> None:
    model, x, _ = linear_setup(4)
    with pytest.raises(ConfigError, match="importance method: 'nope' is not one of"):
        estimate(model, x, "nope")
    with pytest.raises(ConfigError, match="'foo' is not accepted"):
        estimate(model, x, "masking", foo=1)
    with pytest.raises(ConfigError, match="batch_size"):
        estimate(model, x, "gradient", batch_size=0)
    with pytest.raises(ConfigError, match="loss"):
        estimate(model, x, "gradient", loss="l1")
    with pytest.raises(ConfigError, match="images"):
        estimate(model, x[0], "masking")
    with pytest.raises(ConfigError, match="images"):
        estimate(model, x[:0], "masking")
    with pytest.raises(ConfigError, match="model"):
        estimate(object(), x, "masking")
    assert set(IMPORTANCE.names()) >= {"masking", "gradient"}


# ------------------------------------------------------------------------- concentration
def test_concentration_known_cases() -> None:
    for n in (1, 2, 7, 16):
        assert gini(np.full(n, 1.0 / n)) == 0.0
        assert gini(np.eye(n)[n // 2]) == pytest.approx((n - 1) / n)
        assert top_k_share(np.full(n, 2.0), 1) == pytest.approx(1 / n)
    w = np.array([0.4, 0.3, 0.2, 0.1])
    assert [top_k_share(w, k) for k in (1, 2, 3, 4)] == pytest.approx([0.4, 0.7, 0.9, 1.0])
    assert spearman_vs_index(w) == -1.0
    assert spearman_vs_index(w[::-1]) == 1.0
    assert spearman_vs_index([0.2, 0.2, 0.2]) == 0.0
    assert gini(np.zeros(3)) == 0.0  # all-zero: the uniform profile


def test_gini_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = rng.exponential(size=rng.integers(2, 30))
        pairs = np.abs(w[:, None] - w[None, :]).sum() / (2 * w.size * w.sum())
        assert gini(w) == pytest.approx(pairs, rel=1e-12)
        assert gini(3.0 * w) == pytest.approx(gini(w), rel=1e-12)  # scale invariant
        expected = stats.spearmanr(np.arange(w.size), w).statistic
        assert spearman_vs_index(w) == pytest.approx(expected)


def test_concentration_invalid_input() -> None:
    for bad in ([], [[0.5, 0.5]], [0.5, -0.1], [np.nan, 1.0], "abc"):
        with pytest.raises(ConfigError, match="w"):
            gini(bad)
    for k in (0, 4, 1.5, True):
        with pytest.raises(ConfigError, match="k"):
            top_k_share([0.2, 0.3, 0.5], k)
