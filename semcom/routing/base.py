"""The ``routing`` family: importance spent as compute (experts, routers, merging, caching).

A routing method decides which part of a codec runs for which input or channel state. Its
mechanism lives in up to four places, each optional (the default changes nothing):

- ``build(model, n_features, model_options, seed)``: the architecture the trainer builds
  (default :func:`semcom.models.build_model`); e.g. channel-conditioned experts with the
  method's router (:mod:`semcom.models.experts`).
- ``hook()``: a :class:`~semcom.training.base.TrainingHook` run by the one training loop next to
  ``TrainConfig.method`` (router losses, usage counts, partitions of the data).
- ``finalize(model, images, states)``: after training, fit the method's post-training state
  from training images ``[M, C, H, W]`` and their channel states (heads to keep, merge
  coefficients, a forecaster, cache thresholds), kept in the method itself.
- ``apply(model)``: the deployed model, given that state (pruned, merged, cached, wrapped);
  it must be deterministic, because a checkpoint stores the trained weights plus
  ``state_dict()`` and rebuilds the deployed model with ``apply``.

``models`` names the architectures a method applies to (empty: any); the trainer refuses others
with a one-line error before any work.
"""

from __future__ import annotations

from typing import Any

import torch

from channels.errors import fail
from semcom.channel_state import ChannelState
from semcom.params import Configurable
from semcom.registry import Registry

ROUTING = Registry("routing")
"""The ``routing`` method family: name -> :class:`RoutingMethod` subclass."""


class RoutingMethod(Configurable):
    """Base class of a routing method (module docstring for the contract)."""

    models: tuple[str, ...] = ()
    """Architectures the method applies to (empty: any)."""

    def __init__(self) -> None:
        """A method without options (subclasses take theirs as keyword arguments)."""

    def build(
        self, model: str, n_features: int, model_options: dict[str, Any], seed: int = 0
    ) -> torch.nn.Module:
        """The model to train (weights from torch's global generator, seeded by the caller)."""
        from semcom.models import build_model

        return build_model(model, n_features, **model_options)

    def hook(self) -> Any:
        """A training hook for the loop, or ``None``."""
        return None

    def finalize(
        self, model: torch.nn.Module, images: torch.Tensor, states: ChannelState | None
    ) -> None:
        """Fit the post-training state from training images (default: nothing to fit)."""

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """The deployed model given the fitted state (default: ``model`` unchanged)."""
        return model

    def state_dict(self) -> dict[str, Any]:
        """The fitted state (tensors and plain values), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def check_architecture(method: RoutingMethod, name: str, model: str) -> None:
    """Raise :class:`ConfigError` (field ``model``) when ``method`` does not apply to ``model``."""
    if method.models and model not in method.models:
        raise fail("model", model, f"{' or '.join(method.models)} (routing method {name})")


def build_routing(method: str, options: dict[str, Any]) -> RoutingMethod:
    """The routing method registered as ``method``, built from ``options``.

    Raises:
        ConfigError: unknown method, an option it does not take, or a bad option value
            (the field is named ``routing_options.<option>``).
    """
    return ROUTING.build(method, options, "routing_options")
