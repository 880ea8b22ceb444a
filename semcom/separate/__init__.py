"""Separate source-channel coding baselines: an image codec (JPEG 2000, WebP, AVIF through
Pillow), 5G NR LDPC code blocks with a CRC (Sionna) and Gray QAM on the semantic link's
subchannels, and the capacity-idealised bound (:mod:`semcom.separate.link`)."""

from semcom.separate.capacity import capacity_bits, waterfilling
from semcom.separate.image_codecs import CODECS, fit_quality
from semcom.separate.ldpc import block_plan
from semcom.separate.link import CAPACITY, SeparateLink

__all__ = [
    "CAPACITY",
    "CODECS",
    "SeparateLink",
    "block_plan",
    "capacity_bits",
    "fit_quality",
    "waterfilling",
]
