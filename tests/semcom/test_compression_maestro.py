"""Maestro: ordered dropout over ranks recovers the PCA order on a linear auto-encoder (against
``numpy.linalg.svd``), the low-rank layers against torch and Eckart-Young, the truncation against
brute force, and the compression family contract."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, Maestro, compressible_layers, measure_encoder
from semcom.compression.low_rank import OrderedLowRank
from semcom.compression.maestro import train_ordered, truncation_ranks
from tests.semcom.compression_helpers import (
    check_untouched_and_deterministic,
    codec_round_trip,
    compress_small,
    digits,
    small_models,
    trained_mlp,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_registered_with_its_paper() -> None:
    assert COMPRESSION.get("maestro") is Maestro
    assert COMPRESSION.info("maestro").paper == "arXiv:2308.14929"


def _max_principal_angle(a: np.ndarray, b: np.ndarray) -> float:
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.arccos(np.clip(cosines, -1.0, 1.0)).max())


def _linear_autoencoder(seed: int, rank: int) -> tuple[OrderedLowRank, torch.Generator]:
    generator = torch.Generator().manual_seed(seed)
    layer = OrderedLowRank(nn.Linear(64, 64, bias=False).double(), rank=rank)
    with torch.no_grad():
        layer.U.normal_(0.0, 0.1, generator=generator)
        layer.V.normal_(0.0, 0.1, generator=generator)
    return layer, generator


@pytest.fixture(scope="module")
def digits_moments() -> tuple[torch.Tensor, np.ndarray]:
    """Rows ``R`` with ``RᵀR = XᵀX / N`` for the centred digits ``X`` (a QR, not an SVD: the
    auto-encoder loss depends on the data only through this second moment), and the PCA
    directions from ``numpy.linalg.svd`` of ``X`` (rows of ``Vᵀ``)."""
    x = digits().reshape(-1, 64).double()
    x = x - x.mean(dim=0)
    r = torch.linalg.qr(x, mode="r")[1] / np.sqrt(x.shape[0])
    _, _, vt = np.linalg.svd(x.numpy(), full_matrices=False)
    return r, vt


def test_ordered_dropout_recovers_pca_on_a_linear_autoencoder(digits_moments) -> None:  # noqa: ANN001
    """``x̂ = U_b V_bᵀ x`` trained with ``b`` drawn uniformly from 1..6 (the method's own LoD
    loop): ``span(U[:, :k])`` is the top-k PCA subspace for every k (principal angles < 1e-2)."""
    r, vt = digits_moments
    layer, generator = _linear_autoencoder(seed=1, rank=6)

    def loss() -> torch.Tensor:
        return ((layer(r) - r) ** 2).sum()

    train_ordered([layer], loss, list(layer.parameters()), steps=5000, lr=1e-2,
                  sampling="layer", generator=generator)  # fmt: skip
    u = layer.U.detach().numpy()
    angles = [_max_principal_angle(u[:, :k], vt[:k].T) for k in range(1, 7)]
    assert max(angles) < 1e-2, angles


def test_without_ordered_dropout_only_the_whole_subspace_is_found(digits_moments) -> None:  # noqa: ANN001
    """Control: always at full rank, span(U) is the top-6 subspace but its prefixes are not the
    PCA prefixes: the order comes from the rank sampling."""
    r, vt = digits_moments
    layer, _ = _linear_autoencoder(seed=1, rank=6)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in range(2000):
        loss = ((layer(r) - r) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    u = layer.U.detach().numpy()
    assert _max_principal_angle(u, vt[:6].T) < 1e-2
    assert _max_principal_angle(u[:, :1], vt[:1].T) > 0.1


@pytest.mark.parametrize(
    ("kind", "args", "kwargs"),
    [(nn.Linear, (12, 7), {}), (nn.Linear, (5, 9), {"bias": False}),
     (nn.Conv2d, (3, 6, 3), {"stride": 2, "padding": 1}),
     (nn.Conv2d, (4, 5, 5), {"padding": 2, "bias": False})],
)  # fmt: skip
def test_low_rank_layer_is_exact_at_full_rank_and_eckart_young_below(kind, args, kwargs) -> None:  # noqa: ANN001
    with torch.random.fork_rng():
        torch.manual_seed(0)
        layer = kind(*args, **kwargs).double()
        shape = (2, args[0]) if kind is nn.Linear else (2, args[0], 8, 8)
        x = torch.randn(*shape, dtype=torch.float64)
    olr = OrderedLowRank(layer)
    torch.testing.assert_close(olr(x), layer(x), rtol=1e-10, atol=1e-10)
    w = layer.weight.detach().reshape(layer.weight.shape[0], -1).numpy()
    p, s, qt = np.linalg.svd(w, full_matrices=False)
    for b in range(1, olr.rank + 1):
        best = (p[:, :b] * s[:b]) @ qt[:b]  # the best rank-b approximation (Eckart-Young)
        np.testing.assert_allclose(olr.weight(b).detach().reshape(w.shape).numpy(), best,
                                   atol=1e-10)  # fmt: skip
        exported = olr.export(b)
        torch.testing.assert_close(exported(x), olr(x, rank=b), rtol=1e-10, atol=1e-10)
        m, n = w.shape
        factorised = b * (m + n) < m * n
        assert isinstance(exported, nn.Sequential) == factorised
        params = sum(p.numel() for p in exported.parameters())
        bias = m if layer.bias is not None else 0
        assert params == (b * (m + n) if factorised else m * n) + bias


def test_hierarchical_norms_are_nested_tails() -> None:
    with torch.random.fork_rng():
        olr = OrderedLowRank(nn.Linear(6, 4))
    u, v = olr.U.detach().numpy(), olr.V.detach().numpy()
    expected = [np.sqrt((u[:, k:] ** 2).sum() + (v[:, k:] ** 2).sum()) for k in range(4)]
    np.testing.assert_allclose(olr.hierarchical_norms().detach().numpy(), expected, rtol=1e-6)


def test_group_lasso_shrinks_the_tail_most() -> None:
    """With no task loss, the hierarchical penalty shrinks component k in proportion to the k + 1
    groups it belongs to: after training, norms fall more the later the component."""
    olr = OrderedLowRank(nn.utils.skip_init(nn.Linear, 8, 8, dtype=torch.float64))
    with torch.no_grad():  # equal components, so only the penalty orders them
        olr.U.copy_(torch.eye(8, dtype=torch.float64))
        olr.V.copy_(torch.eye(8, dtype=torch.float64))
    train_ordered([olr], lambda: olr.U.sum() * 0.0, [olr.U, olr.V], steps=50, lr=1e-2,
                  group_lasso=1.0, generator=torch.Generator().manual_seed(0))  # fmt: skip
    norms = (olr.U.detach() ** 2).sum(0) + (olr.V.detach() ** 2).sum(0)
    assert bool((norms[1:] < norms[:-1]).all()), norms


def test_truncation_is_the_brute_force_best_nested_cut() -> None:
    """Removing the smallest nested norms gives the ranks that minimise the removed norm mass
    over every cut that keeps a prefix (>= 1) of each layer."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        sizes = rng.integers(1, 5, size=rng.integers(1, 4))
        norms = [torch.tensor(np.sort(rng.random(int(s)))[::-1].copy()) for s in sizes]
        removable = int(sum(sizes) - len(sizes))
        remove = int(rng.integers(0, removable + 1))
        ranks = truncation_ranks(norms, remove)
        assert sum(ranks) == sum(sizes) - remove and min(ranks) >= 1

        def mass(rs, norms=norms) -> float:
            return sum(float(g[b:].sum()) for g, b in zip(norms, rs, strict=True))

        best = min(
            mass(rs)
            for rs in itertools.product(*[range(1, int(s) + 1) for s in sizes])
            if sum(rs) == sum(sizes) - remove
        )
        assert mass(ranks) == pytest.approx(best)


def _exported_rank(module: nn.Module) -> int:
    if isinstance(module, nn.Sequential):
        first = module[0]
        return first.out_features if isinstance(first, nn.Linear) else first.out_channels
    return int(torch.linalg.matrix_rank(module.weight.detach().reshape(module.weight.shape[0], -1)))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.8])
def test_budget_is_hit_exactly_and_measured(sparsity: float) -> None:
    model = trained_mlp()
    result = Maestro(sparsity=sparsity, steps=20).compress(model, digits()[:128])
    full = {"encoder.1": 32, "encoder.3": 16, "encoder.5": 16}
    ranks = {name: _exported_rank(result.model.get_submodule(name)) for name in full}
    assert ranks == result.details["ranks"]
    assert sum(full.values()) - sum(ranks.values()) == round(sparsity * 64)
    assert result.details["removed_components"] == round(sparsity * 64)
    shapes = {"encoder.1": (32, 64), "encoder.3": (16, 32), "encoder.5": (32, 16)}
    expected = 2  # the two PReLUs
    for name, (m, n) in shapes.items():
        b = ranks[name]
        expected += (b * (m + n) if b * (m + n) < m * n else m * n) + m
    assert result.size.params == expected


def test_training_improves_on_plain_svd_truncation() -> None:
    model = trained_mlp()
    x = digits()[:256]
    svd = Maestro(sparsity=0.5, steps=0).compress(model, x).details["loss_after"]
    lod = Maestro(sparsity=0.5, steps=100).compress(model, x).details["loss_after"]
    assert lod < svd


def test_input_unchanged_and_deterministic() -> None:
    method = Maestro(sparsity=0.4, steps=15, batch_size=50, sampling="layer")
    check_untouched_and_deterministic(method, trained_mlp(), digits()[:150])


def test_global_random_state_is_not_consumed() -> None:
    model = trained_mlp()
    state = torch.get_rng_state()
    Maestro(sparsity=0.6, steps=3).compress(model, digits()[:32])
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_compressed_codec_keeps_its_shapes(index: int) -> None:
    model, result = compress_small(Maestro(sparsity=0.6, steps=3), index)
    assert codec_round_trip(result.model) == codec_round_trip(model)
    full = sum(min(m.weight.shape[0], m.weight[0].numel()) for _, m in compressible_layers(model))
    assert sum(result.details["ranks"].values()) == full - round(0.6 * full)
    assert result.size.params <= measure_encoder(model, model.input_shape).params


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.0}, "sparsity"), ({"sparsity": None}, "sparsity"), ({"steps": -1}, "steps"),
     ({"lr": 0.0}, "lr"), ({"group_lasso": -1e-3}, "group_lasso"),
     ({"sampling": "one"}, "sampling"), ({"batch_size": 0}, "batch_size"),
     ({"seed": "x"}, "seed"), ({"ranking": "raw"}, "ranking")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        Maestro(**options)


def test_unmeetable_budget_and_missing_images_are_refused() -> None:
    model = small_models()[0]  # ranks 16 + 8 + 8 = 32; each layer keeps one: at most 29 removed
    with pytest.raises(ConfigError, match=r"^sparsity: 0\.99 .*0\.9062"):
        Maestro(sparsity=0.99).compress(model, torch.rand(4, 1, 8, 8))
    with pytest.raises(ConfigError, match="^images:"):
        Maestro().compress(model)
