"""The interface every semantic model implements: ``encode`` -> features, ``decode`` -> image.

A semantic model maps an image ``x`` ``[B, C, H, W]`` with pixels in ``[0, 1]`` to ``N``
semantic features of ``L`` scalars each, ``z = tanh(f(x))`` ``[B, N, L]`` in ``[-1, 1]`` (the
range of the uniform quantiser of ``channels.bits``), and back to a reconstruction
``x_hat = g(z)`` ``[B, C, H, W]`` in ``[0, 1]`` (a final sigmoid). Feature ``i`` is the unit that
the link selects, matches to a subchannel and modulates as a whole (docs/method.md §1.3).

``forward(x, channel, state)`` is ``decode(channel(encode(x, state)), state)``; ``channel`` is
any module mapping ``z [B, N, L] -> z~ [B, N, L]``, e.g. the ISFR training channel of
:mod:`semcom.isfr`. ``state`` is the frames' channel state
(:class:`semcom.channel_state.ChannelState`: SNR, fading gain, channel class); only a
``conditioned`` model (channel-conditioned experts, :mod:`semcom.models.experts`) uses it,
the others accept and ignore it.

An optional classifier head (``num_classes``) classifies reconstructions,
``classify(x_hat) -> logits [B, num_classes]``, for the task-oriented metric (accuracy).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import ConfigError
from semcom.channel_state import ChannelState


class ClassifierHead(nn.Module):
    """Small CNN classifier on images ``[B, C, H, W]`` -> logits ``[B, num_classes]``.

    ``conv3x3(C->32) -> PReLU -> conv3x3(32->64, stride 2) -> PReLU -> global average pool ->
    linear(64 -> num_classes)``; works for any ``H, W >= 2``.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.PReLU(32),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.PReLU(64),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @staticmethod
    def parameter_count(in_channels: int, num_classes: int) -> int:
        """Parameters of the head (the layers above): ``9·32·C + 32 + 32`` (conv, PReLU),
        ``9·32·64 + 64 + 64``, ``64·classes + classes``."""
        return (9 * 32 * in_channels + 64) + (9 * 32 * 64 + 128) + 65 * num_classes


class SemanticModel(nn.Module):
    """Base class: subclasses implement ``_features(x)`` (pre-tanh ``[B, N, L]``) and ``decode``.

    Attributes:
        name: registry name of the architecture (``"cnn"``, ``"mlp"``, ``"vit"``).
        n_features: ``N``, the number of semantic features.
        scalars_per_feature: ``L``, scalars per feature.
        input_shape: ``(C, H, W)`` of the images it takes.
        num_classes: classes of the classifier head, or ``None`` without one.
        options: the resolved build options (JSON-serialisable), enough to rebuild the model with
            ``build_model(name, n_features, **options)``.
    """

    name: str = ""
    conditioned: bool = False
    """Whether ``encode``/``decode`` use the channel state (channel-conditioned experts)."""

    def __init__(
        self,
        n_features: int,
        scalars_per_feature: int,
        input_shape: tuple[int, int, int],
        num_classes: int | None,
        options: dict[str, Any],
    ) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.scalars_per_feature = int(scalars_per_feature)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.options = dict(options)
        self.head = None if num_classes is None else ClassifierHead(input_shape[0], num_classes)

    # subclasses -------------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(
        self, z: torch.Tensor, state: ChannelState | None = None
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """Features ``z`` ``[B, N, L]`` -> reconstruction ``x_hat`` ``[B, C, H, W]`` in [0, 1].

        ``state`` is the frames' :class:`~semcom.channel_state.ChannelState`; a model that is
        not ``conditioned`` ignores it."""
        raise NotImplementedError

    # public -----------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ConfigError` unless ``x`` has shape ``[B, C, H, W]`` of this model."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(
                f"x: tensor of shape {tuple(x.shape)} is invalid; allowed: "
                f"[B, {', '.join(map(str, self.input_shape))}] for this {self.name} model"
            )

    def encode(self, x: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """Image ``x`` ``[B, C, H, W]`` in [0, 1] -> features ``z = tanh(f(x))`` ``[B, N, L]``.

        ``state`` (the frames' channel state) reaches ``_features`` only in a ``conditioned``
        model, whose ``_features(x, state)`` takes it."""
        self.check_input(x)
        if self.conditioned:
            return torch.tanh(self._features(x, state))
        return torch.tanh(self._features(x))

    def check_features(self, z: torch.Tensor) -> None:
        """Raise :class:`ConfigError` unless ``z`` has shape ``[B, N, L]`` of this model."""
        if z.ndim != 3 or tuple(z.shape[1:]) != (self.n_features, self.scalars_per_feature):
            raise ConfigError(
                f"z: tensor of shape {tuple(z.shape)} is invalid; allowed: "
                f"[B, {self.n_features}, {self.scalars_per_feature}] (batch, N, L)"
            )

    def forward(
        self,
        x: torch.Tensor,
        channel: nn.Module | None = None,
        state: ChannelState | None = None,
    ) -> torch.Tensor:
        """``decode(channel(encode(x, state)), state)``; ``channel=None`` is the identity."""
        z = self.encode(x, state)
        if channel is not None:
            z = channel(z)
        return self.decode(z, state)

    def classify(self, x_hat: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of the classifier head on images ``[B, C, H, W]``."""
        if self.head is None:
            raise ConfigError(
                "num_classes: None is invalid for classify(); allowed: build the model with "
                "num_classes=C to add a classifier head"
            )
        return self.head(x_hat)

    @classmethod
    def parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        """Parameters of ``cls(n_features, **options)`` for resolved ``options``, computed from
        the layer shapes (nothing is built): the architecture's own plus the head's."""
        classes = options.get("num_classes")
        head = (
            0
            if classes is None
            else ClassifierHead.parameter_count(options["input_shape"][0], classes)
        )
        return cls._own_parameter_count(n_features, options) + head

    @classmethod
    def _own_parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    def extra_repr(self) -> str:
        return (
            f"N={self.n_features}, L={self.scalars_per_feature}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}"
        )
