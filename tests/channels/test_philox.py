"""Philox4x32-10 against Random123's published known-answer vectors, and its conversions."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

from channels.kernels.cpu import box_muller, cos_sin_2pi, philox, uniform32, uniform52

U = np.uint64


@numba.njit
def _philox(c: np.ndarray, k: np.ndarray) -> tuple:
    return philox(c[0], c[1], c[2], c[3], k[0], k[1])


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [  # Random123 tests/kat_vectors, "philox4x32 10" lines
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        (
            [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
            [0xA4093822, 0x299F31D0],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
        ),
    ],
)
def test_known_answer_vectors(counter: list[int], key: list[int], expected: list[int]) -> None:
    out = _philox(np.array(counter, dtype=U), np.array(key, dtype=U))
    assert [int(v) for v in out] == expected


@numba.njit
def _normals(n: int) -> np.ndarray:
    out = np.empty(2 * n)
    for i in range(n):
        w0, w1, w2, w3 = philox(U(i), U(0), U(0), U(0), U(1), U(2))
        out[2 * i], out[2 * i + 1] = box_muller(uniform52(w1, w3), uniform32(w2))
    return out


def test_box_muller_gives_standard_normals() -> None:
    x = _normals(100_000)
    assert stats.kstest(x, "norm").pvalue > 0.01
    assert stats.kstest(x[1::2], "norm").pvalue > 0.01
    assert abs(np.corrcoef(x[0::2], x[1::2])[0, 1]) < 4 / np.sqrt(x.size / 2)


def test_uniforms_stay_inside_the_open_interval() -> None:
    top = U(0xFFFFFFFF)
    assert 0.0 < uniform32(U(0)) < uniform32(top) < 1.0
    assert 0.0 < uniform52(U(0), U(0)) < uniform52(top, top) < 1.0


@numba.njit
def _max_cos_sin_error(u: np.ndarray) -> float:
    worst = 0.0
    for x in u:
        c, s = cos_sin_2pi(x)
        angle = 2.0 * np.pi * x
        worst = max(worst, abs(c - np.cos(angle)), abs(s - np.sin(angle)))
    return worst


def test_polynomial_cos_sin_matches_libm() -> None:
    grid = np.linspace(0.0, 1.0, 1_000_001)[:-1]
    edges = np.array([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, np.nextafter(1.0, 0.0)])
    rand = np.random.default_rng(0).random(200_000)
    # the reference itself rounds 2*pi*x (about 1 ulp of 2*pi), hence 2e-15 and not 1e-16
    assert _max_cos_sin_error(np.concatenate([grid, edges, rand])) < 2e-15
