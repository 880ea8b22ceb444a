"""The ``training`` family: hooks that change how the one training loop of :mod:`semcom.train`
weights, orders and updates.

A training method is a :class:`TrainingHook` subclass selected by ``TrainConfig.method`` (its
options in ``TrainConfig.method_options``). The loop asks the hook, at fixed points of every
epoch and step, for:

- ``sampler(epoch, n, generator)``: the epoch's sample indices (default: the permutation the
  loop uses without a hook);
- ``sample_weights(step, x, per_sample_loss)``: weights ``w`` ``[B]``; the step's loss becomes
  ``Σ_b w_b ℓ_b / Σ_b w_b`` instead of ``mean_b ℓ_b``;
- ``extra_loss(model, x, x_hat, z, state)``: a scalar added to the step's loss (``state``: the
  batch's :class:`~semcom.channel_state.ChannelState`, ``None`` without a channel-state
  training channel);
- ``probe(step, model, evaluate)``: before the step's update, ``evaluate()`` returns the step
  batch's mean loss (no gradient, the step's channel noise replayed identically on every call)
  for the model as it is at that moment, so a hook can score changes to it (IST's probes);
- ``layer_mask(step, model)``: the names of the parameters updated this step (the others get no
  gradient, hence no optimiser update: not even Adam's momentum or weight decay moves them);
- ``observe(epoch, indices, x, x_hat, per_sample_loss)``: what the step saw (after the update).

Every optional method returns ``None`` by default, meaning "no change": a run with the base hook
trains exactly as a run without one. ``setup(n, epochs)`` is called once before the first epoch
and ``state_dict`` / ``load_state_dict`` carry the hook's own state through checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from channels.errors import fail
from semcom.channel_state import ChannelState
from semcom.params import Configurable
from semcom.registry import Registry

TRAINING = Registry("training")
"""The ``training`` method family: name -> :class:`TrainingHook` subclass."""


class TrainingHook(Configurable):
    """Base class of a training method; every hook method is optional (``None``: no change).

    Examples:
        >>> hook = TrainingHook()
        >>> hook.sample_weights(0, torch.zeros(2, 1, 8, 8), torch.ones(2)) is None
        True
        >>> hook.sampler(1, 4, torch.Generator().manual_seed(0)).sort().values.tolist()
        [0, 1, 2, 3]
    """

    def __init__(self) -> None:
        """A hook without options (subclasses take theirs as keyword arguments)."""

    def setup(self, n: int, epochs: int) -> None:
        """Called once before training: ``n`` training samples, at most ``epochs`` epochs."""

    def sampler(self, epoch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices (int64 ``[M]``, values in ``[0, n)``) visited in ``epoch`` (1-based), in order.

        The default is the loop's own ``torch.randperm(n, generator=generator)``.
        """
        return torch.randperm(n, generator=generator)

    def sample_weights(
        self, step: int, x: torch.Tensor, per_sample_loss: torch.Tensor
    ) -> torch.Tensor | None:
        """Non-negative weights ``[B]`` of the batch's samples (detached losses ``[B]``)."""
        return None

    def extra_loss(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        z: torch.Tensor,
        state: ChannelState | None = None,
    ) -> torch.Tensor | None:
        """A scalar added to the step's loss (``x`` ``[B,C,H,W]``, ``z`` ``[B,N,L]``)."""
        return None

    def probe(self, step: int, model: torch.nn.Module, evaluate: Callable[[], float]) -> None:
        """Score the model before the step's update (``evaluate()``: the batch's mean loss)."""

    def layer_mask(self, step: int, model: torch.nn.Module) -> set[str] | None:
        """Names (``model.named_parameters()``) of the parameters updated at ``step``."""
        return None

    def observe(
        self,
        epoch: int,
        indices: torch.Tensor,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        per_sample_loss: torch.Tensor,
    ) -> None:
        """The step's sample indices, inputs, detached reconstructions and losses."""

    def state_dict(self) -> dict[str, Any]:
        """The hook's own state (tensors and plain values), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def build_hook(method: str, options: dict[str, Any]) -> TrainingHook:
    """The hook registered as ``method``, built from ``options`` (validated by its constructor).

    Raises:
        ConfigError: unknown method, an option it does not take, or a bad option value.
    """
    return TRAINING.build(method, options, "method_options")


class HookChain(TrainingHook):
    """Several hooks run as one (a training method next to a routing method's hook).

    Combination rule per hook method, over the members in order:

    - ``sample_weights``: the product of the members' weights (``None`` counts as all ones;
      ``None`` when every member gives ``None``);
    - ``extra_loss``: the sum of the members' terms (``None`` when all are ``None``);
    - ``layer_mask``: the intersection of the members' masks (``None`` members do not restrict);
    - ``sampler``: the first member that overrides :meth:`TrainingHook.sampler` decides;
    - ``setup``, ``probe``, ``observe``: called on every member;
    - ``state_dict``: ``{"0": first member's, "1": second's, ...}``.

    Examples:
        >>> chain = HookChain([TrainingHook(), TrainingHook()])
        >>> chain.sample_weights(0, torch.zeros(2, 1, 8, 8), torch.ones(2)) is None
        True
        >>> sorted(chain.state_dict())
        ['0', '1']
    """

    def __init__(self, hooks: list[TrainingHook]) -> None:
        """``hooks``: the members, in order."""
        if not hooks or not all(isinstance(h, TrainingHook) for h in hooks):
            raise fail("hooks", hooks, "a non-empty list of TrainingHook")
        self.hooks = list(hooks)

    def get_params(self) -> dict[str, Any]:
        """The members' names and options."""
        return {"hooks": [[type(h).__name__, h.get_params()] for h in self.hooks]}

    def setup(self, n: int, epochs: int) -> None:
        for h in self.hooks:
            h.setup(n, epochs)

    def sampler(self, epoch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        for h in self.hooks:
            if type(h).sampler is not TrainingHook.sampler:
                return h.sampler(epoch, n, generator)
        return super().sampler(epoch, n, generator)

    def sample_weights(
        self, step: int, x: torch.Tensor, per_sample_loss: torch.Tensor
    ) -> torch.Tensor | None:
        total = None
        for h in self.hooks:
            w = h.sample_weights(step, x, per_sample_loss)
            if w is not None:
                w = torch.as_tensor(w)
                total = w if total is None else total * w.to(total.device)
        return total

    def extra_loss(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        z: torch.Tensor,
        state: ChannelState | None = None,
    ) -> torch.Tensor | None:
        total = None
        for h in self.hooks:
            term = (
                h.extra_loss(model, x, x_hat, z)
                if state is None
                else h.extra_loss(model, x, x_hat, z, state)
            )
            if term is not None:
                total = term if total is None else total + term
        return total

    def probe(self, step: int, model: torch.nn.Module, evaluate: Callable[[], float]) -> None:
        for h in self.hooks:
            h.probe(step, model, evaluate)

    def layer_mask(self, step: int, model: torch.nn.Module) -> set[str] | None:
        mask = None
        for h in self.hooks:
            m = h.layer_mask(step, model)
            if m is not None:
                mask = set(m) if mask is None else mask & set(m)
        return mask

    def observe(
        self,
        epoch: int,
        indices: torch.Tensor,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        per_sample_loss: torch.Tensor,
    ) -> None:
        for h in self.hooks:
            h.observe(epoch, indices, x, x_hat, per_sample_loss)

    def state_dict(self) -> dict[str, Any]:
        return {str(k): h.state_dict() for k, h in enumerate(self.hooks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, h in enumerate(self.hooks):
            h.load_state_dict(state.get(str(k), {}))


def chain_hooks(hooks: list[TrainingHook | None]) -> TrainingHook | None:
    """``None`` without hooks, the hook itself when there is one, else a :class:`HookChain`."""
    present = [h for h in hooks if h is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else HookChain(present)
