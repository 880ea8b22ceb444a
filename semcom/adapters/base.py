"""The ``adapter`` family: parameter-efficient tuning of a trained codec.

An adapter method freezes a trained :class:`~semcom.models.base.SemanticModel` and adds a small
set of trainable parameters to it, so that adapting the codec to a new channel (another SNR,
another fading class) trains and stores only those. The trainer (:mod:`semcom.train`) attaches
the adapter selected by ``TrainConfig.adapter`` to the model of ``TrainConfig.init_from`` before
the first step; the one training loop then updates what ``requires_grad`` leaves trainable.

Contract of an :class:`Adapter` subclass (registered with ``@ADAPTER.register``):

- ``attach(model, seed)``: in place, freeze every parameter of ``model`` and add the adapter's
  modules (as submodules, so they are in ``state_dict`` and on the model's device); return the
  model. Right after ``attach`` the model computes exactly what it computed before (adapters
  start at a zero update), and attaching to a freshly built model of the same options gives
  the same parameter names and shapes (checkpoints rebuild the model that way).
- ``layers(model)``: the adapter's trainable units, ``{layer name: [parameter names]}`` in
  forward order (what a layer-selection method such as IST samples from).
- ``set_scale(model, scales)``: multiply the output of each named unit by ``scales[name]``
  (1 restores it); layer-selection probes use it to suppress units.

:func:`trainable_parameter_count` is the number the adaptation experiment reports.
"""

from __future__ import annotations

from typing import Any

import torch

from semcom.params import Configurable
from semcom.registry import Registry

ADAPTER = Registry("adapter")
"""The ``adapter`` method family: name -> :class:`Adapter` subclass."""


class Adapter(Configurable):
    """Base class of an adapter method (module docstring for the contract)."""

    def __init__(self) -> None:
        """An adapter without options (subclasses take theirs as keyword arguments)."""

    def attach(self, model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        """Freeze ``model``, add the adapter (initialised from ``seed``), return ``model``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def layers(self, model: torch.nn.Module) -> dict[str, list[str]]:
        """Trainable units of an attached ``model``: name -> its parameter names."""
        raise NotImplementedError  # pragma: no cover - abstract

    def set_scale(self, model: torch.nn.Module, scales: dict[str, float]) -> None:
        """Scale the output of the named units (1: unchanged)."""
        raise NotImplementedError  # pragma: no cover - abstract


def trainable_parameter_count(model: torch.nn.Module) -> int:
    """Number of scalars in the parameters of ``model`` that require a gradient.

    Examples:
        >>> layer = torch.nn.Linear(3, 2)
        >>> trainable_parameter_count(layer)
        8
        >>> _ = layer.bias.requires_grad_(False)
        >>> trainable_parameter_count(layer)
        6
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_adapter(method: str, options: dict[str, Any]) -> Adapter:
    """The adapter registered as ``method``, built from ``options``.

    Raises:
        ConfigError: unknown method, an option it does not take, or a bad option value
            (the field is named ``adapter_options.<option>``).
    """
    return ADAPTER.build(method, options, "adapter_options")
