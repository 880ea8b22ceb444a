"""Importance-driven compression of the semantic codec's encoder (the ``compression`` family).

Public API::

    COMPRESSION                        the "compression" family of semcom.registry
    Compressor, CompressionResult      the method base class and its result
    EncoderSize, measure_encoder       measured params, FLOPs and weight bits of an encoder
    encoder_modules, encoder_parameters, compressible_layers

Adding a method is one module with a :class:`Compressor` subclass registered with
``@COMPRESSION.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.compression.base import (
    COMPRESSION,
    FLOAT_BITS,
    CompressionResult,
    Compressor,
    EncoderSize,
    compressible_layers,
    encoder_modules,
    encoder_parameters,
    measure_encoder,
)

__all__ = [
    "COMPRESSION",
    "FLOAT_BITS",
    "CompressionResult",
    "Compressor",
    "EncoderSize",
    "compressible_layers",
    "encoder_modules",
    "encoder_parameters",
    "measure_encoder",
]
