"""Semantic encoders/decoders: ``build_model(name, n_features, **options) -> SemanticModel``.

See ``docs/contracts.md``: ``encode`` ``[B, C, H, W]`` in [0, 1] -> ``z`` ``[B, N, L]`` in [-1, 1],
``decode`` back to ``[B, C, H, W]`` in [0, 1], optional classifier head ``classify``.
"""

from semcom.models.base import ClassifierHead, SemanticModel
from semcom.models.build import MODELS, build_model, resolve_model_options
from semcom.models.cnn import ConvAutoencoder
from semcom.models.mlp import MLPAutoencoder
from semcom.models.vit import ViTAutoencoder

__all__ = [
    "MODELS",
    "ClassifierHead",
    "ConvAutoencoder",
    "MLPAutoencoder",
    "SemanticModel",
    "ViTAutoencoder",
    "build_model",
    "resolve_model_options",
]
