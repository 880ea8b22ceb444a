"""Adapters: parameter-efficient tuning of a trained codec (the ``adapter`` family).

Public API::

    ADAPTER, Adapter, build_adapter, trainable_parameter_count

Adding a method is one module with an :class:`Adapter` subclass registered with
``@ADAPTER.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.adapters.base import ADAPTER, Adapter, build_adapter, trainable_parameter_count
from semcom.adapters.lora import LoRA
from semcom.adapters.mos import MoS

__all__ = [
    "ADAPTER",
    "Adapter",
    "LoRA",
    "MoS",
    "build_adapter",
    "trainable_parameter_count",
]
