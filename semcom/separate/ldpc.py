"""5G NR LDPC code blocks of a frame (Sionna's ``LDPC5GEncoder`` / ``LDPC5GDecoder``) with a
CRC per block.

A frame carries ``n_coded`` channel bits (its symbol budget times the bits per symbol). At code
rate ``r`` they are cut into ``n_blocks = ceil(r · n_coded / k_max(r))`` code blocks of
``n = floor(n_coded / n_blocks)`` bits, each encoding ``k = floor(r · n)`` bits: ``k - 24``
payload bits followed by their CRC-24B (3GPP TS 38.212 §5.1, the code-block CRC), so that
``k_max(r)`` (:func:`channels.coded.max_block_bits`: 8448, the largest 5G information block,
base graph 1, above rate 1/3; 3824, base graph 2, at 1/3 or less) bounds ``k``. The leftover
``n_coded - n_blocks · n < n_blocks`` channel bits carry nothing. The decoder is Sionna's
belief propagation (``num_iter`` iterations, boxplus-phi check nodes, hard output); a block
*fails* when its CRC does not check on the decoded bits.

LLRs follow Sionna's (and :meth:`channels.modulation.Modulation.demap_llr`'s) sign:
``llr = ln p(b = 1 | y) - ln p(b = 0 | y)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from channels.coded import max_block_bits
from channels.errors import fail
from channels.ldpc import decode_in_chunks, fec_device

K_MAX = 8448
"""The largest 5G NR LDPC information block (base graph 1)."""
CRC_BITS = 24
"""CRC-24B per code block."""
RATE_MIN, RATE_MAX = 0.2, 0.95
"""Code rates accepted (5G NR LDPC is defined from 1/5 (base graph 2) up to about 0.95)."""
NUM_ITER = 20
"""Default belief-propagation iterations."""


@dataclass(frozen=True)
class BlockPlan:
    """How a frame's ``n_coded`` channel bits are cut into code blocks (module docstring).

    Attributes:
        n_blocks: code blocks per frame.
        n: channel bits per block.
        k: information bits per block (payload plus CRC).
        payload: payload bits per block, ``k - 24`` (0 when the block is too short).
    """

    n_blocks: int
    n: int
    k: int
    payload: int

    @property
    def payload_bits(self) -> int:
        """Payload bits per frame, ``n_blocks · payload``."""
        return self.n_blocks * self.payload

    @property
    def coded_bits(self) -> int:
        """Channel bits used per frame, ``n_blocks · n``."""
        return self.n_blocks * self.n


def check_rate(rate: float) -> float:
    """``rate`` if it is a number in [0.2, 0.95], else a one-line ConfigError."""
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not (RATE_MIN <= float(rate) <= RATE_MAX)
    ):
        raise fail("rate", rate, f"a code rate in [{RATE_MIN}, {RATE_MAX}]")
    return float(rate)


def block_plan(n_coded: int, rate: float) -> BlockPlan:
    """The code blocks of ``n_coded`` channel bits at ``rate`` (module docstring).

    Examples:
        >>> block_plan(12288, 0.5)
        BlockPlan(n_blocks=1, n=12288, k=6144, payload=6120)
        >>> block_plan(40, 0.5).payload
        0
    """
    rate = check_rate(rate)
    n_coded = int(n_coded)
    if n_coded <= 0:
        return BlockPlan(0, 0, 0, 0)
    n_blocks = max(1, math.ceil(rate * n_coded / max_block_bits(rate)))
    n = n_coded // n_blocks
    k = int(math.floor(rate * n))
    payload = k - CRC_BITS
    if payload <= 0 or k < 12:  # too short for a CRC-protected 5G block
        return BlockPlan(n_blocks, n, k, 0)
    return BlockPlan(n_blocks, n, k, payload)


@functools.lru_cache(maxsize=64)
def _codec(k: int, n: int, num_iter: int, device: str) -> tuple[object, object, object, object]:
    from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    crc_encoder = CRCEncoder("CRC24B", device=device)
    crc_decoder = CRCDecoder(crc_encoder, device=device)
    encoder = LDPC5GEncoder(k, n, device=device)
    decoder = LDPC5GDecoder(
        encoder, num_iter=num_iter, hard_out=True, return_infobits=True, device=device
    )
    return crc_encoder, crc_decoder, encoder, decoder


def encode_blocks(payload: np.ndarray, plan: BlockPlan, num_iter: int = NUM_ITER) -> np.ndarray:
    """Payload bits ``[..., n_blocks, payload]`` (0/1) -> code words ``[..., n_blocks, n]``
    (uint8): CRC-24B attached, then 5G LDPC encoded (rate matched to ``n``)."""
    device = fec_device()
    crc_encoder, _, encoder, _ = _codec(plan.k, plan.n, num_iter, device)
    u = torch.as_tensor(np.asarray(payload, dtype=np.float32), device=device)
    with torch.no_grad():
        c = encoder(crc_encoder(u))
    return c.cpu().numpy().astype(np.uint8)


def decode_blocks(
    llr: np.ndarray, plan: BlockPlan, num_iter: int = NUM_ITER
) -> tuple[np.ndarray, np.ndarray]:
    """Channel LLRs ``[..., n_blocks, n]`` -> ``(payload bits [..., n_blocks, payload]`` uint8,
    ``crc_ok [..., n_blocks]`` bool)``: Sionna's decoder, then the block's CRC check."""
    _, crc_decoder, _, decoder = _codec(plan.k, plan.n, num_iter, fec_device())
    llr = np.asarray(llr, dtype=np.float32)
    rows = llr.reshape(-1, llr.shape[-1])
    if rows.shape[0] == 0:
        return np.zeros((*llr.shape[:-1], plan.payload), np.uint8), np.zeros(llr.shape[:-1], bool)
    bits, ok = decode_in_chunks(lambda x: crc_decoder(decoder(x)), rows)
    shape = llr.shape[:-1]
    return bits.astype(np.uint8).reshape(*shape, plan.payload), ok.astype(bool).reshape(shape)


__all__ = [
    "CRC_BITS", "K_MAX", "NUM_ITER", "RATE_MAX", "RATE_MIN", "BlockPlan", "block_plan",
    "check_rate", "decode_blocks", "encode_blocks",
]  # fmt: skip
