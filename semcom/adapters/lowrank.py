"""Residual low-rank updates of a codec's linear and convolutional layers (LoRA and MoS share it).

A wrapped layer computes

    y = base(x) + γ · s_l · B (A x),        γ = alpha / r,

with the base layer frozen, ``A`` ``[r, a]`` and ``B`` ``[b, r]`` (rank ``r``), ``s_l`` the unit's
scale (:meth:`LowRankAdapted.scale`, 1 by default; layer-selection probes lower it) and ``γ``
LoRA's ``alpha / r``. Per base layer kind (``a``: length of a row of ``A``, ``b``: of a column
of ``B``):

- ``nn.Linear(in, out)``: ``a = in``, ``b = out``; ``ΔW = γ s B A`` ``[out, in]``.
- ``nn.Conv2d(c_in, c_out, k)`` (``groups = 1``): ``a = c_in·kh·kw``; ``A`` is a convolution with
  the base's kernel size, stride, padding and dilation to ``r`` channels, ``B`` a 1x1
  convolution ``r -> c_out``; ``ΔW[o] = γ s Σ_j B[o, j] A[j]`` (``A`` rows as ``[c_in, kh, kw]``).
- ``nn.ConvTranspose2d(c_in, c_out, k)`` (the CNN decoder's layers, ``groups = 1``): ``A`` is a
  transposed convolution with the base's geometry to ``r`` channels, then the same 1x1 ``B``;
  ``ΔW[i, o] = γ s Σ_j A[j, i] B[o, j]`` in the transposed layout ``[c_in, c_out, kh, kw]``.

Each case is linear in ``x``, so ``y - base(x)`` is the base operation with weight ``ΔW`` and no
bias (:meth:`LowRankAdapted.delta_weight`): the update can be merged into the base weight.
Where ``A`` and ``B`` come from is the subclass's business (:meth:`LowRankAdapted.factors`):
own parameters (LoRA) or shards gathered from a shared pool (MoS).

Which layers are wrapped: every ``nn.Linear``, ``nn.Conv2d`` and ``nn.ConvTranspose2d`` that
the codec's ``encode`` (``targets="encoder"``), ``decode`` (``"decoder"``) or either (``"all"``)
runs, found by tracing one forward pass of a zero image; the classifier head is not part of the
codec and is never wrapped. Units are named by module path (``"encoder.1"``) and listed in the
order the forward pass reaches them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from channels.errors import ConfigError, check_choice, fail

TARGETS = ("all", "encoder", "decoder")
"""Values of the ``targets`` option: which half of the codec gets adapters."""

ADAPTABLE = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
"""Layer kinds that get a low-rank update."""

ADAPTER_ATTRIBUTE = "semcom_adapter"
"""Attribute of an adapted model holding the :class:`~semcom.adapters.base.Adapter` attached."""


def check_targets(value: Any) -> str:
    """``value`` if it is one of :data:`TARGETS`, else ConfigError naming ``targets``."""
    return check_choice("targets", value, TARGETS)


def fan_dims(base: nn.Module) -> tuple[int, int]:
    """``(a, b)``: length of a row of ``A`` and of a column of ``B`` for ``base``.

    Examples:
        >>> fan_dims(nn.Linear(3, 5))
        (3, 5)
        >>> fan_dims(nn.Conv2d(2, 4, 3))
        (18, 4)
        >>> fan_dims(nn.ConvTranspose2d(2, 4, 3))
        (18, 4)
    """
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features
    if isinstance(base, nn.Conv2d | nn.ConvTranspose2d):
        kh, kw = base.kernel_size
        return base.in_channels * kh * kw, base.out_channels
    raise TypeError(f"no low-rank update for {type(base).__name__}")  # pragma: no cover


class LowRankAdapted(nn.Module):
    """A frozen ``base`` layer plus ``γ · s · B A`` (module docstring); subclasses give ``A, B``.

    Args:
        base: the layer to adapt (``nn.Linear``, ``nn.Conv2d``, ``nn.ConvTranspose2d``); its
            parameters are frozen in place.
        rank: ``r``.
        alpha: ``γ = alpha / r``.

    Attributes:
        scale: ``s``, the unit's output scale (a plain float, not saved in ``state_dict``).
    """

    def __init__(self, base: nn.Module, rank: int, alpha: float) -> None:
        super().__init__()
        if isinstance(base, nn.Conv2d | nn.ConvTranspose2d):
            if base.groups != 1 or base.padding_mode != "zeros":
                raise fail(
                    "targets", type(base).__name__, "convolutions with groups=1, zero padding"
                )
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.scale = 1.0
        self.a_dim, self.b_dim = fan_dims(base)

    @property
    def gamma(self) -> float:
        """``alpha / r``."""
        return self.alpha / self.rank

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A [r, a], B [b, r])`` as they stand."""
        raise NotImplementedError  # pragma: no cover - abstract

    def delta_weight(self) -> torch.Tensor:
        """``ΔW`` in the base weight's layout (shape of ``base.weight``), scales included."""
        A, B = self.factors()
        g = self.gamma * self.scale
        base = self.base
        if isinstance(base, nn.Linear):
            return g * (B @ A)
        kh, kw = base.kernel_size
        A4 = A.reshape(self.rank, base.in_channels, kh, kw)
        if isinstance(base, nn.Conv2d):
            return g * torch.einsum("oj,jikl->oikl", B, A4)
        return g * torch.einsum("jikl,oj->iokl", A4, B)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """``γ s B (A x)`` through the rank-``r`` bottleneck (never forms ``ΔW``)."""
        A, B = self.factors()
        base = self.base
        if isinstance(base, nn.Linear):
            h = F.linear(x, A)
            out = F.linear(h, B)
        else:
            kh, kw = base.kernel_size
            A4 = A.reshape(self.rank, base.in_channels, kh, kw)
            if isinstance(base, nn.Conv2d):
                h = F.conv2d(x, A4, None, base.stride, base.padding, base.dilation)
            else:
                h = F.conv_transpose2d(
                    x,
                    A4.transpose(0, 1),
                    None,
                    base.stride,
                    base.padding,
                    base.output_padding,
                    1,
                    base.dilation,
                )
            out = F.conv2d(h, B[:, :, None, None])
        return (self.gamma * self.scale) * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.scale == 0.0:
            return y
        return y + self.update(x).to(y.dtype)


def _probe_input(model: nn.Module) -> tuple[torch.Tensor, Any]:
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError(
            f"model: {type(model).__name__} is invalid; allowed: a semantic model "
            "(encode/decode, input_shape)"
        )
    device = next(model.parameters()).device
    state = None
    if getattr(model, "conditioned", False):
        from semcom.channel_state import ChannelState

        state = ChannelState.constant(10.0, "awgn", 1, device=device)
    return torch.zeros(1, *shape, device=device), state


def traced_modules(model: nn.Module, select: Callable[[nn.Module], bool]) -> dict[str, list[str]]:
    """Names of the modules ``m`` with ``select(m)`` that ``encode`` and ``decode`` run, in
    call order.

    Returns:
        ``{"encoder": [...], "decoder": [...]}`` (a module run by both counts as encoder).
    """
    x, state = _probe_input(model)
    names = {id(m): n for n, m in model.named_modules()}
    seen: dict[str, list[str]] = {"encoder": [], "decoder": []}
    phase = ["encoder"]

    def pre_hook(module: nn.Module, args: Any) -> None:
        name = names[id(module)]
        if name not in seen["encoder"] and name not in seen["decoder"]:
            seen[phase[0]].append(name)

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules() if select(m)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            z = model.encode(x, state) if state is not None else model.encode(x)
            phase[0] = "decoder"
            model.decode(z, state) if state is not None else model.decode(z)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


def target_modules(model: nn.Module, targets: str) -> list[str]:
    """Names of the layers to wrap for ``targets`` (forward order)."""
    seen = traced_modules(model, lambda m: isinstance(m, ADAPTABLE))
    if targets == "encoder":
        return seen["encoder"]
    if targets == "decoder":
        return seen["decoder"]
    return seen["encoder"] + seen["decoder"]


def check_unadapted(model: nn.Module) -> None:
    """ConfigError if ``model`` already carries an adapter (adapters do not stack)."""
    attached = getattr(model, ADAPTER_ATTRIBUTE, None)
    if attached is not None:
        raise fail("model", type(attached).__name__, "a codec without an adapter attached")


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` at dotted path ``name`` of ``model``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def freeze(model: nn.Module) -> None:
    """``requires_grad = False`` on every parameter of ``model``."""
    for p in model.parameters():
        p.requires_grad_(False)


def adapted_units(model: nn.Module) -> dict[str, LowRankAdapted]:
    """The wrapped layers of ``model`` by module path, in attach (forward) order."""
    units = getattr(model, "_lowrank_units", None)
    if units is None:
        return {}
    return {n: model.get_submodule(n) for n in units}


def set_unit_scales(model: nn.Module, scales: dict[str, float]) -> None:
    """``s_l = scales[name]`` for each named wrapped unit (ConfigError on an unknown name)."""
    units = adapted_units(model)
    for name, value in scales.items():
        if name not in units:
            raise fail("scales", name, f"a unit of the adapter: {', '.join(units) or 'none'}")
        s = float(value)
        if not math.isfinite(s):
            raise fail(f"scales.{name}", value, "a finite number")
        units[name].scale = s
