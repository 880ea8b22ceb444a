"""RSQ and its GPTQ core against independent references.

- GPTQ equals the column-by-column optimal-brain-surgeon update written out in NumPy with an
  explicit inverse Hessian (no Cholesky, no blocks), for any block size.
- GPTQ with uniform token weights equals plain GPTQ: the weighted Hessian with ``r = 1`` is
  ``(2/M) XᵀX``, and RSQ with equal given weights reproduces a NumPy GPTQ pipeline on the ViT.
- GPTQ's layer-output error is at most round-to-nearest's on planted correlated inputs, and
  token weights lower the error on the weighted tokens.
- The Hadamard matrix equals scipy's and ``H Hᵀ = n I``; AttnCon equals a loop over heads.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, compressible_layers
from semcom.compression.gptq import finish_hessian, gptq, weighted_hessian
from semcom.compression.quantise import SCALE_BITS, round_to_nearest
from semcom.compression.rotation import hadamard, rotation
from semcom.compression.rsq import RSQ, attention_concentration, minmax_weights
from semcom.compression.uniform_quant import UniformQuant
from tests.semcom.quant_contract import (
    check_contract,
    images_for,
    small_model,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")


def obs_reference(w: np.ndarray, h: np.ndarray, bits: int, damp: float = 0.01) -> np.ndarray:
    """Column-by-column OBS quantisation with an explicitly updated inverse Hessian (NumPy)."""
    w, h = w.astype(np.float64).copy(), h.astype(np.float64).copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    m = 2 ** (bits - 1) - 1
    scale = (np.abs(w).max(axis=1, keepdims=True) / m).astype(np.float16).astype(np.float64)
    scale[scale == 0] = 1.0
    h += damp * np.mean(np.diag(h)) * np.eye(h.shape[0])
    hinv = np.linalg.inv(h)
    q = np.zeros_like(w)
    for c in range(w.shape[1]):
        q[:, c] = scale[:, 0] * np.clip(np.rint(w[:, c] / scale[:, 0]), -m, m)
        d = hinv[c, c]
        w[:, c + 1 :] -= np.outer((w[:, c] - q[:, c]) / d, hinv[c, c + 1 :])
        hinv = hinv - np.outer(hinv[:, c], hinv[c, :]) / d  # drop column c from the problem
    return q


def correlated_inputs(rows: int, cols: int, seed: int) -> np.ndarray:
    """Inputs of rank ``cols // 3`` plus a little noise: strongly correlated columns."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(cols // 3, cols))
    return rng.normal(size=(rows, cols // 3)) @ basis + 0.05 * rng.normal(size=(rows, cols))


def test_registered_with_paper() -> None:
    assert COMPRESSION.get("rsq") is RSQ
    assert COMPRESSION.info("rsq").paper == "arXiv:2503.01820"


@pytest.mark.parametrize("block_size", [1, 5, 128])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_gptq_equals_the_explicit_obs_update(block_size: int, bits: int) -> None:
    x = correlated_inputs(200, 24, seed=bits)
    x[:, 3] = 0.0  # one dead input
    w = np.random.default_rng(7).normal(size=(10, 24))
    h = 2.0 / x.shape[0] * x.T @ x
    ours = gptq(torch.from_numpy(w), torch.from_numpy(h), bits, block_size=block_size)
    np.testing.assert_allclose(ours.numpy(), obs_reference(w, h, bits), rtol=0, atol=1e-9)


def test_gptq_with_a_diagonal_hessian_is_round_to_nearest() -> None:
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h = torch.diag(torch.rand(16, generator=torch.Generator().manual_seed(1)) + 0.1).double()
    torch.testing.assert_close(gptq(w, h, 3), round_to_nearest(w, 3)[0], rtol=0, atol=1e-12)


def test_uniform_token_weights_give_the_plain_hessian() -> None:
    x = torch.from_numpy(correlated_inputs(50, 9, seed=0))
    plain, m = weighted_hessian(x)
    weighted, _ = weighted_hessian(x, torch.ones(50))
    np.testing.assert_allclose(weighted.numpy(), x.numpy().T @ x.numpy(), rtol=1e-12)
    torch.testing.assert_close(weighted, plain)
    torch.testing.assert_close(finish_hessian(plain, m), 2.0 / 50 * plain)
    r = torch.rand(50, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    h, _ = weighted_hessian(x, r)
    xs = x.numpy() * np.sqrt(r.numpy())[:, None]  # RSQ scales each token by sqrt(r)
    np.testing.assert_allclose(h.numpy(), xs.T @ xs, rtol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_gptq_output_error_is_at_most_round_to_nearest(seed: int) -> None:
    x = correlated_inputs(400, 32, seed)
    w = np.random.default_rng(100 + seed).normal(size=(16, 32))
    h = torch.from_numpy(2.0 / x.shape[0] * x.T @ x)
    q_gptq = gptq(torch.from_numpy(w), h, 3).numpy()
    q_rtn = round_to_nearest(torch.from_numpy(w), 3)[0].numpy()
    err_gptq = np.linalg.norm(x @ (w - q_gptq).T) ** 2
    err_rtn = np.linalg.norm(x @ (w - q_rtn).T) ** 2
    assert err_gptq <= err_rtn
    assert err_gptq < 0.5 * err_rtn  # by a wide margin on correlated inputs


@pytest.mark.parametrize("seed", range(3))
def test_token_weights_lower_the_error_on_important_tokens(seed: int) -> None:
    """Two token groups with different correlations; weighting group A 3:1 (RSQ's default
    range) lowers A's output error against plain GPTQ."""
    xa, xb = correlated_inputs(150, 24, seed), correlated_inputs(150, 24, seed + 50)
    x = np.vstack([xa, xb])
    w = torch.from_numpy(np.random.default_rng(seed).normal(size=(12, 24)))
    r = minmax_weights(torch.tensor([[3.0] * 150 + [1.0] * 150]), 1.0, 3.0).reshape(-1)
    plain = gptq(w, finish_hessian(*weighted_hessian(torch.from_numpy(x))), 3).numpy()
    scaled = gptq(w, finish_hessian(*weighted_hessian(torch.from_numpy(x), r)), 3).numpy()
    error_a = lambda q: np.linalg.norm(xa @ (w.numpy() - q).T) ** 2  # noqa: E731
    assert error_a(scaled) < error_a(plain)


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 64])
def test_hadamard_equals_scipy_and_is_orthogonal_up_to_n(n: int) -> None:
    h = hadamard(n)
    np.testing.assert_array_equal(h.numpy(), scipy.linalg.hadamard(n).astype(np.float64))
    np.testing.assert_allclose((h @ h.T).numpy(), n * np.eye(n))


@pytest.mark.parametrize(("n", "kind"), [(16, "hadamard"), (27, "orthogonal")])
def test_rotations_are_orthogonal(n: int, kind: str) -> None:
    r, got = rotation(n, torch.Generator().manual_seed(3))
    assert got == kind
    np.testing.assert_allclose((r @ r.T).numpy(), np.eye(n), atol=1e-12)


def test_attention_concentration_equals_a_loop_over_heads_and_queries() -> None:
    model = small_model("vit")
    with torch.no_grad():
        _, weights = model.encoder_trace(images_for(model, 3))
    a = weights[-1].numpy().astype(np.float64)  # [B, heads, N, N]
    ours = attention_concentration(weights[-1], 1.0, 3.0).numpy()
    for b in range(a.shape[0]):
        s = np.zeros(a.shape[-1])
        for h in range(a.shape[1]):
            for i in range(a.shape[2]):
                s += a[b, h, i]
        r = 1.0 + 2.0 * (s - s.min()) / (s.max() - s.min())
        np.testing.assert_allclose(ours[b], r / r.mean(), rtol=1e-6)


def numpy_gptq_pipeline(
    model: torch.nn.Module, x: torch.Tensor, bits: int
) -> dict[str, np.ndarray]:
    """Plain sequential GPTQ written independently: hooks capture each Linear's input on the
    partly quantised model, NumPy builds ``(2/M) XᵀX`` and runs :func:`obs_reference`."""
    out = {}
    for name, layer in compressible_layers(model):
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda m, i, o, seen=seen: seen.append(i[0]))
        with torch.no_grad():
            model.encode(x)
        handle.remove()
        rows = seen[0].reshape(-1, seen[0].shape[-1]).numpy().astype(np.float64)
        w = layer.weight.detach().numpy().astype(np.float64)
        q = obs_reference(w, 2.0 / rows.shape[0] * rows.T @ rows, bits)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(q))
        out[name] = q
    return out


def test_rsq_with_equal_token_weights_is_plain_gptq() -> None:
    model = small_model("vit")
    x = images_for(model, 8)
    n = model.n_features
    equal = RSQ(bits=3, importance="given", token_weights=[0.5] * n, rotate=False)
    given = equal.compress(model, x)
    uniform = RSQ(bits=3, importance="uniform", rotate=False).compress(model, x)
    reference = numpy_gptq_pipeline(small_model("vit"), x, 3)
    for name, layer in compressible_layers(given.model):
        np.testing.assert_allclose(layer.weight.detach().numpy(), reference[name], atol=1e-6)
    for (_, a), (_, b) in zip(
        compressible_layers(given.model), compressible_layers(uniform.model), strict=True
    ):
        assert torch.equal(a.weight, b.weight)
    assert given.details["importance"] == "given" and uniform.details["importance"] == "uniform"


def test_attention_weighting_changes_the_vit_result_and_auto_picks_it() -> None:
    model = small_model("vit")
    x = images_for(model, 8)
    attn = RSQ(bits=3, rotate=False).compress(model, x)
    plain = RSQ(bits=3, importance="uniform", rotate=False).compress(model, x)
    assert attn.details["importance"] == "attention"
    first_attn, first_plain = (next(p for n, p in r.model.named_parameters() if "qkv.weight" in n)
                               for r in (attn, plain))  # fmt: skip
    assert not torch.equal(first_attn, first_plain)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_gptq_beats_rtn_on_the_codec_and_rotation_keeps_8_bits_exact(kind: str) -> None:
    model = small_model(kind)
    x = images_for(model, 32)
    with torch.no_grad():
        z = model.encode(x)
        err = lambda m: float((m.encode(x) - z).pow(2).mean())  # noqa: E731
        gptq_err = err(RSQ(bits=3, importance="uniform", rotate=False).compress(model, x).model)
        rtn_err = err(UniformQuant(bits=3).compress(model).model)
        rotated_8 = err(RSQ(bits=8).compress(model, x).model)
    assert gptq_err < rtn_err
    assert rotated_8 < 1e-3 * float(z.pow(2).mean())


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_contract_and_reported_bits(kind: str) -> None:
    method = RSQ(bits=4)
    check_contract(method, kind)
    model = small_model(kind)
    result = method.compress(model, images_for(model))
    layers = compressible_layers(model)
    weights = sum(m.weight.numel() for _, m in layers)
    rows = sum(m.weight.shape[0] for _, m in layers)
    assert result.details["quantised_weight_bits"] == pytest.approx(4 + SCALE_BITS * rows / weights)
    assert result.details["online_rotation_flops"] > 0


@pytest.mark.parametrize(
    ("options", "field"),
    [({"bits": 1}, "bits"), ({"bits": 9}, "bits"), ({"importance": "x"}, "importance"),
     ({"importance": "given"}, "token_weights"), ({"token_weights": [1, -1]}, "token_weights"),
     ({"token_weights": [0, 0]}, "token_weights"), ({"token_weights": ["a"]}, "token_weights"),
     ({"importance": "uniform", "token_weights": [1.0]}, "importance"),
     ({"r_min": 0}, "r_min"), ({"r_min": 2.0, "r_max": 1.5}, "r_max"), ({"damp": -1}, "damp"),
     ({"rotate": "yes"}, "rotate"), ({"granularity": "group"}, "granularity"),
     ({"batch_size": 0}, "batch_size"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        RSQ(**options)


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [("mlp", {"importance": "attention"}, "importance"),
     ("cnn", {"token_weights": [1.0] * 16}, "token_weights"),
     ("vit", {"token_weights": [1.0, 2.0]}, "token_weights")],
)  # fmt: skip
def test_options_the_codec_cannot_meet_are_refused(kind: str, options: dict, field: str) -> None:
    model = small_model(kind)
    with pytest.raises(ConfigError, match=f"^{field}:"):
        RSQ(**options).compress(model, images_for(model))


def test_missing_or_bad_images_are_refused() -> None:
    model = small_model("mlp")
    with pytest.raises(ConfigError, match="^images:"):
        RSQ().compress(model)
    with pytest.raises(ConfigError, match="^images:"):
        RSQ().compress(model, torch.rand(4, 3, 8, 8))
