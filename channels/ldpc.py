"""5G NR LDPC coding through Sionna (batched, on :func:`fec_device`), and the coded-BER measurement.

A block of ``k`` information bits sent with entry ``<m>-r<rate>`` (:mod:`channels.coded`) is
encoded by Sionna's ``LDPC5GEncoder(k, n)`` with ``n = beta(m) ceil(k / (r beta(m)))`` (the
codeword fills whole symbols; the effective rate ``k/n`` is ``r`` up to that rounding), and
decoded by ``LDPC5GDecoder`` (belief propagation, ``boxplus-phi`` check-node update, 20
flooding iterations, hard information bits out). LLRs follow Sionna's sign convention
(``ln P(b=1|y) - ln P(b=0|y)``), the one of :mod:`channels.modulation`.

:func:`measure_point` measures the post-decoding bit-error rate of one entry at one
``Es/N0`` over AWGN with Sionna's own ``Mapper`` / ``Demapper("app")``; the bits and the noise
come from a NumPy generator keyed by ``(seed, entry, point)``, so a point is reproducible.
Sionna and torch load on first use.

Examples:
    >>> codeword_length(512, "16qam-r1/2")
    1024
    >>> codeword_length(512, "qpsk-r5/6")
    616
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from channels.coded import MAX_BLOCK_BITS, entry_symbols, parse_entry
from channels.names import BITS_PER_SYMBOL

NUM_ITER = 20
"""Belief-propagation iterations of the decoder."""

DECODE_CHUNK = 256
"""Blocks per decoder call (Sionna's decoder keeps messages for every edge of every block of a
call)."""

MAX_K = MAX_BLOCK_BITS
"""Largest information block of the 5G NR LDPC code (base graph 1)."""

__all__ = [
    "DECODE_CHUNK",
    "MAX_K",
    "NUM_ITER",
    "PointCount",
    "codec",
    "codeword_length",
    "decode",
    "decode_in_chunks",
    "encode",
    "fec_device",
    "measure_point",
]


def codeword_length(k: int, entry: str) -> int:
    """Coded bits ``n = beta S`` of one block of ``k <= MAX_K`` information bits sent with
    ``entry``."""
    mod, _ = parse_entry(entry)
    return BITS_PER_SYMBOL[mod] * entry_symbols(k, entry)


def fec_device() -> str:
    """Torch device of the LDPC blocks: ``$SEMCOM_FEC_DEVICE`` when set (``"cpu"``, ``"cuda"``,
    ``"cuda:K"``), else Sionna's configured device (``sionna.phy.config.device``: the first
    CUDA device when one is present, else ``"cpu"``). Float32 belief propagation on another
    device may round differently, so a decoded bit at a near-tie can differ between devices."""
    chosen = os.environ.get("SEMCOM_FEC_DEVICE", "").strip()
    if chosen:
        return chosen
    from sionna.phy import config

    return str(config.device)


@lru_cache(maxsize=64)
def _codec_on(k: int, n: int, device: str) -> tuple[Any, Any]:
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    enc = LDPC5GEncoder(k, n, device=device)
    dec = LDPC5GDecoder(enc, num_iter=NUM_ITER, hard_out=True, return_infobits=True, device=device)
    return enc, dec


def codec(k: int, n: int) -> tuple[Any, Any]:
    """Sionna's ``(LDPC5GEncoder(k, n), LDPC5GDecoder)`` pair on :func:`fec_device` (built once
    per device)."""
    return _codec_on(int(k), int(n), fec_device())


def encode(bits: np.ndarray, n: int) -> np.ndarray:
    """Codewords of information blocks.

    Args:
        bits: uint8/int array ``[B, k]`` of 0/1.
        n: codeword length (:func:`codeword_length`).

    Returns:
        uint8 array ``[B, n]``.
    """
    import torch

    bits = np.asarray(bits)
    if bits.shape[0] == 0:
        return np.zeros((0, n), np.uint8)
    enc, _ = codec(int(bits.shape[-1]), int(n))
    with torch.no_grad():
        out = enc(torch.as_tensor(bits, dtype=torch.float32, device=fec_device()))
    return out.cpu().numpy().astype(np.uint8)


def decode(llr: np.ndarray, k: int) -> np.ndarray:
    """Hard information bits from codeword LLRs.

    Args:
        llr: float array ``[B, n]``, ``ln P(b=1|y) - ln P(b=0|y)`` per coded bit.
        k: information bits per block.

    Returns:
        uint8 array ``[B, k]``.
    """
    llr = np.asarray(llr, dtype=np.float32)
    if llr.shape[0] == 0:
        return np.zeros((0, k), np.uint8)
    _, dec = codec(int(k), int(llr.shape[-1]))
    (out,) = decode_in_chunks(dec, llr)
    return out.astype(np.uint8)


def decode_in_chunks(decoder: Callable[[Any], Any], llr: np.ndarray) -> tuple[np.ndarray, ...]:
    """A Sionna decoder applied to the rows of ``llr [R, n]`` on :func:`fec_device`, at most
    :data:`DECODE_CHUNK` rows per call (the decoder keeps messages for every edge of every
    block of a call, so this bounds its memory). Returns the decoder's outputs (one tensor or a
    tuple of them, each with ``R`` leading rows), concatenated on the host as NumPy arrays."""
    import torch

    device = fec_device()
    parts = []
    for start in range(0, llr.shape[0], DECODE_CHUNK):
        with torch.no_grad():
            out = decoder(torch.as_tensor(llr[start : start + DECODE_CHUNK], device=device))
        parts.append([o.cpu().numpy() for o in (out if isinstance(out, tuple) else (out,))])
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


@dataclass(frozen=True)
class PointCount:
    """Counts of one measured point: bit and block errors over ``blocks`` blocks of ``k`` bits."""

    bit_errors: int
    bits: int
    block_errors: int
    blocks: int

    @property
    def ber(self) -> float:
        """Bit-error rate (0 when nothing was sent)."""
        return self.bit_errors / self.bits if self.bits else 0.0


def _stream(seed: int, entry: str, point: float) -> np.random.Generator:
    key = zlib.crc32(f"{entry}|{point:.6f}".encode())
    return np.random.default_rng([int(seed), key])


def measure_point(
    entry: str,
    esno_db: float,
    k: int = 512,
    *,
    max_blocks: int = 200,
    min_bit_errors: int = 200,
    batch: int = 50,
    seed: int = 0,
) -> PointCount:
    """Post-decoding bit and block errors of ``entry`` at one ``Es/N0`` over AWGN (Sionna).

    Batches of ``batch`` random blocks are sent until ``min_bit_errors`` bit errors or
    ``max_blocks`` blocks. Symbols have unit energy and the complex noise has variance
    ``N0 = 10^(-esno_db/10)`` (``N0/2`` per dimension; BPSK uses the real axis, as in
    :mod:`channels.modulation`).

    Args:
        entry: coded entry name (``"qpsk-r1/2"``).
        esno_db: ``Es/N0`` per channel symbol, dB.
        k: information bits per block.
        max_blocks, min_bit_errors, batch: the stop rule.
        seed: base seed of the bit and noise stream.

    Returns:
        The :class:`PointCount`.
    """
    import torch
    from sionna.phy.mapping import Constellation, Demapper, Mapper

    mod, _ = parse_entry(entry)
    beta = BITS_PER_SYMBOL[mod]
    n = codeword_length(k, entry)
    const = Constellation("pam", 1) if beta == 1 else Constellation("qam", beta)
    mapper = Mapper(constellation=const, device="cpu")
    demapper = Demapper("app", constellation=const, device="cpu")
    no = 10.0 ** (-esno_db / 10.0)
    rng = _stream(seed, entry, esno_db)
    bit_err = bits = blk_err = blocks = 0
    while blocks < max_blocks and bit_err < min_bit_errors:
        size = min(batch, max_blocks - blocks)
        u = rng.integers(0, 2, size=(size, k), dtype=np.uint8)
        c = encode(u, n)
        with torch.no_grad():
            x = mapper(torch.as_tensor(c, dtype=torch.float32))
            shape = tuple(x.shape)
            noise = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
            y = x + torch.as_tensor(noise * np.sqrt(no / 2.0), dtype=x.dtype)
            llr = demapper(y, torch.tensor(no, dtype=torch.float32)).numpy()
        u_hat = decode(llr.reshape(size, n), k)
        wrong = u_hat != u
        bit_err += int(wrong.sum())
        blk_err += int(wrong.any(axis=1).sum())
        bits += size * k
        blocks += size
    return PointCount(bit_err, bits, blk_err, blocks)
