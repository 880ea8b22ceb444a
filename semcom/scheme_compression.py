"""Compression per scheme: specs, the compressed codecs of a run and their results columns.

A custom scheme may name a compression step (``compression: {method, options}``,
docs/scenarios.md): before the sweep, its model variant's trained codec is compressed on the
calibration images by the :data:`~semcom.compression.COMPRESSION` method, and the scheme is
evaluated on the compressed codec, whose importance weights and drop distortions are measured
anew (:func:`semcom.prepare.calibrate`). Each ``(model variant, method, resolved options)`` is
compressed **once** per run, whatever number of schemes use it; it is a *codec* of its own,
named by :func:`codec_name` (an uncompressed scheme's codec is its model variant).

Every results row carries the measured encoder size of its codec (:data:`SIZE_COLUMNS`);
an uncompressed scheme gets its dense codec's.

Examples:
    >>> spec = resolve_compression("magnitude", {"sparsity": 0.5})
    >>> spec.method, spec.options["sparsity"], spec.options["scope"]
    ('magnitude', 0.5, 'global')
    >>> codec_name("isfr", None)
    'isfr'
    >>> codec_name("isfr", spec).startswith("isfr+magnitude{")
    True
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Any

import torch

from semcom.compression import COMPRESSION, EncoderSize, measure_encoder
from semcom.params import MethodSpec

NONE = "none"
"""The ``compression`` column of an uncompressed scheme."""

SIZE_COLUMNS = (
    "encoder_params",
    "encoder_nonzero_params",
    "encoder_flops",
    "encoder_effective_flops",
    "encoder_weight_bits",
)
"""Results columns of the codec's measured encoder size, after ``compression``."""


@dataclass(frozen=True)
class CompressionSpec(MethodSpec):
    """A compression method with its resolved options (every default filled in)."""

    @property
    def key(self) -> str:
        """``method`` then :attr:`options_json`: the identity of the compression."""
        return f"{self.method}{self.options_json}"


def resolve_compression(method: str, options: dict[str, Any]) -> CompressionSpec:
    """The :class:`CompressionSpec` of ``method`` with ``options``.

    Raises:
        ConfigError: unknown method or an option its constructor refuses.
        TypeError: an option name the constructor does not take (the scenario checks name it
            first).
    """
    return CompressionSpec.of(method, COMPRESSION.get(method)(**options))


def codec_name(variant: str, spec: CompressionSpec | None) -> str:
    """The codec of a scheme: its model variant, or ``<variant>+<method><options JSON>``."""
    return variant if spec is None else f"{variant}+{spec.key}"


@dataclass(frozen=True)
class CompressedCodec:
    """One compressed codec of a run (picklable: the model travels as bytes to the workers).

    Attributes:
        name: :func:`codec_name`.
        variant: the model variant it was compressed from.
        spec: the compression method and options.
        size: the measured size of its encoder.
        details: the method's JSON-ready facts.
        seconds: wall time of ``compress`` (s).
        state: the compressed model as ``torch.save`` bytes (on the CPU).
    """

    name: str
    variant: str
    spec: CompressionSpec
    size: EncoderSize
    details: dict[str, Any]
    seconds: float
    state: bytes

    def load(self, device: str = "cpu") -> torch.nn.Module:
        """The compressed model on ``device``, in eval mode."""
        model = torch.load(io.BytesIO(self.state), map_location=device, weights_only=False)
        return model.eval()

    def row(self) -> dict[str, Any]:
        """Row of ``compression.csv``: codec, variant, method, options, seconds, the size
        columns and the method's details (JSON)."""
        return {
            "codec": self.name, "model": self.variant, "compression": self.spec.method,
            "options": self.spec.options_json, "seconds": self.seconds,
            **size_columns(self.size), "details": json.dumps(self.details, sort_keys=True),
        }  # fmt: skip


def compress_codec(
    variant: str, model: torch.nn.Module, images: torch.Tensor, spec: CompressionSpec
) -> CompressedCodec:
    """Compress ``model`` (the trained ``variant``) with ``spec`` on ``images`` ``[B, C, H, W]``.

    The global torch RNG is forked and seeded (0) around the method, so nothing after it draws
    differently and a rerun compresses identically.
    """
    method = COMPRESSION.get(spec.method)(**spec.options)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        result = method.compress(model, images)
    seconds = time.perf_counter() - start
    buffer = io.BytesIO()
    torch.save(result.model.cpu(), buffer)
    return CompressedCodec(codec_name(variant, spec), variant, spec, result.size,
                           json.loads(json.dumps(result.details, default=str)), seconds,
                           buffer.getvalue())  # fmt: skip


def dense_size(model: torch.nn.Module) -> EncoderSize:
    """:func:`~semcom.compression.measure_encoder` of an uncompressed codec (the global torch
    RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        return measure_encoder(model, tuple(model.input_shape))


def size_columns(size: EncoderSize) -> dict[str, Any]:
    """The :data:`SIZE_COLUMNS` of ``size``."""
    return {
        "encoder_params": int(size.params),
        "encoder_nonzero_params": int(size.nonzero_params),
        "encoder_flops": float(size.flops),
        "encoder_effective_flops": float(size.effective_flops),
        "encoder_weight_bits": float(size.weight_bits),
    }


__all__ = [
    "NONE",
    "SIZE_COLUMNS",
    "CompressedCodec",
    "CompressionSpec",
    "codec_name",
    "compress_codec",
    "dense_size",
    "resolve_compression",
    "size_columns",
]
