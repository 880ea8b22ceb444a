"""Separate source-channel coding on the semantic link's channel: :class:`SeparateLink`.

Per image (one *frame*), on the same subchannels, budgets and fading law as
:class:`semcom.link.SemanticLink`:

- **Budgets.** ``S_max`` complex symbols per frame (the semantic link's
  ``η · N · L · Q / 2``; ``S = floor(S_max)`` are used) and ``P_tot = 10^(snr_db/10) · K``.
- **Digital schemes** (``codec`` in :data:`~semcom.separate.image_codecs.CODECS`, one
  ``(rate, modulation)`` pair): the frame holds ``S · m`` channel bits, cut into 5G LDPC code
  blocks of rate ``rate`` with a CRC-24B each (:func:`~semcom.separate.ldpc.block_plan`); their
  payload carries a 32-bit file length and the codec file, whose quality is the bisection's
  (:func:`~semcom.separate.image_codecs.fit_quality`) for ``payload_bits - 32`` bits; the
  rest is zero padding. Then :func:`~semcom.separate.chain.transmit_payload`.
- **Capacity scheme** (``codec="capacity"``): no code; the frame's capacity ``C``
  (:func:`~semcom.separate.capacity.capacity_bits`) is the bit budget, and each of
  ``capacity_codecs`` sends its file at the bisection's quality for ``C`` bits, received
  perfectly; the image is the best of them (lowest MSE). An upper bound of any separate scheme
  with these codecs.

**Failure rule.** A frame *fails* when any of its code blocks fails its CRC check, when the
received length field or file cannot be decoded, or when no quality fits the budget (even
``q = 1`` is too large). A failed frame's image is the *mean image* given to the link (the
training-set mean, :mod:`semcom.link_task`). :attr:`SeparateLink.failures` counts failed
frames and :attr:`SeparateLink.unfit` those among them that had no fitting quality.

**Randomness.** Frame ``(draw, image)`` draws its fading as the semantic link does: the first
draw of ``numpy.random.default_rng((seed, fading(draw), trial))`` is
``fading_coefficients(channel, (K,), rng, k_factor)``, ``trial`` the image's index in the data
set. ``fading(draw) = point_index(fading_point, draw)`` where ``fading_point`` is a semantic
link's base stream index (:func:`semcom.link.reference_point`; the sweep passes that of the
condition's semantic link with the ``hierarchical`` method, the stream of ``isfr-uep``): the
frame's gains are then exactly that semantic link's, so per-image comparisons are paired.
Without ``fading_point`` the link's own ``point(draw)`` (a CRC-32 of its parameters, the
scheme's name included, and the draw) is used. The noise is always the link's own: the
standard complex normal ``[S]`` of ``default_rng((seed, point(draw), trial, 1))``.

**What :class:`semcom.evaluation.LinkEvaluation` sees.** One "feature" per frame (the codec
file): ``sent`` is True when a file was transmitted, ``bit_errors`` counts the payload bits
decoded wrongly, ``scalars_per_feature`` is the payload bits per frame, so the reported BER is
the post-decoding payload bit-error rate (NaN for the capacity scheme, which sends no bits).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch

from channels.errors import check_int, check_real, fail
from channels.fading import fading_coefficients
from channels.montecarlo import point_index
from channels.names import BITS_PER_SYMBOL
from semcom.importance.base import as_images
from semcom.limits import MAX_RICIAN_K, SNR_DB_LIMIT
from semcom.link import LinkFrames
from semcom.separate.capacity import POWER_MODES, capacity_bits
from semcom.separate.chain import transmit_payload
from semcom.separate.image_codecs import (
    CODECS,
    HEVC,
    HEVC_EXTRA,
    PILLOW_CODECS,
    check_codec,
    decode,
    fit_quality,
    hevc_available,
    to_uint8,
)
from semcom.separate.ldpc import NUM_ITER, block_plan, check_rate

CAPACITY = "capacity"
LENGTH_BITS = 32
"""Bits of the file-length field at the head of a digital frame's payload."""
FADING_CHANNELS = ("awgn", "rayleigh", "rician", "noiseless")
DIGITAL_MODULATIONS = ("qpsk", "16qam", "64qam", "256qam")


_FITS: dict[tuple[bytes, str, float], tuple[int, bytes] | None] = {}
"""Bisection results by (image digest, codec, bit budget), shared by every link of the process:
the same image and budget recur at every SNR and channel of a sweep."""
_MAX_FITS = 4096


class _NoModel:
    """Stands in for a model: a separate link has no classifier head."""

    classify = None
    num_classes = None


class SeparateLink:
    """One separate scheme on one channel condition (module docstring).

    Args:
        codec: ``"jpeg2000"``, ``"webp"``, ``"avif"``, ``"hevc"`` (needs ``pillow-heif``) or
            ``"capacity"``.
        mean_image: float ``[C, H, W]`` in [0, 1], the failure rule's image.
        symbol_budget: ``S_max`` complex symbols per frame (> 0).
        channel: ``"awgn"``, ``"rayleigh"``, ``"rician"`` or ``"noiseless"``.
        snr_db: average SNR in dB (``inf``: noiseless).
        n_subchannels: ``K``.
        rate: LDPC code rate in [0.2, 0.95] (digital schemes).
        modulation: ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"`` (digital schemes).
        rician_k: Rician K-factor.
        seed: the link seed.
        name: the scheme's name (part of the frames' stream key).
        power: ``"waterfilling"`` or ``"equal"`` (capacity scheme).
        capacity_codecs: codecs the capacity scheme picks the best of (default: the three
            that Pillow encodes, :data:`~semcom.separate.image_codecs.PILLOW_CODECS`).
        num_iter: LDPC decoder iterations.
        batch_size: frames per call of :meth:`simulate` from the evaluation.
        fading_point: base stream index of the fading (module docstring, *Randomness*), or
            None for the link's own.

    Raises:
        ConfigError: one line naming the bad argument.
    """

    def __init__(
        self,
        codec: str,
        mean_image: Any,
        symbol_budget: float,
        channel: str = "rayleigh",
        snr_db: float = 10.0,
        n_subchannels: int = 16,
        rate: float = 0.5,
        modulation: str = "qpsk",
        rician_k: float = 3.0,
        seed: int = 0,
        *,
        name: str = "",
        power: str = "waterfilling",
        capacity_codecs: tuple[str, ...] = PILLOW_CODECS,
        num_iter: int = NUM_ITER,
        batch_size: int = 64,
        fading_point: int | None = None,
    ) -> None:
        if codec not in (*CODECS, CAPACITY):
            raise fail("codec", codec, ", ".join((*CODECS, CAPACITY)))
        if codec != CAPACITY:
            check_codec(codec)
        self.codec = codec
        mean = np.asarray(mean_image.detach().cpu() if hasattr(mean_image, "detach")
                          else mean_image, dtype=np.float32)  # fmt: skip
        if mean.ndim != 3 or mean.shape[0] not in (1, 3):
            raise fail("mean_image", f"array of shape {mean.shape}", "[C, H, W] with C = 1 or 3")
        self.mean_image = mean
        self.symbol_budget = check_real("symbol_budget", symbol_budget, 1.0, coerce=True,
                                        allowed="a finite number >= 1")  # fmt: skip
        self.n_symbols = int(math.floor(self.symbol_budget))
        key = str(channel).strip().lower()
        if key not in FADING_CHANNELS:
            raise fail("channel", channel, ", ".join(FADING_CHANNELS))
        self.snr_db = check_real(
            "snr_db", snr_db, -SNR_DB_LIMIT, SNR_DB_LIMIT, also=(math.inf,), coerce=True,
            allowed=f"a finite number in [{-SNR_DB_LIMIT:g}, {SNR_DB_LIMIT:g}] or inf",
        )  # fmt: skip
        self.noiseless = key == "noiseless" or math.isinf(self.snr_db)
        self.channel = "noiseless" if self.noiseless else key
        self.n_subchannels = check_int("n_subchannels", n_subchannels, 1, 2**20)
        self.rician_k = check_real("rician_k", rician_k, 0.0, MAX_RICIAN_K, coerce=True,
                                   allowed=f"a finite number in [0, {MAX_RICIAN_K:g}]")  # fmt: skip
        self.seed = check_int("seed", seed, 0, 2**64 - 1)
        self.rate = check_rate(rate)
        if modulation not in DIGITAL_MODULATIONS:
            raise fail("modulation", modulation, ", ".join(DIGITAL_MODULATIONS))
        self.modulation = modulation
        if power not in POWER_MODES:
            raise fail("power", power, " or ".join(POWER_MODES))
        self.power = power
        codecs = tuple(capacity_codecs)
        if not codecs or any(c not in CODECS for c in codecs):
            raise fail("capacity_codecs", list(codecs), "a non-empty list of " + ", ".join(CODECS))
        if codec == CAPACITY and HEVC in codecs and not hevc_available():
            allowed = f"codecs without {HEVC} ({HEVC} {HEVC_EXTRA})"
            raise fail("capacity_codecs", list(codecs), allowed)
        self.capacity_codecs = codecs
        self.num_iter = check_int("num_iter", num_iter, 1, 1000)
        self.batch_size = check_int("batch_size", batch_size, 1, 2**31)
        self.name = str(name) or codec
        self.method = self.name
        self.model = _NoModel()
        self.n_features = 1
        self.bits_per_scalar = 1
        self.plan = block_plan(self.n_symbols * BITS_PER_SYMBOL[modulation], self.rate)
        digital = codec != CAPACITY
        self.scalars_per_feature = self.plan.payload_bits if digital else 1
        self.failures = 0
        self.unfit = 0
        self.frames = 0
        self._sizes: dict[tuple[bytes, str], dict[int, bytes]] = {}
        self.fading_point = (
            None if fading_point is None else check_int("fading_point", fading_point, 0, 2**32 - 1)
        )
        self._point = point_index(
            "semcom.separate", self.name, codec, self.channel, self.snr_db,
            self.rician_k if self.channel == "rician" else 0.0, self.n_subchannels,
            self.symbol_budget, self.rate if digital else 0.0, modulation if digital else "",
            power if not digital else "", codecs if not digital else (), self.num_iter,
        )  # fmt: skip

    @property
    def total_power(self) -> float:
        """``P_tot = 10^(snr_db/10) · K``."""
        return 10.0 ** (self.snr_db / 10.0) * self.n_subchannels

    def draw_point(self, draw: int) -> int:
        """The 32-bit stream index of channel draw ``draw``."""
        return point_index(self._point, int(draw))

    def fading_draw_point(self, draw: int) -> int:
        """The 32-bit stream index of the fading of channel draw ``draw``."""
        if self.fading_point is None:
            return self.draw_point(draw)
        return point_index(self.fading_point, int(draw))

    def config(self) -> dict[str, Any]:
        """The link's parameters (JSON-ready)."""
        return {
            "codec": self.codec, "name": self.name, "channel": self.channel,
            "snr_db": self.snr_db, "n_subchannels": self.n_subchannels,
            "symbol_budget": self.symbol_budget, "rate": self.rate,
            "modulation": self.modulation, "rician_k": self.rician_k, "seed": self.seed,
            "power": self.power, "capacity_codecs": list(self.capacity_codecs),
            "num_iter": self.num_iter, "fading_point": self.fading_point,
        }  # fmt: skip

    # ------------------------------------------------------------------------------ codec
    def _fit(self, pixels: np.ndarray, key: bytes, codec: str, bits: float):
        """Bisection result for ``bits`` (cached per image, codec and budget for the whole
        process; this link's encodes per image and codec are cached too, so a new budget costs
        few new encodes)."""
        cache_key = (key, codec, float(bits))
        if cache_key not in _FITS:
            if len(_FITS) >= _MAX_FITS:
                _FITS.clear()
            files = self._sizes.setdefault((key, codec), {})
            _FITS[cache_key] = fit_quality(pixels, codec, bits, cache=files)
        return _FITS[cache_key]

    # ----------------------------------------------------------------------------- frames
    def simulate(self, images: Any, draw: int = 0, first_image: int = 0) -> LinkFrames:
        """Send each image of ``images [B, C, H, W]`` through its own channel draw."""
        images = as_images(images)
        draw = check_int("draw", draw, 0, 2**31)
        first_image = check_int("first_image", first_image, 0, 2**32 - images.shape[0])
        if tuple(images.shape[1:]) != self.mean_image.shape:
            raise fail(
                "images",
                f"shape {tuple(images.shape)}",
                f"[B, {', '.join(map(str, self.mean_image.shape))}] (the mean image's)",
            )
        b, k = images.shape[0], self.n_subchannels
        point, fading = self.draw_point(draw), self.fading_draw_point(draw)
        h = np.ones((b, k), dtype=np.complex128)
        noise = None if self.noiseless else np.empty((b, self.n_symbols), dtype=np.complex128)
        for j in range(b):
            trial = first_image + j
            if not self.noiseless:
                rng = np.random.default_rng((self.seed, fading, trial))
                h[j] = fading_coefficients(self.channel, (k,), rng=rng, k_factor=self.rician_k
                                           if self.channel == "rician" else 0.0)  # fmt: skip
                noise_rng = np.random.default_rng((self.seed, point, trial, 1))
                noise[j] = (
                    noise_rng.standard_normal(self.n_symbols)
                    + 1j * noise_rng.standard_normal(self.n_symbols)
                ) / math.sqrt(2.0)
        pixels = [to_uint8(images[j]) for j in range(b)]
        keys = [hashlib.blake2b(p.tobytes(), digest_size=16).digest() for p in pixels]
        if self.codec == CAPACITY:
            out, sent, errors, failed, unfit = self._capacity(images, pixels, keys, h)
        else:
            out, sent, errors, failed, unfit = self._digital(pixels, keys, h, noise)
        self.frames += b
        self.failures += int(failed.sum())
        self.unfit += int(unfit.sum())
        x_hat = torch.as_tensor(np.stack(out)).to(images.dtype)
        gains = np.abs(h) ** 2
        m = np.where(sent, BITS_PER_SYMBOL[self.modulation], 0).astype(np.int64)[:, None]
        return LinkFrames(x_hat, np.zeros((b, 1, 0)), sent[:, None], m, errors[:, None],
                          np.full(b, math.nan), gains)  # fmt: skip

    def _capacity(self, images, pixels, keys, h):
        b = len(pixels)
        out, failed = [], np.zeros(b, dtype=bool)
        gains = np.abs(h) ** 2
        for j in range(b):
            bits = (
                math.inf
                if self.noiseless
                else capacity_bits(gains[j], self.total_power, self.n_symbols, self.power)
            )
            x = images[j].detach().cpu().to(torch.float64).numpy()
            best, best_mse = None, math.inf
            for codec in self.capacity_codecs:
                fit = self._fit(pixels[j], keys[j], codec, bits)
                if fit is None:
                    continue
                decoded = decode(fit[1], codec, self.mean_image.shape)
                if decoded is None:
                    continue
                mse = float(np.mean((decoded - x) ** 2))
                if mse < best_mse:
                    best, best_mse = decoded, mse
            failed[j] = best is None
            out.append(self.mean_image if best is None else best)
        zeros = np.zeros(b, dtype=np.int64)
        return out, np.zeros(b, dtype=bool), zeros, failed, failed.copy()

    def _digital(self, pixels, keys, h, noise):
        b, plan = len(pixels), self.plan
        room = plan.payload_bits - LENGTH_BITS
        payload = np.zeros((b, plan.payload_bits), dtype=np.uint8)
        sent = np.zeros(b, dtype=bool)
        for j in range(b):
            fit = self._fit(pixels[j], keys[j], self.codec, room) if room > 0 else None
            if fit is None:
                continue
            data = fit[1]
            head = np.unpackbits(np.frombuffer(len(data).to_bytes(4, "big"), dtype=np.uint8))
            body = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
            payload[j, :LENGTH_BITS] = head
            payload[j, LENGTH_BITS : LENGTH_BITS + body.size] = body
            sent[j] = True
        errors = np.zeros(b, dtype=np.int64)
        out = [self.mean_image] * b
        failed = ~sent
        if sent.any():
            idx = np.flatnonzero(sent)
            frame_noise = None if noise is None else noise[idx]
            rx, ok = transmit_payload(payload[idx], h[idx], frame_noise, self.snr_db,
                                      self.modulation, plan, self.num_iter)  # fmt: skip
            for i, j in enumerate(idx):
                errors[j] = int(np.count_nonzero(rx[i] != payload[j]))
                image = self._receive(rx[i]) if bool(ok[i].all()) else None
                failed[j] = image is None
                out[j] = self.mean_image if image is None else image
        return out, sent, errors, failed, ~sent

    def _receive(self, payload: np.ndarray) -> np.ndarray | None:
        """The image of a decoded payload whose blocks all passed their CRC, or None."""
        length = int.from_bytes(np.packbits(payload[:LENGTH_BITS]).tobytes(), "big")
        if 8 * length > payload.size - LENGTH_BITS:
            return None
        data = np.packbits(payload[LENGTH_BITS : LENGTH_BITS + 8 * length]).tobytes()
        return decode(data, self.codec, self.mean_image.shape)


__all__ = ["CAPACITY", "DIGITAL_MODULATIONS", "LENGTH_BITS", "SeparateLink"]
