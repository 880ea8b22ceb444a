"""Training methods: hooks into the one loop of :mod:`semcom.train` (the ``training`` family).

Public API::

    TRAINING, TrainingHook, build_hook    the family, the hook base class, its builder
    DoublyRobust (doubly-robust)          KL-DRO sample weights
    SatImp (satimp)                       saturation x importance loss weights
    PADA (pada)                           gradient-norm importance sampling of the data
    IST (ist)                             layer scores from suppression probes, sparse tuning
    RandomLayers (random-layers)          uniformly random layer subsets (IST's baseline)
    EntropyAttention (entropy-attention)  attention-entropy regulariser with learnable targets

Adding a method is one module with a :class:`TrainingHook` subclass registered with
``@TRAINING.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.training.base import TRAINING, TrainingHook, build_hook
from semcom.training.doubly_robust import DoublyRobust, dro_weights
from semcom.training.entropy_attention import (
    EntropyAttention,
    attention_entropy,
    entropy_penalty,
)
from semcom.training.ist import IST
from semcom.training.pada import PADA, grad_norm_proxy, mix_probs
from semcom.training.random_layers import RandomLayers
from semcom.training.satimp import SatImp, satimp_weights

__all__ = [
    "IST",
    "PADA",
    "TRAINING",
    "DoublyRobust",
    "EntropyAttention",
    "RandomLayers",
    "SatImp",
    "TrainingHook",
    "attention_entropy",
    "build_hook",
    "dro_weights",
    "entropy_penalty",
    "grad_norm_proxy",
    "mix_probs",
    "satimp_weights",
]
