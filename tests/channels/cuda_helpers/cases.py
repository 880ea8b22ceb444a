"""Inputs shared by the CUDA twin tests and :mod:`run_cudasim` (built from seeds, so that the
test process and the simulator subprocess rebuild identical arrays)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from channels.kernels import philox
from channels.modulation import get_modulation, label_of_position

KAT = [  # Random123 tests/kat_vectors, "philox4x32 10": counter, key, expected output
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]

# BER kernel cases: (modulation, fading code, coherence, csi_sigma, blocks_per_trial, n_trials,
# first_trial, sigma); every modulation, AWGN / Rayleigh / Rician, perfect and imperfect CSI,
# blocks shorter and longer than an item
BER_CASES = [
    ("bpsk", 0, 1, 0.0, 24, 2, 0, 0.7),
    ("qpsk", 1, 1, 0.0, 20, 2, 5, 0.5),
    ("16qam", 2, 3, 0.0, 6, 2, 2**32 - 2, 0.3),
    ("64qam", 1, 4, 0.4, 4, 2, 9, 0.1),
    ("256qam", 2, 40, 0.2, 2, 1, 1, 0.05),
]
# (symbols_per_thread, threads_per_block, max_blocks, fast): 40-symbol blocks are split into
# parts; fast = the float32 kernel, else the float64 one
LAUNCHES = [(64, 32, None, True), (7, 8, 2, False), (16, 5, 1, True), (5, 16, 3, False)]
# (modulation, channel, Es/N0 dB) of the fast mode's small theory check under the simulator:
# one trial of 4096 symbols each, BER from 2e-2 to 2e-1
FAST_THEORY_POINTS = [("bpsk", "awgn", 0.0), ("qpsk", "rayleigh", 6.0), ("16qam", "awgn", 8.0)]


def ber_arguments(case: tuple, seed: int = 2**40 + 3, point: int = 4242) -> tuple:
    """The positional arguments of ``ber_trials`` (without the two output arrays)."""
    name, fading, coherence, csi, blocks, n_trials, first, sigma = case
    mod = get_modulation(name)
    m = mod.bits_per_symbol
    table = label_of_position(m) if m > 1 else np.zeros((1, 1), dtype=np.int64)
    key0, key1 = philox.seed_key(seed)
    k = 2.0  # Rician K-factor
    los, scatter = (math.sqrt(k / (k + 1)), math.sqrt(1 / (k + 1))) if fading == 2 else (0.0, 1.0)
    return (first, n_trials, blocks, coherence, key0, key1, np.uint64(point), m,
            mod.points.real.copy(), mod.points.imag.copy(), table, sigma, fading, los, scatter,
            csi)  # fmt: skip


# link cases: (seed of the inputs, B, N, L, Q, no); Q one int or a tuple, one per feature
LINK_CASES = [
    (0, 3, 6, 3, 5, 1.0),
    (1, 2, 5, 4, 8, 0.5),
    (2, 2, 3, 2, 16, 2.0),
    (3, 2, 4, 3, 8, 0.0),
    (4, 2, 5, 3, (3, 8, 5, 16, 1), 1.0),
    (5, 2, 4, 2, (2, 7, 6, 4), 0.0),
]


def link_inputs(case: tuple) -> dict:
    """Keyword arguments of ``transmit_codes`` for a link case (a mixed allocation)."""
    seed, b, n, length, q, no = case
    rng = np.random.default_rng(seed)
    m = rng.choice([0, 1, 2, 4, 6, 8], size=(b, n))
    m[0, :5] = [0, 1, 4, 6, 8][:n]
    power = rng.uniform(2.0, 200.0, (b, n))
    power[-1, -1] = 0.0  # sent on pure noise
    if isinstance(q, int):
        top = 2**q
    else:  # per feature: codes of feature i below 2^Q_i
        q = np.array(q)
        top = (2**q)[None, :, None]
    return dict(
        codes=rng.integers(0, top, (b, n, length)), bits_per_symbol=m,
        h=(rng.standard_normal((b, n)) + 1j * rng.standard_normal((b, n))) / math.sqrt(2),
        power=power, no=no, bits_per_scalar=q, seed=2**63 + seed, point=77 + seed,
        trials=rng.integers(0, 2**32, b),
    )  # fmt: skip


def link_arguments(inputs: dict) -> tuple:
    """The positional arguments of ``link_frames`` (without the outputs) for ``link_inputs``."""
    from channels.kernels.link_cpu import LABEL_AT, LEVEL_I, LEVEL_Q

    key0, key1 = philox.seed_key(inputs["seed"])
    h = inputs["h"]
    return (inputs["codes"].astype(np.int64), inputs["bits_per_symbol"].astype(np.int64),
            h.real.copy(), h.imag.copy(), inputs["power"], math.sqrt(inputs["no"] / 2.0),
            inputs["bits_per_scalar"], key0, key1, np.uint64(inputs["point"]),
            inputs["trials"].astype(np.uint64), LEVEL_I, LEVEL_Q, LABEL_AT)  # fmt: skip


def distortion_inputs(case: tuple, codes_hat: np.ndarray) -> dict:
    """Keyword arguments of ``feature_distortion`` for the received codes of a link case."""
    seed, b, n, length, q, _ = case
    rng = np.random.default_rng(100 + seed)
    return dict(z=rng.uniform(-1.2, 1.2, (b, n, length)), codes_hat=codes_hat,
                weights=rng.uniform(0.0, 1.0, n), bits_per_scalar=q)  # fmt: skip


def run_ber(kernel: Callable, case: tuple, **launch: object) -> list[list[int]]:
    """``[errors, squares]`` per trial of ``kernel`` (``ber_trials`` or a twin, with the
    keyword arguments ``launch``) on a BER case."""
    args = ber_arguments(case)
    errors = np.zeros(args[1], dtype=np.int64)
    squares = np.zeros(args[1], dtype=np.int64)
    kernel(*args, errors, squares, **launch)
    return [errors.tolist(), squares.tolist()]


def run_link(kernel: Callable, inputs: dict, **launch: object) -> tuple[np.ndarray, np.ndarray]:
    """``(codes_out, errors_out)`` of ``kernel`` (``link_frames`` or a twin, with the keyword
    arguments ``launch``) on ``link_inputs``."""
    args = link_arguments(inputs)
    codes_out = np.empty(args[0].shape, dtype=np.int64)
    errors_out = np.empty(args[1].shape, dtype=np.int64)
    kernel(*args, codes_out, errors_out, **launch)
    return codes_out, errors_out


# (model, K, prefix, trials, K-factor) of channels.fading.trial_fading_device: 40 consecutive
# trials (about 8 pass the ziggurat's wedge test) and trials 82 and 454, whose streams hold a
# normal in the tail (|z| > 3.65) for the first prefix; a multi-word seed and the extreme trials
FADING_CASES = [
    ("rayleigh", 16, (2**40 + 3, 4242), list(range(40)) + [82, 454], 0.0),
    ("rician", 16, (2**40 + 3, 4242), [82, 454, 7, 2**32 - 1], 3.0),
    ("rician", 5, (2**70 + 11, 0, 9), [0, 1, 2], 0.0),
    ("awgn", 4, (1, 2), [0, 5], 0.0),
]
