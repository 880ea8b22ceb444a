"""BER Monte Carlo engine: counter-based streams, stop rules and Wilson confidence intervals.

A point (modulation, channel, Es/N0, ...) is simulated in *trials* of a fixed number of symbols.
Trial ``t`` of point ``p`` under seed ``s`` always draws the same random numbers (Philox keyed by
``s``, counter ``(symbol, t, p, stream)``), and the stop rule is applied trial by trial in order:
the simulation stops after the first trial at which ``errors >= min_errors`` or
``bits >= max_bits``. Trials are computed in parallel batches, but the result is that of the
sequential rule, so it is identical whatever the batch size or thread count. An optional
``progress`` callback sees the running counts after every batch (it cannot change them).

``max_bits`` is bounded only by the counter: a point may run at most ``2**32 - 1`` trials
(:func:`max_bits_limit`, between 1.7e13 bits for BPSK and 1.4e14 for 256-QAM). Runs near that
bound take hours to days on a CPU; callers show progress (``semcom ber`` does) rather than
refusing them.

Intervals: bit errors within a block of ``coherence`` symbols are correlated (block fading makes
whole blocks bad; even with ``coherence = 1`` the bits of one QAM symbol err together), so the
interval is computed from the independent blocks, not from bits: the variance of
the BER estimate is estimated from the per-block error counts ``e_b`` (``n`` bits each),
``Var = s_e^2 / (B n^2)``, and Wilson's interval is evaluated with the effective sample size
``n_eff = p (1 - p) / Var`` (Kish's design effect), clamped to ``[B, bits]``. With
independent bit errors ``n_eff = bits`` and this is the plain Wilson interval.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numba
import numpy as np
from scipy.stats import norm

from channels.awgn import esno_db_to_no
from channels.errors import ConfigError, check_int
from channels.fading import check_fading
from channels.kernels import philox
from channels.kernels.backend import BACKENDS, resolve_backend  # noqa: F401 (re-exported)
from channels.kernels.cpu import FADING_CODES, ber_trials
from channels.modulation import get_modulation, label_of_position
from channels.names import check_modulation
from channels.theory import ber_theory

SYMBOLS_PER_TRIAL = 4096
MAX_BATCH_TRIALS = 1024
MAX_BATCH_TRIALS_CUDA = 1 << 16
MIN_BATCH_TRIALS_CUDA = 256


def wilson_interval(
    successes: float, trials: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``trials`` may be non-integer).

    ``centre = (p + z^2/2n) / (1 + z^2/n)``,
    ``half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)`` with ``p = successes / trials`` and
    ``z`` the two-sided normal quantile of ``confidence``. Returns ``(0, 1)`` for ``trials = 0``.
    """
    if trials <= 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2.0 * trials)) / denom
    half = z * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return low, high


def block_interval(
    errors: int,
    square_sum: int,
    blocks: int,
    bits_per_block: int,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Wilson interval with the effective sample size of correlated errors in blocks.

    ``errors`` = sum of block error counts, ``square_sum`` = sum of their squares, ``blocks`` =
    number of independent blocks of ``bits_per_block`` bits each (see the module docstring).
    """
    bits = blocks * bits_per_block
    if blocks < 2 or errors == 0:
        return wilson_interval(errors, blocks if errors == 0 else bits, confidence)
    mean = errors / blocks
    var_e = max(square_sum / blocks - mean * mean, 0.0) * blocks / (blocks - 1)
    p = errors / bits
    var_p = var_e / (blocks * bits_per_block**2)
    n_eff = bits if var_p <= 0 else min(max(p * (1.0 - p) / var_p, blocks), bits)
    return wilson_interval(p * n_eff, n_eff, confidence)


def ratio_block_interval(
    errors: int,
    square_sum: int,
    cross_sum: int,
    size_square_sum: int,
    blocks: int,
    bits: int,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """:func:`block_interval` for independent blocks of *unequal* sizes ``n_b`` bits.

    ``errors = sum e_b``, ``square_sum = sum e_b^2``, ``cross_sum = sum e_b n_b``,
    ``size_square_sum = sum n_b^2``, ``bits = sum n_b``. The BER ``p = errors / bits`` is a
    ratio estimator; its variance ``sum_b (e_b - p n_b)^2 / (B (B - 1) nbar^2)`` (``nbar =
    bits / B``) gives ``n_eff = p (1 - p) / Var`` clamped to ``[B, bits]``, and Wilson's interval
    with it. With equal sizes this is :func:`block_interval` (up to rounding).
    """
    if blocks < 2 or errors == 0:
        return wilson_interval(errors, blocks if errors == 0 else bits, confidence)
    p = errors / bits
    residual = max(square_sum - 2.0 * p * cross_sum + p * p * size_square_sum, 0.0)
    mean_size = bits / blocks
    var_p = residual / (blocks * (blocks - 1) * mean_size**2)
    n_eff = bits if var_p <= 0 else min(max(p * (1.0 - p) / var_p, blocks), bits)
    return wilson_interval(p * n_eff, n_eff, confidence)


def point_index(*parts: object) -> int:
    """A stable 32-bit stream index for a point, from its defining parameters (CRC-32)."""
    return zlib.crc32(repr(parts).encode())


@dataclass(frozen=True)
class BerResult:
    """One simulated point. ``snr_db`` is Es/N0 in dB; interval at ``confidence``."""

    modulation: str
    channel: str
    snr_db: float
    ber: float
    ci_low: float
    ci_high: float
    errors: int
    bits: int
    theory_ber: float | None
    backend: str
    seconds: float
    rician_k: float
    coherence: int
    blocks: int
    seed: int
    point: int
    confidence: float

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def trial_shape(modulation: str, coherence: int) -> tuple[int, int]:
    """``(blocks, bits)`` of one trial: ``ceil(SYMBOLS_PER_TRIAL / coherence)`` blocks of
    ``coherence`` symbols, ``bits = blocks * coherence * bits_per_symbol``."""
    blocks = max(1, -(-SYMBOLS_PER_TRIAL // int(coherence)))
    return blocks, blocks * int(coherence) * get_modulation(modulation).bits_per_symbol


def max_bits_limit(modulation: str, coherence: int = 1) -> int:
    """The largest ``max_bits`` a point accepts: ``(2**32 - 1)`` trials (the Philox trial
    counter is 32-bit) of :func:`trial_shape` bits each.

    Examples:
        >>> max_bits_limit("bpsk")
        17592186040320
    """
    return (2**32 - 1) * trial_shape(modulation, coherence)[1]


def check_ber_arguments(
    modulation: str,
    channel: str,
    snr_db: float,
    rician_k: float,
    coherence: int,
    csi_error_var: float,
    min_errors: float,
    max_bits: float,
    seed: int,
    confidence: float,
    backend: str,
) -> None:
    """Validate every argument of :func:`simulate_ber`; one-line ConfigError on the first bad."""
    check_modulation(modulation)
    if check_fading(channel, rician_k) != "rician" and rician_k != 0:
        raise ConfigError(f"rician_k: {rician_k!r} is invalid for channel {channel!r}; allowed: 0")
    if not math.isfinite(snr_db):
        raise ConfigError(f"snr_db: {snr_db!r} is invalid; allowed: a finite number of dB")
    check_int("coherence", coherence, 1, coerce=True)
    if not math.isfinite(csi_error_var) or csi_error_var < 0:
        raise ConfigError(f"csi_error_var: {csi_error_var!r} is invalid; allowed: finite >= 0")
    min_errors = check_int("min_errors", min_errors, 1, coerce=True)
    max_bits = check_int("max_bits", max_bits, 1, coerce=True)
    if min_errors > max_bits:
        raise ConfigError(
            f"min_errors: {min_errors} is larger than max_bits={max_bits}; "
            "allowed: min_errors <= max_bits"
        )
    limit = max_bits_limit(modulation, coherence)
    if max_bits > limit:
        raise ConfigError(
            f"max_bits: {max_bits} is too large; allowed: at most {limit} for {modulation} "
            f"with coherence {int(coherence)} (2**32 - 1 trials of {limit // (2**32 - 1)} bits)"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed: {seed!r} is invalid; allowed: an integer, 0 <= seed < 2**64")
    check_int("seed", seed, 0)
    if int(seed) >= 2**64:
        raise ConfigError(f"seed: {seed!r} is invalid; allowed: 0 <= seed < 2**64")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence: {confidence!r} is invalid; allowed: 0 < confidence < 1")
    resolve_backend(backend)


def simulate_ber(
    modulation: str,
    channel: str = "awgn",
    snr_db: float = 0.0,
    *,
    rician_k: float = 0.0,
    coherence: int = 1,
    csi_error_var: float = 0.0,
    min_errors: int = 1000,
    max_bits: float = 1e9,
    seed: int = 0,
    point: int | None = None,
    confidence: float = 0.95,
    backend: str = "auto",
    batch_trials: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BerResult:
    """Uncoded BER of ``modulation`` over ``channel`` at Es/N0 = ``snr_db`` dB by Monte Carlo.

    Args:
        modulation: "bpsk", "qpsk", "16qam", "64qam" or "256qam" (Gray, unit energy).
        channel: "awgn", "rayleigh" or "rician" (flat block fading, ``E|h|^2 = 1``).
        snr_db: average Es/N0 per complex symbol in dB; ``no = 10^(-snr_db/10)``.
        rician_k: Rician K-factor (linear) for ``channel="rician"``.
        coherence: symbols per fading block (1 = independent fading per symbol).
        csi_error_var: variance of the receiver's channel-estimation error (0 = perfect CSI).
        min_errors, max_bits: stop after the first trial reaching either.
        seed: 64-bit seed; ``point``: the point's stream index (default: derived from the
            point's parameters, so a point's result does not depend on which others run).
        confidence: two-sided level of the Wilson interval.
        backend: "cpu" (the Numba kernel), "cuda" (its Numba-CUDA twin, the same random
            numbers: :mod:`channels.kernels.cuda_ber`) or "auto" (CUDA when a GPU is present);
            see :func:`channels.kernels.backend.resolve_backend`.
        batch_trials: trials per parallel launch (performance only; the result is the same).
        progress: called as ``progress(errors, bits)`` with the running totals (those of the
            stop rule, so the last call sees the result's counts) after every launch; for
            progress displays only, it cannot change the result. A launch is at most
            ``MAX_BATCH_TRIALS`` trials (4.2 million symbols) on the CPU.

    Returns:
        :class:`BerResult` with the estimate, the interval, counts and the closed-form BER of
        :mod:`channels.theory` for perfect CSI (``None`` with imperfect CSI).
    """
    check_ber_arguments(
        modulation, channel, snr_db, rician_k, coherence, csi_error_var,
        min_errors, max_bits, seed, confidence, backend,
    )  # fmt: skip
    modulation, channel = check_modulation(modulation), check_fading(channel, rician_k)
    min_errors, max_bits, coherence = int(min_errors), int(max_bits), int(coherence)
    mod = get_modulation(modulation)
    m = mod.bits_per_symbol
    if point is None:
        point = point_index(modulation, channel, float(snr_db), float(rician_k), coherence,
                            float(csi_error_var))  # fmt: skip
    key0, key1 = philox.seed_key(seed)
    blocks_per_trial, bits_per_trial = trial_shape(modulation, coherence)
    table = label_of_position(m) if m > 1 else np.zeros((1, 1), dtype=np.int64)
    los = math.sqrt(rician_k / (rician_k + 1.0)) if channel == "rician" else 0.0
    scatter = math.sqrt(1.0 / (rician_k + 1.0)) if channel == "rician" else 1.0
    sigma = math.sqrt(float(esno_db_to_no(snr_db)) / 2.0)
    theory = _theory(modulation, channel, snr_db, rician_k) if csi_error_var == 0 else None

    backend = resolve_backend(backend)
    if backend == "cuda":
        from channels.kernels.cuda_ber import ber_trials_cuda as kernel

        low_batch, high_batch = MIN_BATCH_TRIALS_CUDA, MAX_BATCH_TRIALS_CUDA
    else:
        kernel = ber_trials
        low_batch, high_batch = numba.get_num_threads(), MAX_BATCH_TRIALS
    adaptive = batch_trials is None
    if adaptive:  # aim for a few launches, guided by theory when we have it
        guess = theory if theory is not None else 0.5
        needed = max_bits / bits_per_trial
        if guess > 0:  # theory 0 (underflow at high SNR): errors are not expected at all
            needed = min(min_errors / (guess * bits_per_trial), needed)
        batch_trials = int(min(max(needed / 4, low_batch), high_batch))
    batch = max(1, int(batch_trials))

    constants = (
        blocks_per_trial, coherence, key0, key1, np.uint64(point), m,
        mod.points.real.copy(), mod.points.imag.copy(), table, sigma,
        FADING_CODES[channel], los, scatter, math.sqrt(csi_error_var),
    )  # fmt: skip
    start = time.perf_counter()
    errors = squares = trials = 0
    done = False
    while not done:
        errors_buf = np.zeros(batch, dtype=np.int64)
        squares_buf = np.zeros(batch, dtype=np.int64)
        if backend == "cuda":
            kernel(trials, batch, *constants, errors_buf, squares_buf)
        else:
            with numba.parallel_chunksize(1):  # dynamic: a busy core does not stall the launch
                kernel(trials, batch, *constants, errors_buf, squares_buf)
        # the sequential stop rule, trial by trial: stop after the first trial t with
        # errors >= min_errors or bits >= max_bits
        cum_errors = errors + np.cumsum(errors_buf)
        cum_bits = (trials + np.arange(1, batch + 1, dtype=np.int64)) * bits_per_trial
        hit = np.flatnonzero((cum_errors >= min_errors) | (cum_bits >= max_bits))
        used = int(hit[0]) + 1 if hit.size else batch
        done = hit.size > 0
        errors += int(errors_buf[:used].sum())
        squares += int(squares_buf[:used].sum())
        trials += used
        if adaptive and not done:
            batch = _next_batch(batch, errors, trials, min_errors, max_bits, bits_per_trial,
                                low_batch, high_batch)  # fmt: skip
        if progress is not None:
            progress(errors, trials * bits_per_trial)
    seconds = time.perf_counter() - start

    bits = trials * bits_per_trial
    blocks = trials * blocks_per_trial
    low, high = block_interval(errors, squares, blocks, coherence * m, confidence)
    return BerResult(
        modulation=modulation, channel=channel, snr_db=float(snr_db), ber=errors / bits,
        ci_low=low, ci_high=high, errors=errors, bits=bits, theory_ber=theory,
        backend=backend, seconds=seconds, rician_k=float(rician_k), coherence=coherence,
        blocks=blocks, seed=int(seed), point=int(point), confidence=confidence,
    )  # fmt: skip


def _next_batch(
    batch: int,
    errors: int,
    trials: int,
    min_errors: int,
    max_bits: int,
    bits_per_trial: int,
    low: int,
    high: int,
) -> int:
    """Trials for the next launch, grown when the first guess was low (speed only: the result
    does not depend on it).

    Never less than the last launch: with errors seen, half the trials still expected at the
    observed rate, ``(min_errors - errors) trials / errors / 2``, if larger; with none, twice
    the last launch (a high-SNR point whose theory underflowed, or imperfect CSI). Clamped to
    ``[low, high]`` and to the trials left before ``max_bits``.
    """
    left = -(-(max_bits - trials * bits_per_trial) // bits_per_trial)
    want = 0.5 * (min_errors - errors) * trials / errors if errors else 2.0 * batch
    return max(1, min(int(min(max(want, batch, low), high)), left))


def _theory(modulation: str, channel: str, snr_db: float, rician_k: float) -> float | None:
    """Closed-form average BER from :mod:`channels.theory`."""
    esno = 10.0 ** (snr_db / 10.0)
    return float(ber_theory(modulation, channel, esno, k_factor=rician_k))
