"""The digital physical layer of the separate schemes: payload bits -> 5G LDPC code blocks ->
Gray QAM on the link's subchannels -> fading and noise -> perfect-CSI equalisation -> LLRs ->
LDPC decoding -> CRC check.

**Symbols on subchannels.** A frame has ``S`` complex symbols (the link's symbol budget,
rounded down). The code blocks' bits are concatenated, zero-padded to ``S · m`` bits (``m``
bits per symbol) and Gray-mapped (:mod:`channels.modulation`, unit average energy); symbol
``j`` goes on subchannel ``j mod K``, so the bits of every block are spread over all
subchannels. [OUR CHOICE] Equal power per symbol: every symbol has power ``p = P_tot / K``
(``P_tot = 10^(snr_db/10) · K``, so ``p = 10^(snr_db/10)``), the average SNR of the link.

**Channel and receiver.** ``y_j = h_k sqrt(p) x_j + n_j`` with ``n_j ~ CN(0, σ² = 1)`` and the
frame's coefficients ``h [K]``; the receiver knows ``h`` (perfect CSI) and equalises,
``x̂_j = y_j / (h_k sqrt(p))``, whose noise variance is ``1 / (|h_k|² p)``; exact (log-MAP)
LLRs of :meth:`channels.modulation.Modulation.demap_llr` with that variance per symbol feed
the LDPC decoder (:mod:`semcom.separate.ldpc`). A noiseless frame (``snr_db = inf``) gets
LLRs ``±20`` of the sent bits.
"""

from __future__ import annotations

import math

import numpy as np

from channels.modulation import get_modulation
from semcom.separate.ldpc import NUM_ITER, BlockPlan, decode_blocks, encode_blocks

NOISELESS_LLR = 20.0


def symbol_subchannels(n_symbols: int, n_subchannels: int) -> np.ndarray:
    """Subchannel of each symbol, ``j mod K``, int64 ``[S]``."""
    return np.arange(int(n_symbols), dtype=np.int64) % int(n_subchannels)


def transmit_payload(
    payload: np.ndarray,
    h: np.ndarray,
    noise: np.ndarray | None,
    snr_db: float,
    modulation: str,
    plan: BlockPlan,
    num_iter: int = NUM_ITER,
) -> tuple[np.ndarray, np.ndarray]:
    """Send the payload of ``B`` frames through the chain (module docstring).

    Args:
        payload: 0/1 ``[B, n_blocks · payload]``.
        h: complex ``[B, K]``: each frame's subchannel coefficients.
        noise: complex ``[B, S]`` with ``E|n|² = 1`` (standard complex normal), or None for a
            noiseless link.
        snr_db: average SNR (``p = 10^(snr_db/10)`` per symbol).
        modulation: a Gray QAM name (``"qpsk"``, ``"16qam"``, ...).
        plan: the frame's code blocks; ``plan.coded_bits <= S · m``.
        num_iter: LDPC decoder iterations.

    Returns:
        ``(decoded payload [B, n_blocks · payload] uint8, crc_ok [B, n_blocks] bool)``.
    """
    mod = get_modulation(modulation)
    m = mod.bits_per_symbol
    b = payload.shape[0]
    blocks = np.asarray(payload, dtype=np.uint8).reshape(b, plan.n_blocks, plan.payload)
    coded = encode_blocks(blocks, plan, num_iter).reshape(b, plan.coded_bits)
    if noise is None:
        llr = (2.0 * coded.astype(np.float64) - 1.0) * NOISELESS_LLR
    else:
        n_symbols = noise.shape[1]
        bits = np.zeros((b, n_symbols * m), dtype=np.uint8)
        bits[:, : plan.coded_bits] = coded
        x = mod.map(bits)
        sub = symbol_subchannels(n_symbols, h.shape[1])
        amplitude = h[:, sub] * math.sqrt(10.0 ** (snr_db / 10.0))  # h_k sqrt(p), [B, S]
        y = amplitude * x + noise
        gain = np.maximum(np.abs(amplitude) ** 2, 1e-300)
        x_hat = y / np.where(amplitude == 0, 1.0, amplitude)
        llr = mod.demap_llr(x_hat, 1.0 / gain)[:, : plan.coded_bits]
    decoded, ok = decode_blocks(llr.reshape(b, plan.n_blocks, plan.n), plan, num_iter)
    return decoded.reshape(b, -1), ok


__all__ = ["NOISELESS_LLR", "symbol_subchannels", "transmit_payload"]
