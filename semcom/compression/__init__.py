"""Importance-driven compression of the semantic codec's encoder (the ``compression`` family).

Public API::

    COMPRESSION                        the "compression" family of semcom.registry
    Compressor, CompressionResult      the method base class and its result
    EncoderSize, measure_encoder       measured params, FLOPs and weight bits of an encoder
    encoder_modules, encoder_parameters, compressible_layers
    MagnitudePruning, SPAPruning,      pruning methods ("magnitude", "spa", "cts", "hidenseek");
    CTSPruning, HideNseek              their helpers live in budget, groups, obs, concrete,
                                       synflow and prunable

Adding a method is one module with a :class:`Compressor` subclass registered with
``@COMPRESSION.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.compression.amp import AMP
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
from semcom.compression.cts import CTSPruning
from semcom.compression.hidenseek import HideNseek
from semcom.compression.layerwise_quant import LayerwiseQuant
from semcom.compression.maestro import Maestro
from semcom.compression.magnitude import MagnitudePruning
from semcom.compression.pruning_game import PruningGame
from semcom.compression.pst import PST
from semcom.compression.rsq import RSQ
from semcom.compression.spa import SPAPruning
from semcom.compression.svdquant import SVDQuant
from semcom.compression.uniform_quant import UniformQuant

__all__ = [
    "AMP",
    "COMPRESSION",
    "FLOAT_BITS",
    "PST",
    "RSQ",
    "CTSPruning",
    "CompressionResult",
    "Compressor",
    "EncoderSize",
    "HideNseek",
    "LayerwiseQuant",
    "Maestro",
    "MagnitudePruning",
    "PruningGame",
    "SPAPruning",
    "SVDQuant",
    "UniformQuant",
    "compressible_layers",
    "encoder_modules",
    "encoder_parameters",
    "measure_encoder",
]
