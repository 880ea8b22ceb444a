"""``build_model``: the registry of semantic-model architectures, chosen by name."""

from __future__ import annotations

from typing import Any

from channels.errors import check_int, fail
from semcom.limits import MAX_FEATURES
from semcom.models.base import SemanticModel
from semcom.models.cnn import ConvAutoencoder
from semcom.models.mlp import MLPAutoencoder
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
    n = check_int("n_features", n_features, 1, MAX_FEATURES)
    known = set(cls.DEFAULTS) | ({"L"} if "scalars_per_feature" in cls.DEFAULTS else set())
    unknown = sorted(set(options) - known)
    if unknown:
        raise fail(f"{name} option", unknown[0], ", ".join(sorted(known)))
    resolved = cls.resolve(n, options)
    check_model_size(name, cls.parameter_count(n, resolved), resolved)
    return resolved


def at_input_shape(model: SemanticModel, shape: Any) -> SemanticModel:
    """``model`` made to take images of ``shape`` ``(C, H, W)``, with the same weights.

    Only the fully convolutional ``cnn`` with channel features (``scalar_features=False``)
    has weights that do not depend on the image size: the returned copy is built with
    ``input_shape = shape`` and loads ``model``'s state; feature ``i`` is still latent channel
    ``i``, now of ``L = (H/4)(W/4)`` scalars, so ``N`` and the features' meaning stay
    (:mod:`semcom.photos`). ``model`` itself when the shape is already its own.

    Args:
        model: a trained model.
        shape: ``(C, H, W)`` of the images it is to take (``C`` its own, ``H, W`` multiples of
            4).

    Returns:
        ``model``, or a copy on the same device, in the same train/eval mode.

    Raises:
        ConfigError: a model whose weights depend on the image size (``mlp``, ``vit``,
            ``cnn`` with scalar features, a wrapped codec), another channel count or a side
            that is not a multiple of 4.

    Examples:
        >>> import torch
        >>> small = build_model("cnn", 8, input_shape=[3, 32, 32])
        >>> big = at_input_shape(small, (3, 64, 96))
        >>> big.scalars_per_feature, tuple(big(torch.rand(1, 3, 64, 96)).shape)
        (384, (1, 3, 64, 96))
    """
    shape = tuple(int(s) for s in shape)
    if shape == tuple(model.input_shape):
        return model
    own = list(model.input_shape)
    if type(model) is not ConvAutoencoder or model.options.get("scalar_features"):
        allowed = (
            f"the model's input shape {own}, or a fully convolutional codec "
            "(model.name cnn with scalar_features false) to evaluate at another size"
        )
        raise fail("data", f"images of shape {list(shape)}", allowed)
    if shape[0] != own[0]:
        raise fail("data", f"images of shape {list(shape)}", f"{own[0]} channels, as trained")
    options = {**model.options, "input_shape": list(shape)}
    twin = build_model(model.name, model.n_features, **options)
    twin.load_state_dict(model.state_dict())
    device = next(model.parameters()).device
    return twin.to(device).train(model.training)
