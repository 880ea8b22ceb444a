"""Image codecs of the separate schemes (Pillow, offline) and the quality that fits a bit budget.

Each codec maps an integer *quality* ``q`` in ``1..100`` (higher: more bits, better image) to a
byte string (the whole file Pillow writes, headers included: the bits the channel must carry):

- ``jpeg2000``: raw J2K codestream (``no_jp2``), irreversible 9/7 wavelet, one quality layer
  at compression ratio ``2^((100 - q) / 12.5)`` (``q = 100``: ratio 1, ``q = 1``: about 240);
- ``webp``: lossy WebP at Pillow's ``quality = q``;
- ``avif``: AVIF (AV1 intra) at Pillow's ``quality = q``;
- ``hevc``: HEVC intra (x265) in a HEIF file at ``quality = q``, chroma 4:2:0, through the
  optional ``pillow-heif`` package (``pip install "semcom[hevc]"``). It stands in for BPG, which
  is HEVC intra in a container of a few bytes; the HEIF container costs about 450 bytes a file
  (463 bytes for an 8x8 image at ``q = 1``), so on 32x32 patches it fits only the larger
  payloads, while on 256x256 crops the overhead is under 5% of the QPSK r1/3 payload.

**Fitting the budget** (:func:`fit_quality`). Bisection on ``q`` for the predicate "the file
has at most ``max_bits`` bits": it returns ``q*`` whose file fits and whose ``q* + 1`` does not
(or ``q* = 100``), and ``None`` when even ``q = 1`` does not fit. When the file size is
non-decreasing in ``q`` this is the largest quality that fits. [OUR CHOICE] WebP and AVIF sizes
are not exactly monotone (dips of a few bytes between neighbouring qualities on 32×32
patches), so there ``q*`` is a fitting quality at a fit/no-fit boundary, not always the global
largest; the bisection takes ``ceil(log2 100) + 1 = 8`` encodes instead of 100.

Images are float ``[C, H, W]`` in ``[0, 1]`` with ``C`` = 1 (grey, Pillow mode ``L``) or 3
(``RGB``), rounded to 8 bits before encoding.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from channels.errors import fail

PILLOW_CODECS = ("jpeg2000", "webp", "avif")
"""The codecs Pillow's own wheels encode: always available, the capacity bound's default."""
HEVC = "hevc"
"""HEVC intra in HEIF (``pillow-heif``, an optional extra)."""
CODECS = (*PILLOW_CODECS, HEVC)
"""Codec names."""
HEVC_EXTRA = "needs the optional package pillow-heif: pip install 'semcom[hevc]'"
"""What the one-line error says when ``hevc`` is asked for without ``pillow-heif``."""

QUALITY_MIN, QUALITY_MAX = 1, 100
"""The integer quality range of every codec."""


def hevc_available() -> bool:
    """Whether ``pillow-heif`` (the ``hevc`` codec's encoder and decoder) is installed."""
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def check_codec(codec: Any) -> str:
    """``codec`` if it is one of :data:`CODECS` and installed, else a one-line ConfigError."""
    if codec not in CODECS:
        raise fail("codec", codec, ", ".join(CODECS))
    if codec == HEVC and not hevc_available():
        raise fail("codec", codec, f"{', '.join(PILLOW_CODECS)} ({HEVC} {HEVC_EXTRA})")
    return str(codec)


def _heif():
    """``pillow_heif`` with its Pillow opener registered (so ``Image.open`` reads HEIF)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    return pillow_heif


def to_uint8(image: Any) -> np.ndarray:
    """Float ``[C, H, W]`` in [0, 1] (tensor or array) -> uint8 ``[H, W]`` (C = 1) or
    ``[H, W, 3]``, rounded to the nearest level."""
    x = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise fail("image", f"array of shape {x.shape}", "[C, H, W] with C = 1 or 3")
    u8 = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return u8[0] if x.shape[0] == 1 else np.ascontiguousarray(u8.transpose(1, 2, 0))


def from_uint8(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]`` or ``[H, W, 3]`` -> float32 ``[C, H, W]`` in [0, 1]."""
    x = pixels.astype(np.float32) / 255.0
    return x[None] if x.ndim == 2 else np.ascontiguousarray(x.transpose(2, 0, 1))


def encode(pixels: np.ndarray, codec: str, quality: int) -> bytes:
    """The file of ``pixels`` (uint8 ``[H, W]`` or ``[H, W, 3]``) at ``quality`` (1..100)."""
    from PIL import Image

    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if codec == "jpeg2000":
        ratio = 2.0 ** ((QUALITY_MAX - quality) / 12.5)
        image.save(buffer, "JPEG2000", quality_mode="rates", quality_layers=[ratio],
                   irreversible=True, no_jp2=True)  # fmt: skip
    elif codec == "webp":
        image.save(buffer, "WEBP", quality=int(quality))
    elif codec == "avif":
        image.save(buffer, "AVIF", quality=int(quality))
    elif codec == HEVC:
        check_codec(codec)
        _heif().from_pillow(image).save(buffer, quality=int(quality), chroma=420)
    else:
        raise fail("codec", codec, ", ".join(CODECS))
    return buffer.getvalue()


def decode(data: bytes, codec: str, shape: tuple[int, int, int]) -> np.ndarray | None:
    """The image of a (possibly corrupted) file as float32 ``[C, H, W]``, or None when the
    codec cannot decode it or it decodes to another size (a decoding failure)."""
    from PIL import Image

    check_codec(codec)
    if codec == HEVC:
        _heif()
    c, h, w = shape
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            pixels = np.asarray(image.convert("L" if c == 1 else "RGB"))
    except Exception:  # noqa: BLE001 - any decoder error is the failure rule's "cannot decode"
        return None
    if pixels.shape[:2] != (h, w):
        return None
    return from_uint8(pixels)


def fit_quality(
    pixels: np.ndarray, codec: str, max_bits: float, cache: dict[int, bytes] | None = None
) -> tuple[int, bytes] | None:
    """``(q*, file)``: bisection for the quality whose file fits ``max_bits`` (module docstring).

    Args:
        pixels: uint8 ``[H, W]`` or ``[H, W, 3]`` (:func:`to_uint8`).
        codec: one of :data:`CODECS`.
        max_bits: the bit budget (``8 · len(file) <= max_bits``; ``inf``: no limit).
        cache: quality -> file of these pixels and codec, filled as it encodes (reuse it
            across budgets of the same image).

    Returns:
        The quality and its file, or None when ``q = 1`` does not fit.

    Raises:
        ConfigError: unknown codec.

    Examples:
        >>> x = np.zeros((3, 16, 16)); x[:, :, 8:] = 1.0
        >>> q, data = fit_quality(to_uint8(x), "webp", 8 * 400)
        >>> 8 * len(data) <= 8 * 400 and 1 <= q <= 100
        True
    """
    check_codec(codec)
    cache = {} if cache is None else cache

    def file(q: int) -> bytes:
        if q not in cache:
            cache[q] = encode(pixels, codec, q)
        return cache[q]

    def fits(q: int) -> bool:
        return 8 * len(file(q)) <= max_bits

    if not fits(QUALITY_MIN):
        return None
    if fits(QUALITY_MAX):
        return QUALITY_MAX, file(QUALITY_MAX)
    lo, hi = QUALITY_MIN, QUALITY_MAX  # invariant: fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, file(lo)


__all__ = [
    "CODECS", "HEVC", "HEVC_EXTRA", "PILLOW_CODECS", "QUALITY_MAX", "QUALITY_MIN",
    "check_codec", "decode", "encode", "fit_quality", "from_uint8", "hevc_available",
    "to_uint8",
]  # fmt: skip
