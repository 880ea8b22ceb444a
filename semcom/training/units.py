"""The units a layer-selection method (IST, random layers) samples, and how to suppress one.

A *unit* is a named group of trainable parameters updated or suppressed together:

- **adapted model** (an :class:`~semcom.adapters.base.Adapter` attached, found as the model's
  ``semcom_adapter`` attribute): the adapter's ``layers(model)``, one unit per wrapped layer in
  forward order; suppressing unit ``l`` by ``s`` scales its adapter output,
  ``y = base(x) + s · Δ_l(x)`` (``adapter.set_scale``);
- **plain model**: every module with parameters of its own, in the order ``encode`` then
  ``decode`` reach it (parameters held by the model itself, e.g. positional encodings, form
  the unit ``"(model)"``; modules the codec does not run, such as the classifier head, come
  last); suppressing unit ``l`` by ``s`` scales its weight change since the units were bound,
  ``θ_l ← θ_l0 + s (θ_l - θ_l0)`` (``θ_l0``: the weights at the first step).

Only parameters with ``requires_grad`` count.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from semcom.adapters.lowrank import ADAPTER_ATTRIBUTE, traced_modules

ROOT = "(model)"
"""Unit name of the parameters registered on the model itself."""


def _own_trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters(recurse=False))


def plain_units(model: nn.Module) -> dict[str, list[str]]:
    """Units of a model without adapter: module path -> its own trainable parameter names.

    Examples:
        >>> from semcom.models import build_model
        >>> units = plain_units(build_model("mlp", 4))
        >>> list(units)[:3], units["encoder.1"]
        (['encoder.1', 'encoder.2', 'encoder.3'], ['encoder.1.weight', 'encoder.1.bias'])
    """
    modules = dict(model.named_modules())
    try:
        seen = traced_modules(model, lambda m: _own_trainable(m))
        order = seen["encoder"] + seen["decoder"]
    except Exception:  # noqa: BLE001 - a model that cannot be traced keeps registration order
        order = []
    order += [n for n, m in modules.items() if n and n not in order and _own_trainable(m)]
    units: dict[str, list[str]] = {}
    root = [n for n, p in model.named_parameters(recurse=False) if p.requires_grad]
    if root:
        units[ROOT] = root
    for name in order:
        if name == "":
            continue
        own = modules[name].named_parameters(recurse=False)
        units[name] = [f"{name}.{n}" for n, p in own if p.requires_grad]
    return units


class Units:
    """The units of ``model`` and a context-free way to suppress some of them.

    Args:
        model: the model being trained (adapted or not).

    Attributes:
        names: unit names in forward order.
        params: unit name -> parameter names (``model.named_parameters()``).
        adapted: whether the units are an adapter's.
    """

    def __init__(self, model: nn.Module) -> None:
        self.adapter = getattr(model, ADAPTER_ATTRIBUTE, None)
        self.adapted = self.adapter is not None
        self.params = self.adapter.layers(model) if self.adapted else plain_units(model)
        self.names = list(self.params)
        self.theta0: dict[str, torch.Tensor] = {}
        if not self.adapted:
            named = dict(model.named_parameters())
            self.theta0 = {
                n: named[n].detach().clone() for names in self.params.values() for n in names
            }

    def __len__(self) -> int:
        return len(self.names)

    def mask(self, chosen: list[int]) -> set[str]:
        """Parameter names of the units at positions ``chosen``."""
        return {p for i in chosen for p in self.params[self.names[i]]}

    def suppress(self, model: nn.Module, chosen: list[int], scale: float) -> Any:
        """Suppress the units at ``chosen`` by ``scale``; returns what :meth:`restore` needs."""
        if self.adapted:
            self.adapter.set_scale(model, {self.names[i]: scale for i in chosen})
            return chosen
        named = dict(model.named_parameters())
        saved = {}
        with torch.no_grad():
            for i in chosen:
                for n in self.params[self.names[i]]:
                    p = named[n]
                    saved[n] = p.detach().clone()
                    theta0 = self.theta0[n].to(p.device, p.dtype)
                    p.copy_(theta0 + scale * (p - theta0))
        return saved

    def restore(self, model: nn.Module, saved: Any) -> None:
        """Undo :meth:`suppress`."""
        if self.adapted:
            self.adapter.set_scale(model, {self.names[i]: 1.0 for i in saved})
            return
        named = dict(model.named_parameters())
        with torch.no_grad():
            for n, value in saved.items():
                named[n].copy_(value)
