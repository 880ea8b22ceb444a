"""The size bound of a model, checked before anything is built.

A model may hold at most :data:`MAX_PARAMETER_BYTES` bytes of parameters: ``parameters ·
BYTES_PER_PARAMETER`` (float32) ``<= 1 GiB``, i.e. at most 268,435,456 parameters. The count
comes from the layer shapes (``SemanticModel.parameter_count``), so ``hidden: [1e9, 1e9]`` or
``num_classes: 1000000000`` is refused in microseconds instead of allocating terabytes. Training
needs about four times this (weights, gradients and Adam's two moments).
"""

from __future__ import annotations

from typing import Any

from channels.errors import ConfigError

BYTES_PER_PARAMETER = 4
MAX_PARAMETER_BYTES = 1 << 30
MAX_PARAMETERS = MAX_PARAMETER_BYTES // BYTES_PER_PARAMETER


def _bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_model_size(name: str, count: int, options: dict[str, Any]) -> None:
    """Raise ConfigError (field ``options``) if ``count`` parameters exceed the bound.

    Examples:
        >>> check_model_size("mlp", 1000, {})
        >>> check_model_size("mlp", 10**12, {"hidden": [10**6, 10**6]})
        Traceback (most recent call last):
        ...
        channels.errors.ConfigError: options: {'hidden': [1000000, 1000000]} is invalid; \
allowed: options of a model of at most 268,435,456 parameters (1.0 GiB of float32); \
these give the mlp model 1,000,000,000,000 parameters (3.6 TiB)
    """
    if count <= MAX_PARAMETERS:
        return
    shown = repr({k: v for k, v in options.items() if k != "input_shape"})
    shown = shown if len(shown) <= 100 else shown[:97] + "..."
    raise ConfigError(
        f"options: {shown} is invalid; allowed: options of a model of at most "
        f"{MAX_PARAMETERS:,} parameters ({_bytes(MAX_PARAMETER_BYTES)} of float32); these give "
        f"the {name} model {count:,} parameters ({_bytes(count * BYTES_PER_PARAMETER)})"
    )


__all__ = ["BYTES_PER_PARAMETER", "MAX_PARAMETERS", "MAX_PARAMETER_BYTES", "check_model_size"]
