"""``layerwise-quant``: the mean bits over layers equal the fractional target exactly, the more
important layers get the extra bit, an identity layer has LIM 0, ZD and CKA match independent
formulas (scipy's z-score, feature-space CKA), all layers at ``b`` equal uniform quantisation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, compressible_layers
from semcom.compression.layerwise_quant import (
    LayerwiseQuant,
    lim_score,
    linear_cka,
    quant_units,
    zd_share,
)
from semcom.compression.quantise import SCALE_BITS
from semcom.compression.uniform_quant import UniformQuant
from tests.semcom.quant_contract import (
    check_contract,
    images_for,
    small_model,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_registered_with_paper() -> None:
    assert COMPRESSION.get("layerwise-quant") is LayerwiseQuant
    assert COMPRESSION.info("layerwise-quant").paper == "arXiv:2406.17415"


def test_units() -> None:
    assert [u for u, _, _ in quant_units(small_model("vit"))] == ["embed", "enc_blocks.0", "to_z"]
    assert len(quant_units(small_model("vit"))[1][2]) == 4  # qkv, out, mlp.0, mlp.2
    assert [u for u, _, _ in quant_units(small_model("cnn"))] == [
        n for n, _ in compressible_layers(small_model("cnn"))
    ]


@pytest.mark.parametrize(
    ("kind", "target"),
    [("mlp", 2 + 1 / 3), ("mlp", 3 + 2 / 3), ("cnn", 3.25), ("cnn", 4.5), ("cnn", 5.75),
     ("vit", 3 + 1 / 3), ("vit", 6), ("vit", 7 + 2 / 3)],
)  # fmt: skip
@pytest.mark.parametrize("importance", ["lim", "zd", "random"])
def test_mean_bits_over_layers_equal_the_fractional_target(
    kind: str, target: float, importance: str
) -> None:
    model = small_model(kind)
    result = LayerwiseQuant(bits=target, importance=importance).compress(model, images_for(model))
    unit_bits = np.array(result.details["unit_bits"])
    assert unit_bits.sum() == round(target * unit_bits.size)  # exact, in whole bits
    assert unit_bits.mean() == pytest.approx(target, abs=1e-12)
    assert set(unit_bits) <= {int(np.floor(target)), int(np.floor(target)) + 1}
    # monotone: a more important layer never gets fewer bits
    scores = np.array(result.details["scores"])
    for i in range(scores.size):
        for j in range(scores.size):
            if scores[i] > scores[j]:
                assert unit_bits[i] >= unit_bits[j]
    # measured bits: each quantised weight at its layer's bits plus its scales, the rest at 32
    bits_of = dict(zip(result.details["units"], unit_bits, strict=True))
    stored, quantised = 0.0, 0
    for unit, _, layers in quant_units(model):
        for _, layer in layers:
            stored += bits_of[unit] * layer.weight.numel() + SCALE_BITS * layer.weight.shape[0]
            quantised += layer.weight.numel()
    params = result.size.params
    expected = (stored + 32 * (params - quantised)) / params
    assert result.size.weight_bits == pytest.approx(expected)
    # and the stored weights use no more levels than their bits allow
    compressed = dict(compressible_layers(result.model))
    for unit, _, layers in quant_units(model):
        for name, _ in layers:
            rows = compressed[name].weight.detach().reshape(compressed[name].weight.shape[0], -1)
            assert max(row.unique().numel() for row in rows) <= 2 ** bits_of[unit] - 1


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_integer_target_equals_uniform_quantisation(kind: str) -> None:
    model = small_model(kind)
    ours = LayerwiseQuant(bits=4, importance="zd").compress(model)
    uniform = UniformQuant(bits=4).compress(model)
    for (_, a), (_, b) in zip(
        compressible_layers(ours.model), compressible_layers(uniform.model), strict=True
    ):
        assert torch.equal(a.weight, b.weight)
    assert ours.size == uniform.size


def test_identity_block_has_lim_zero() -> None:
    model = small_model("vit")
    with torch.no_grad():  # the block's residual branches output zero: block(t) = t
        for layer in (model.enc_blocks[0].attn.out, model.enc_blocks[0].mlp[2]):
            layer.weight.zero_()
            layer.bias.zero_()
    scores = LayerwiseQuant(bits=3, importance="lim").scores(model, images_for(model))
    assert scores[1] == pytest.approx(0.0, abs=1e-12)
    assert scores[0] > 0.0 and scores[2] > 0.0


def test_isometric_width_change_has_lim_zero_and_cka_matches_feature_space_formula() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(9, 6, generator=g, dtype=torch.float64))  # [9, 6]
    assert lim_score(x, x @ q.T) == pytest.approx(0.0, abs=1e-12)  # widths differ: CKA path
    assert lim_score(x, x) == pytest.approx(0.0, abs=1e-12)  # same shape: cosine path
    y = torch.tanh(x @ torch.randn(6, 4, generator=g, dtype=torch.float64))
    xc, yc = (x - x.mean(0)).numpy(), (y - y.mean(0)).numpy()
    reference = np.linalg.norm(yc.T @ xc) ** 2 / (
        np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    )
    assert linear_cka(x, y) == pytest.approx(reference, rel=1e-10)


def test_lim_cosine_equals_a_loop_over_tokens() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 5, 8, generator=g), torch.randn(3, 5, 8, generator=g)
    an, bn = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    cos = [
        an[i, j] @ bn[i, j] / np.linalg.norm(an[i, j]) / np.linalg.norm(bn[i, j])
        for i in range(3)
        for j in range(5)
    ]
    assert lim_score(a, b) == pytest.approx(1.0 - np.mean(cos), rel=1e-6)


def test_zd_equals_the_scipy_z_score_share() -> None:
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(2)) ** 3  # heavy tails
    z = scipy.stats.zscore(w.numpy().astype(np.float64).reshape(-1))
    assert zd_share(w) == pytest.approx(np.mean(np.abs(z) > 1.0))


def test_gptq_quantiser_lowers_the_error() -> None:
    model = small_model("mlp")
    x = images_for(model, 64)
    with torch.no_grad():
        z = model.encode(x)
        err = lambda m: float((m.encode(x) - z).pow(2).mean())  # noqa: E731
        rtn = err(LayerwiseQuant(bits=2 + 1 / 3).compress(model, x).model)
        gptq = err(LayerwiseQuant(bits=2 + 1 / 3, quantiser="gptq").compress(model, x).model)
    assert gptq < rtn


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_contract(kind: str) -> None:
    check_contract(LayerwiseQuant(bits=3.5 if kind == "cnn" else 3 + 1 / 3), kind)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"bits": 1.5}, "bits"), ({"bits": 8.5}, "bits"), ({"bits": "3"}, "bits"),
     ({"importance": "cos"}, "importance"), ({"quantiser": "awq"}, "quantiser"),
     ({"damp": 0}, "damp"), ({"batch_size": 0}, "batch_size"), ({"seed": 1.5}, "seed")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        LayerwiseQuant(**options)


def test_a_target_the_layers_cannot_meet_is_refused() -> None:
    model = small_model("cnn")  # 4 layers: multiples of 1/4 only
    with pytest.raises(ConfigError, match=r"^bits: 3\.3 .*3 \+ k/4"):
        LayerwiseQuant(bits=3.3).compress(model, images_for(model))


@pytest.mark.parametrize(("options", "count"), [({}, 1), ({"quantiser": "gptq"}, 0)])
def test_missing_images_are_refused(options: dict, count: int) -> None:
    model = small_model("mlp")
    images = images_for(model, count) if count else None
    with pytest.raises(ConfigError, match="^images:"):
        LayerwiseQuant(bits=3, **options).compress(model, images)
