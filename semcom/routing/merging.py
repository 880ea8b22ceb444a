r"""Expert Merging and Expert Merging++: learned chunk-wise task-vector coefficients.

Merging ``K`` experts fine-tuned from one base ``θ_base`` (task vectors
``τ_k = θ_k - θ_base``). Each parameter tensor ``l`` ("layer") is flattened and split into
``C_l`` contiguous chunks (``torch.tensor_split``, which gives exactly ``C_l`` parts where
``torch.chunk`` may give fewer); chunk ``c`` of layer ``l`` gets a coefficient logit
``c_{k,l,c}`` per expert:

    θ_{l,c} = θ_base,{l,c} + Σ_k σ(c_{k,l,c}) τ_{k,l,c}.

With one chunk per layer this is Expert Merging (layer-wise coefficients).

**Learning the coefficients** on unlabelled calibration images: expert ``k`` is aligned on its
own inputs ``D_k`` (the images of its channel condition),

    L(c) = Σ_k (1/K) E_{x∈D_k}[ w_h ‖h(x; θ) - h_k(x)‖² + ‖x̂(x; θ) - x̂_k(x)‖² ]
           + γ mean_{k,l,c} (σ(c_{k,l,c}) - σ(c⁰))²,

where ``h`` is the codec's hidden state at the bottleneck (the features ``z = encode(x)``,
mean over elements), ``x̂ = decode(encode(x))`` its output (the analogue of the paper's
logits) and the last term the coefficient regulariser, pulling toward the start value
``σ(c⁰)`` (Adam, full-batch per expert).

**Expert Merging++** (importance-guided chunking): after a layer-wise pass, layer ``l``'s
importance is

    s_l = mean_k σ(c_{k,l}) · RMS(τ_{k,l}) · √n_l = mean_k σ(c_{k,l}) ‖τ_{k,l}‖₂,
    I_l = s_l / Σ_j s_j,

the learned coefficient times the task-vector magnitude, with ``n_l`` (parameter count)
entering through the norm (larger layers move more parameters). A budget ``B`` of chunks is
spread as ``C_l = 1 + extra_l`` with the ``B - L`` extra chunks shared in proportion to ``I_l``
by largest remainders (capped at ``n_l``), so ``Σ_l C_l = B``; the chunk coefficients start at
their layer's learned value and are learned again. The paper states the three ingredients; this
product form and the largest-remainder rounding are ours.

**On the semantic link** (routing method ``"expert-merging"``): :meth:`ExpertMerging.build`
makes :class:`~semcom.routing.snr_bins.SNRBinExperts`, ``E`` copies of the codec each trained
on one SNR bin (optionally tied for ``tie_epochs`` first so they share a trained base);
:meth:`~ExpertMerging.finalize` learns the coefficients on the training images of each bin;
:meth:`~ExpertMerging.apply` returns ONE plain codec, the merged one, which needs no channel
state at run time.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from channels.errors import ConfigError, check_int, check_real, fail
from semcom.channel_state import ChannelState
from semcom.routing.base import ROUTING, RoutingMethod
from semcom.routing.snr_bins import SNRBinExperts, snr_bins
from semcom.training.base import TrainingHook


def chunk_split(t: torch.Tensor, chunks: int) -> list[torch.Tensor]:
    """``t`` flattened and split into exactly ``chunks`` contiguous parts (sizes differ by <= 1).

    Examples:
        >>> [c.tolist() for c in chunk_split(torch.arange(5.0), 2)]
        [[0.0, 1.0, 2.0], [3.0, 4.0]]
    """
    return list(torch.tensor_split(t.reshape(-1), chunks))


def merged_parameters(
    base: dict[str, torch.Tensor],
    experts: Sequence[dict[str, torch.Tensor]],
    coeffs: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """``θ = θ_base + Σ_k Σ_c σ(c_{k,l,c}) τ_{k,l,c}`` for every layer (differentiable in coeffs).

    Computed in float64 and cast back, so a one-hot coefficient set (logits ``±inf``) returns
    expert ``j``'s float32 weights bit for bit.

    Args:
        base: ``θ_base`` by layer name.
        experts: the ``K`` experts' parameters by layer name (same names and shapes).
        coeffs: logits ``[K, C_l]`` by layer name (``C_l`` chunks of layer ``l``).

    Returns:
        The merged parameters by layer name (dtype and shape of ``base``).
    """
    out = {}
    for name, b in base.items():
        c = coeffs[name]
        if c.ndim != 2 or c.shape[0] != len(experts):
            raise ValueError(f"coeffs[{name!r}] has shape {tuple(c.shape)}; need [K, chunks]")
        b64 = b.detach().reshape(-1).double()
        tau = torch.stack([e[name].detach().reshape(-1).double() - b64 for e in experts])
        out[name] = _merge_flat(b64, tau, c).to(b.dtype).reshape(b.shape)
    return out


def _merge_flat(b64: torch.Tensor, tau: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``b + Σ_k σ(c_k,chunk(i)) τ_k,i`` for flat float64 ``b`` ``[n]``, ``τ`` ``[K, n]``."""
    n, chunks = b64.numel(), c.shape[1]
    c = c.to(b64.device)  # coefficients live on the CPU; the codec may be on a GPU
    # tensor_split sizes: the first n % C chunks hold one element more
    sizes = torch.full((chunks,), n // chunks, dtype=torch.int64)
    sizes[: n % chunks] += 1
    scale = torch.repeat_interleave(torch.sigmoid(c.double()), sizes.to(c.device), dim=1)
    return b64 + (scale * tau).sum(0)


def merge_models(
    base: nn.Module,
    experts: Sequence[nn.Module],
    coeffs: dict[str, torch.Tensor],
    chunks: dict[str, int] | None = None,
) -> nn.Module:
    """A copy of ``base`` carrying the merged weights (:func:`merged_parameters`).

    Args:
        base: the module with ``θ_base`` (its buffers are kept).
        experts: ``K`` modules of the same architecture.
        coeffs: logits ``[K, C_l]`` by parameter name.
        chunks: ``C_l`` by name, checked against ``coeffs`` (``None``: read from ``coeffs``).

    Examples:
        >>> base, e1, e2 = (torch.nn.Linear(2, 1) for _ in range(3))
        >>> names = [n for n, _ in base.named_parameters()]
        >>> one_hot = {n: torch.tensor([[-math.inf], [math.inf]]) for n in names}
        >>> merged = merge_models(base, [e1, e2], one_hot)
        >>> bool(torch.equal(merged.weight, e2.weight))
        True
    """
    if chunks is not None:
        for name, c in coeffs.items():
            if c.shape[1] != chunks[name]:
                raise ValueError(f"coeffs[{name!r}] has {c.shape[1]} chunks, not {chunks[name]}")
    params = merged_parameters(
        dict(base.named_parameters()), [dict(e.named_parameters()) for e in experts], coeffs
    )
    merged = copy.deepcopy(base)
    with torch.no_grad():
        for name, p in merged.named_parameters():
            p.copy_(params[name])
    return merged


def layer_importance(
    coeffs: dict[str, torch.Tensor], tau_norms: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Normalised layer importance ``I_l = s_l / Σ s`` with ``s_l = mean_k σ(c_{k,l}) ‖τ_{k,l}‖₂``.

    Args:
        coeffs: layer-wise logits ``[K, C_l]`` by layer (chunk coefficients are averaged).
        tau_norms: ``‖τ_{k,l}‖₂`` ``[K]`` by layer.

    Returns:
        ``I_l`` by layer, summing to 1 (uniform when every task vector is zero).
    """
    s = {
        n: float((torch.sigmoid(c.double().cpu()).mean(1) * tau_norms[n].double().cpu()).mean())
        for n, c in coeffs.items()
    }
    total = sum(s.values())
    if total <= 0.0:
        return {n: 1.0 / len(s) for n in s}
    return {n: v / total for n, v in s.items()}


def allocate_chunks(
    importance: dict[str, float], sizes: dict[str, int], budget: int
) -> dict[str, int]:
    """Chunk counts ``C_l = 1 + extra_l`` with ``Σ C_l = budget`` and ``extra ∝ I_l``.

    The ``budget - L`` extra chunks go by largest remainders of ``(budget - L) I_l``; a layer
    never gets more chunks than elements (the excess is shared again among the others).

    Args:
        importance: ``I_l >= 0`` by layer.
        sizes: ``n_l`` (elements) by layer.
        budget: total chunks, in ``L..Σ n_l``.

    Raises:
        ValueError: ``budget`` outside ``L..Σ n_l``.

    Examples:
        >>> allocate_chunks({"a": 0.75, "b": 0.25}, {"a": 100, "b": 100}, 10)
        {'a': 7, 'b': 3}
    """
    names = list(importance)
    if not len(names) <= budget <= sum(sizes[n] for n in names):
        raise ValueError(f"budget {budget} outside {len(names)}..{sum(sizes.values())}")
    counts = dict.fromkeys(names, 1)
    left = budget - len(names)
    while left > 0:
        open_ = [n for n in names if counts[n] < sizes[n]]
        weight = sum(importance[n] for n in open_)
        share = {
            n: left * (importance[n] / weight if weight > 0 else 1.0 / len(open_)) for n in open_
        }
        room = {n: sizes[n] - counts[n] for n in open_}
        grant = {n: min(int(math.floor(share[n])), room[n]) for n in open_}
        rest = left - sum(grant.values())
        for n in sorted(open_, key=lambda n: (-(share[n] - math.floor(share[n])), names.index(n))):
            if rest == 0:
                break
            if grant[n] < room[n]:
                grant[n] += 1
                rest -= 1
        for n in open_:
            counts[n] += grant[n]
        left -= sum(grant.values())
    return counts


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


class _Codec(nn.Module):
    """``x -> (z, x̂)`` of a codec, so :func:`torch.func.functional_call` can run both halves."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.m.encode(x)
        return z, self.m.decode(z)


class UntieHook(TrainingHook):
    """Ends the tied warm-up: at the start of epoch ``tie_epochs + 1`` it calls ``untie()``.

    The loop asks ``sampler(epoch, ...)`` before an epoch's first step, so the split happens
    between epochs; the order it returns is the loop's own permutation.
    """

    def __init__(self, tie_epochs: int = 0, model: Callable[[], Any] | None = None) -> None:
        self.tie_epochs = tie_epochs
        self._model = model

    def sampler(self, epoch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        model = self._model() if self._model is not None else None
        if model is not None and model.tied and epoch > self.tie_epochs:
            model.untie()
        return torch.randperm(n, generator=generator)


@ROUTING.register(
    "expert-merging",
    description="Merge SNR-bin experts into one codec with learned chunk-wise task-vector "
    "coefficients (++: importance-guided chunk budget)",
    paper="arXiv:2509.25712",
)
class ExpertMerging(RoutingMethod):
    """Expert Merging (``chunk_budget=None``) or Expert Merging++ (module docstring).

    Args:
        snr_edges_db: ascending SNR bin edges in dB (``E = len + 1`` experts, ``E >= 2``).
        tie_epochs: epochs all frames train expert 0 before the experts are split from it (the
            merge base is that snapshot; 0: the base is the initialisation).
        chunk_budget: total chunks of ++ (at least the number of parameter tensors), or
            ``None`` for layer-wise coefficients.
        steps: Adam steps per coefficient pass (``>= 0``).
        lr: Adam learning rate of the logits.
        gamma: weight of the coefficient regulariser (``>= 0``).
        hidden_weight: weight ``w_h`` of the hidden-state (feature) term (``>= 0``).
        init_coeff: starting ``σ(c⁰)`` in ``(0, 1)``; ``None``: ``1/E`` (the weight average).
        calibration: at most this many calibration images per expert.

    Raises:
        ConfigError: an option outside its range (the message names it).
    """

    def __init__(
        self,
        snr_edges_db: Sequence[float] = (0.0, 10.0),
        tie_epochs: int = 0,
        chunk_budget: int | None = None,
        steps: int = 100,
        lr: float = 0.05,
        gamma: float = 0.1,
        hidden_weight: float = 1.0,
        init_coeff: float | None = None,
        calibration: int = 128,
    ) -> None:
        edges = snr_edges_db
        if (
            not isinstance(edges, list | tuple)
            or not edges
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in edges)
            or any(not math.isfinite(v) for v in edges)
            or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
        ):
            raise fail("snr_edges_db", edges, "a non-empty strictly ascending list of finite dB")
        self.snr_edges_db = [float(v) for v in edges]
        self.tie_epochs = check_int("tie_epochs", tie_epochs, 0)
        self.chunk_budget = (
            None if chunk_budget is None else check_int("chunk_budget", chunk_budget, 1)
        )
        self.steps = check_int("steps", steps, 0)
        self.lr = check_real("lr", lr, 0.0, 10.0, open_low=True)
        self.gamma = check_real("gamma", gamma, 0.0)
        self.hidden_weight = check_real("hidden_weight", hidden_weight, 0.0)
        self.init_coeff = (
            None
            if init_coeff is None
            else check_real("init_coeff", init_coeff, 0.0, 1.0, open_low=True, open_high=True)
        )
        self.calibration = check_int("calibration", calibration, 1)
        self._model: SNRBinExperts | None = None
        self.coeffs: dict[str, torch.Tensor] | None = None
        self.importance: dict[str, float] | None = None

    # family contract ---------------------------------------------------------------------------
    def build(
        self, model: str, n_features: int, model_options: dict[str, Any], seed: int = 0
    ) -> torch.nn.Module:
        base = super().build(model, n_features, model_options, seed)
        self._model = SNRBinExperts(base, self.snr_edges_db, tied=self.tie_epochs > 0)
        return self._model

    def hook(self) -> Any:
        return UntieHook(self.tie_epochs, lambda: self._model)

    def finalize(
        self, model: torch.nn.Module, images: torch.Tensor, states: ChannelState | None
    ) -> None:
        experts = self._container(model)
        if experts.tied:
            experts.untie()
        groups = self._groups(experts, images, states)
        base = experts.base_parameters()
        params = [dict(e.named_parameters()) for e in experts.experts]
        start = self.init_coeff if self.init_coeff is not None else 1.0 / len(params)
        coeffs = {n: torch.full((len(params), 1), _logit(start)) for n in base}
        coeffs = self._learn(experts, base, params, groups, coeffs, start)
        if self.chunk_budget is not None:
            sizes = {n: b.numel() for n, b in base.items()}
            if not len(base) <= self.chunk_budget <= sum(sizes.values()):
                raise fail(
                    "routing_options.chunk_budget",
                    self.chunk_budget,
                    f"an integer in {len(base)}..{sum(sizes.values())} for this model "
                    f"(one chunk per parameter tensor at least)",
                )
            norms = {
                n: torch.stack([(p[n].detach() - base[n]).norm() for p in params]) for n in base
            }
            self.importance = layer_importance(coeffs, norms)
            counts = allocate_chunks(self.importance, sizes, self.chunk_budget)
            coeffs = {n: c.detach().repeat(1, counts[n]) for n, c in coeffs.items()}
            coeffs = self._learn(experts, base, params, groups, coeffs, start)
        self.coeffs = {n: c.detach().clone() for n, c in coeffs.items()}

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        experts = self._container(model)
        if self.coeffs is None:
            raise ConfigError(
                "routing: expert-merging has no coefficients; allowed: call finalize (or "
                "load_state_dict) before apply"
            )
        base = copy.deepcopy(experts.experts[0])
        with torch.no_grad():
            for name, p in base.named_parameters():
                p.copy_(experts.base_parameters()[name])
        merged = merge_models(base, list(experts.experts), self.coeffs)
        return merged.eval() if not model.training else merged

    def state_dict(self) -> dict[str, Any]:
        return {
            "coeffs": None if self.coeffs is None else dict(self.coeffs),
            "importance": self.importance,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coeffs = None if state["coeffs"] is None else dict(state["coeffs"])
        self.importance = state.get("importance")

    # internals ---------------------------------------------------------------------------------
    @staticmethod
    def _container(model: torch.nn.Module) -> SNRBinExperts:
        if not isinstance(model, SNRBinExperts):
            raise ConfigError(
                f"model: {type(model).__name__} is invalid; allowed: the SNRBinExperts model "
                "that expert-merging's build() made"
            )
        return model

    def _groups(
        self, experts: SNRBinExperts, images: torch.Tensor, states: ChannelState | None
    ) -> list[torch.Tensor]:
        """Calibration images of each expert (its SNR bin; all images without states)."""
        device = experts.edges.device
        images = images.to(device)
        if states is None:
            return [images[: self.calibration] for _ in experts.experts]
        index = snr_bins(states.snr_db.to(device), experts.edges)
        return [images[index == e][: self.calibration] for e in range(len(experts.experts))]

    def _learn(
        self,
        experts: SNRBinExperts,
        base: dict[str, torch.Tensor],
        params: list[dict[str, torch.Tensor]],
        groups: list[torch.Tensor],
        coeffs: dict[str, torch.Tensor],
        start: float,
    ) -> dict[str, torch.Tensor]:
        module = experts.experts[0]
        codec = _Codec(module)
        was_training = module.training
        for e in experts.experts:
            e.eval()
        with torch.no_grad():
            targets = []
            for e, x in zip(experts.experts, groups, strict=True):
                z = e.encode(x) if len(x) else None
                targets.append(None if z is None else (z, e.decode(z)))
        logits = {n: c.detach().clone().requires_grad_(True) for n, c in coeffs.items()}
        opt = torch.optim.Adam(logits.values(), lr=self.lr)
        active = [k for k, t in enumerate(targets) if t is not None]
        flat = {n: b.detach().reshape(-1).double() for n, b in base.items()}
        taus = {
            n: torch.stack([p[n].detach().reshape(-1).double() for p in params]) - flat[n]
            for n in base
        }
        for _ in range(self.steps if active else 0):
            opt.zero_grad()
            theta = {
                n: _merge_flat(flat[n], taus[n], logits[n]).to(b.dtype).reshape(b.shape)
                for n, b in base.items()
            }
            loss = torch.zeros((), dtype=torch.float64)
            for k in active:
                z_k, x_k = targets[k]
                z, x_hat = functional_call(
                    codec, {f"m.{n}": v for n, v in theta.items()}, (groups[k],), strict=False
                )
                term = self.hidden_weight * (z - z_k).pow(2).mean() + (x_hat - x_k).pow(2).mean()
                loss = loss + term.double() / len(active)
            reg = torch.cat(
                [(torch.sigmoid(c) - start).pow(2).reshape(-1) for c in logits.values()]
            ).mean()
            loss = loss + self.gamma * reg
            loss.backward()
            opt.step()
        for e in experts.experts:
            e.train(was_training)
        return {n: c.detach() for n, c in logits.items()}
