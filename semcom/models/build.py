"""``build_model``: the registry of semantic-model architectures, chosen by name."""

from __future__ import annotations

from typing import Any

from channels.errors import fail
from semcom.limits import MAX_FEATURES
from semcom.models.base import SemanticModel
from semcom.models.cnn import ConvAutoencoder
from semcom.models.mlp import MLPAutoencoder
from semcom.models.options import positive_int
from semcom.models.size import check_model_size
from semcom.models.vit import ViTAutoencoder

MODELS: dict[str, type[SemanticModel]] = {
    "cnn": ConvAutoencoder,
    "mlp": MLPAutoencoder,
    "vit": ViTAutoencoder,
}


def build_model(name: str, n_features: int = 16, **options: Any) -> SemanticModel:
    """Build a semantic model by name; weights come from torch's global generator.

    Args:
        name: ``"cnn"`` (DeepJSCC-style conv auto-encoder, 3x32x32, ``L = 64``; option
            ``scalar_features=True`` for ``L = 1``), ``"mlp"`` (digits, 1x8x8, option
            ``scalars_per_feature``/``L``, default 4) or ``"vit"`` (one token per feature).
        n_features: ``N``, in 1..4096 (further constraints per architecture).
        **options: architecture options (see each class's ``DEFAULTS``), plus ``num_classes``
            for a classifier head and ``input_shape`` ``[C, H, W]``.

    Returns:
        The model, in train mode; ``model.options`` holds the resolved options, so
        ``build_model(name, n_features, **model.options)`` rebuilds the same architecture.

    Raises:
        ConfigError: unknown name or option, or a bad value (before anything is built).
    """
    resolved = resolve_model_options(name, n_features, **options)
    return MODELS[name](int(n_features), **resolved)


def resolve_model_options(name: str, n_features: int = 16, **options: Any) -> dict[str, Any]:
    """Validate a model's name, ``n_features`` and options and fill in defaults (nothing built).

    Returns the options that :func:`build_model` would store in ``model.options``.

    Raises:
        ConfigError: as :func:`build_model`, and (field ``options``) when the model would hold
            more parameters than :data:`semcom.models.size.MAX_PARAMETERS`.
    """
    if name not in MODELS:
        raise fail("model", name, ", ".join(MODELS))
    cls = MODELS[name]
    n = positive_int("n_features", n_features, MAX_FEATURES)
    known = set(cls.DEFAULTS) | ({"L"} if "scalars_per_feature" in cls.DEFAULTS else set())
    unknown = sorted(set(options) - known)
    if unknown:
        raise fail(f"{name} option", unknown[0], ", ".join(sorted(known)))
    resolved = cls.resolve(n, options)
    check_model_size(name, cls.parameter_count(n, resolved), resolved)
    return resolved
