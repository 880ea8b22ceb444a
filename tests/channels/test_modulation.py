"""channels.modulation against Sionna (bit-exact labels, LLRs) and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from channels.errors import ConfigError
from channels.modulation import get_modulation
from channels.names import BITS_PER_SYMBOL

SIONNA_KIND = {"bpsk": ("pam", 1), "qpsk": ("qam", 2), "16qam": ("qam", 4),
               "64qam": ("qam", 6), "256qam": ("qam", 8)}  # fmt: skip
NAMES = list(BITS_PER_SYMBOL)


@pytest.mark.parametrize("name", NAMES)
def test_unit_energy_and_gray_neighbours(name: str) -> None:
    mod = get_modulation(name)
    assert mod.points.shape == (mod.order,)
    assert np.mean(np.abs(mod.points) ** 2) == pytest.approx(1.0, rel=1e-12)
    # nearest neighbours (minimum distance) differ in exactly one bit: the Gray property
    dist = np.abs(mod.points[:, None] - mod.points[None, :])
    dmin = np.min(dist[dist > 0])
    for a, b in zip(*np.nonzero(np.isclose(dist, dmin)), strict=True):
        assert np.sum(mod.bits[a] != mod.bits[b]) == 1


@pytest.mark.sionna
@pytest.mark.parametrize("name", NAMES)
def test_points_and_mapping_bit_exact_with_sionna(name: str) -> None:
    import torch
    from sionna.phy.mapping import Constellation, Mapper

    kind, k = SIONNA_KIND[name]
    mod = get_modulation(name)
    theirs = Constellation(kind, k, precision="double").points.numpy()
    np.testing.assert_allclose(mod.points, theirs, rtol=0, atol=1e-12)
    bits = np.random.default_rng(3).integers(0, 2, size=(4, 60 * k)).astype(np.uint8)
    mapped = Mapper(kind, k, precision="double")(torch.tensor(bits, dtype=torch.float64))
    np.testing.assert_allclose(mod.map(bits), mapped.numpy(), rtol=0, atol=1e-12)


@pytest.mark.sionna
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["app", "maxlog"])
def test_llr_and_hard_decisions_match_sionna(name: str, method: str) -> None:
    import torch
    from sionna.phy.mapping import Demapper

    kind, k = SIONNA_KIND[name]
    mod = get_modulation(name)
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, size=(3, 200 * k)).astype(np.uint8)
    no = 0.2
    y = mod.map(bits) + np.sqrt(no / 2) * (
        rng.standard_normal((3, 200)) + 1j * rng.standard_normal((3, 200))
    )
    ours = mod.demap_llr(y, no, method=method)
    demapper = Demapper(method, kind, k, precision="double")
    theirs = demapper(torch.tensor(y), torch.tensor(no, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)
    hard = Demapper(method, kind, k, hard_out=True, precision="double")
    theirs_hard = hard(torch.tensor(y), torch.tensor(no, dtype=torch.float64)).numpy()
    # max-log hard output is the nearest point; app hard output is the bitwise-MAP sign
    ours_hard = mod.demap_hard(y) if method == "maxlog" else (ours > 0).astype(np.uint8)
    np.testing.assert_array_equal(ours_hard, theirs_hard)


@pytest.mark.parametrize("name", NAMES)
def test_detection_is_nearest_point_and_round_trips(name: str) -> None:
    mod = get_modulation(name)
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2, size=(5, 300 * mod.bits_per_symbol)).astype(np.uint8)
    x = mod.map(bits)
    np.testing.assert_array_equal(mod.demap_hard(x), bits)
    y = x + 0.4 * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    brute = np.argmin(np.abs(y[..., None] - mod.points) ** 2, axis=-1)
    np.testing.assert_array_equal(mod.detect(y), brute)


@pytest.mark.parametrize("name", NAMES)
def test_maxlog_signs_are_hard_decisions(name: str) -> None:
    mod = get_modulation(name)
    rng = np.random.default_rng(11)
    y = rng.standard_normal(500) + 1j * rng.standard_normal(500)
    llr = mod.demap_llr(y, 0.3, method="maxlog")
    np.testing.assert_array_equal((llr > 0).astype(np.uint8), mod.demap_hard(y))


def test_bpsk_llr_closed_form() -> None:
    y = np.array([0.3, -1.2, 2.0]) + 0.5j
    np.testing.assert_allclose(get_modulation("bpsk").demap_llr(y, 0.25), -4 * y.real / 0.25)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: get_modulation("8psk"), "modulation"),
        (lambda: get_modulation("16qam").map(np.zeros(3, dtype=np.uint8)), "bits"),
        (lambda: get_modulation("qpsk").map(np.array([0, 2])), "bits"),
        (lambda: get_modulation("qpsk").demap_llr(np.zeros(2), 0.0), "no"),
        (lambda: get_modulation("qpsk").demap_llr(np.zeros(2), 1.0, method="x"), "method"),
    ],
)
def test_invalid_arguments(call, field: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=f"^{field}:"):
        call()
