r"""DiT redundancy analysis on the semantic decoder: per-layer, per-step change statistics and a
cached block that reuses a layer's previous output when its input barely changed.

**Statistics.** Forward hooks record the output ``x_{l,t}`` of each decoder unit ``l`` at step
``t`` of an iterative process; between consecutive steps

    D_{l,t} = mean |x_{l,t} - x_{l,t-1}|,          Var_{l,t} = var |x_{l,t} - x_{l,t-1}|,
    R_{l,t} = mean |a - b| / (|a| + |b| + ε)         (the relative form, a = x_{l,t}, b = x_{l,t-1};
                                                       absolute values because activations are
                                                       signed; ε = 1e-12).

**On the semantic link** the steps are a *stream*: the same images received over successive
independent channel draws (frames of a static scene), ``z̃_t = z + n_t`` with
``n_t ~ N(0, P_z 10^{-SNR/10})`` per element, ``P_z = mean z²`` (SNR from each image's channel
state; 10 dB without states). A decoder unit whose input hardly moves between frames need not
be recomputed: :class:`CachedBlock` keeps, per batch row, the input at its last computation and
that output, and reuses the output when ``mean |u_t - u_ref| <= threshold``. Reuse is exact when
nothing changed (the unit is deterministic), and threshold 0 reuses only then, so outputs are
exactly the uncached ones.

``finalize`` measures the statistics of the input change of every unit over ``steps`` frames
and sets the threshold of unit ``l`` to the ``reuse_quantile`` quantile of its per-row input
changes (or a fixed ``threshold``); ``apply`` wraps the decoder units. The paper only measures
(keys, values, attention outputs of DiT layers over denoising steps); the caching policy is the
one its analysis motivates. Units: the ViT decoder blocks, the CNN decoder's layers, the MLP
decoder's linear layers.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from channels.errors import ConfigError, check_int, check_real
from semcom.channel_state import ChannelState
from semcom.routing.base import ROUTING, RoutingMethod

EPS = 1e-12


def redundancy(
    prev: torch.Tensor, cur: torch.Tensor, relative: bool = False
) -> tuple[float, float]:
    """``(mean, variance)`` of ``|cur - prev|`` (or ``|cur - prev| / (|cur| + |prev| + ε)``).

    Examples:
        >>> a = torch.tensor([1.0, -2.0])
        >>> redundancy(a, a)
        (0.0, 0.0)
        >>> round(redundancy(torch.tensor([1.0, 1.0]), torch.tensor([3.0, 1.0]), True)[0], 9)
        0.25
    """
    diff = (cur.detach().double() - prev.detach().double()).abs()
    if relative:
        diff = diff / (cur.detach().double().abs() + prev.detach().double().abs() + EPS)
    return float(diff.mean()), float(diff.var(unbiased=False))


def decoder_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The decoder's units a cache wraps, by attribute path.

    ViT: ``dec_blocks.i``; MLP / CNN: the decoder's layers with parameters (``decoder.i``).
    """
    if hasattr(model, "dec_blocks"):
        return [(f"dec_blocks.{i}", b) for i, b in enumerate(model.dec_blocks)]
    if isinstance(getattr(model, "decoder", None), nn.Sequential):
        return [
            (f"decoder.{i}", m)
            for i, m in enumerate(model.decoder)
            if any(True for _ in m.parameters(recurse=False))
        ]
    raise ConfigError(
        f"model: {type(model).__name__} is invalid; allowed: a vit, cnn or mlp codec "
        "(dit-redundancy caches its decoder units)"
    )


def _rows(out: Any, rows: torch.Tensor) -> Any:
    if isinstance(out, tuple):
        return tuple(_rows(o, rows) for o in out)
    return out[rows]


def _scatter(dst: Any, rows: torch.Tensor, src: Any) -> Any:
    if isinstance(dst, tuple):
        return tuple(_scatter(d, rows, s) for d, s in zip(dst, src, strict=True))
    dst = dst.clone()
    dst[rows] = src
    return dst


class CachedBlock(nn.Module):
    """Reuse the previous output row-wise when the input moved at most ``threshold``.

    The change of row ``b`` is ``mean |u_b - u_ref,b|`` against the input of the row's last
    computation. Outputs may be tensors or tuples of tensors with the batch first.

    Attributes:
        computed, calls: rows computed and rows seen (compute saved = 1 - computed / calls).
    """

    def __init__(self, block: nn.Module, threshold: float) -> None:
        super().__init__()
        self.block = block
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        """Forget the cache (the next call computes every row)."""
        self.ref: torch.Tensor | None = None
        self.out: Any = None
        self.computed, self.calls = 0, 0

    def forward(self, u: torch.Tensor) -> Any:
        self.calls += u.shape[0]
        if self.ref is None or self.ref.shape != u.shape:
            self.ref, self.out = u.detach(), self.block(u)
            self.computed += u.shape[0]
            return self.out
        change = (u.detach() - self.ref).abs().flatten(1).mean(1)
        rows = torch.nonzero(change > self.threshold).flatten()
        if rows.numel():
            fresh = self.block(u[rows])
            self.out = _scatter(self.out, rows, fresh)
            ref = self.ref.clone()
            ref[rows] = u.detach()[rows]
            self.ref = ref
            self.computed += rows.numel()
        return self.out


def compute_saved(model: nn.Module) -> float:
    """``1 - computed / calls`` over every :class:`CachedBlock` of ``model`` (0 if none ran)."""
    blocks = [m for m in model.modules() if isinstance(m, CachedBlock)]
    calls = sum(b.calls for b in blocks)
    return 0.0 if calls == 0 else 1.0 - sum(b.computed for b in blocks) / calls


def reset_caches(model: nn.Module) -> None:
    """Empty every :class:`CachedBlock` cache of ``model``."""
    for m in model.modules():
        if isinstance(m, CachedBlock):
            m.reset()


def stream(
    z: torch.Tensor, snr_db: torch.Tensor, steps: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """``steps`` received frames ``z + n_t``, ``n_t ~ N(0, mean(z²) 10^{-snr/10})`` per row."""
    power = z.pow(2).flatten(1).mean(1).clamp(min=EPS)
    std = (power * 10.0 ** (-snr_db.to(z) / 10.0)).sqrt().reshape(-1, *[1] * (z.ndim - 1))
    return [z + std * torch.randn(z.shape, generator=generator).to(z) for _ in range(steps)]


@ROUTING.register(
    "dit-redundancy",
    description="Per-layer, per-step redundancy statistics of the decoder over a stream of "
    "channel draws, and cached decoder units that reuse outputs below a change threshold",
    paper="arXiv:2411.13588",
)
class DiTRedundancy(RoutingMethod):
    """Redundancy statistics and decoder caching (module docstring).

    Args:
        steps: frames of the calibration stream (``>= 2``).
        reuse_quantile: per-unit threshold = this quantile of its input changes, in ``[0, 1]``.
        threshold: a fixed threshold for every unit (``>= 0``), overriding the quantile.
        calibration: at most this many calibration images.
        seed: seed of the stream's channel noise.

    Attributes:
        stats: after ``finalize``, per unit name: ``D``, ``var``, ``R`` (output change, each a
            list over steps ``t = 1..steps-1``) and ``input_D`` (the input change).
    """

    def __init__(
        self,
        steps: int = 8,
        reuse_quantile: float = 0.25,
        threshold: float | None = None,
        calibration: int = 64,
        seed: int = 0,
    ) -> None:
        self.steps = check_int("steps", steps, 2, 1000)
        self.reuse_quantile = check_real("reuse_quantile", reuse_quantile, 0.0, 1.0)
        self.threshold = None if threshold is None else check_real("threshold", threshold, 0.0)
        self.calibration = check_int("calibration", calibration, 1)
        self.seed = check_int("seed", seed, 0)
        self.stats: dict[str, dict[str, list[float]]] | None = None
        self.thresholds: dict[str, float] | None = None

    def finalize(
        self, model: torch.nn.Module, images: torch.Tensor, states: ChannelState | None
    ) -> None:
        units = decoder_units(model)
        record: dict[str, list[tuple[torch.Tensor, Any]]] = {n: [] for n, _ in units}
        handles = [
            m.register_forward_hook(
                lambda _m, a, o, n=n: record[n].append(
                    (a[0].detach(), (o[0] if isinstance(o, tuple) else o).detach())
                )
            )
            for n, m in units
        ]
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = images[: self.calibration].to(next(model.parameters()).device)
                snr = (
                    torch.full((len(x),), 10.0)
                    if states is None
                    else states.realised_snr_db()[: len(x)]
                )
                gen = torch.Generator().manual_seed(self.seed)
                for frame in stream(model.encode(x), snr, self.steps, gen):
                    model.decode(frame)
        finally:
            for h in handles:
                h.remove()
            model.train(was)
        self.stats, self.thresholds = {}, {}
        for name, seq in record.items():
            out_d = [redundancy(seq[t - 1][1], seq[t][1]) for t in range(1, len(seq))]
            rel = [redundancy(seq[t - 1][1], seq[t][1], True)[0] for t in range(1, len(seq))]
            per_row = torch.cat(
                [(seq[t][0] - seq[t - 1][0]).abs().flatten(1).mean(1) for t in range(1, len(seq))]
            )
            self.stats[name] = {
                "D": [d for d, _ in out_d],
                "var": [v for _, v in out_d],
                "R": rel,
                "input_D": [redundancy(seq[t - 1][0], seq[t][0])[0] for t in range(1, len(seq))],
            }
            self.thresholds[name] = (
                self.threshold
                if self.threshold is not None
                else float(torch.quantile(per_row.double(), self.reuse_quantile))
            )

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.thresholds is None:
            if self.threshold is None:
                raise ConfigError(
                    "routing: dit-redundancy has no thresholds; allowed: call finalize (or "
                    "load_state_dict) before apply, or set the threshold option"
                )
            thresholds = {n: self.threshold for n, _ in decoder_units(model)}
        else:
            thresholds = self.thresholds
        deployed = copy.deepcopy(model)
        for name, _ in decoder_units(deployed):
            parent_name, index = name.rsplit(".", 1)
            parent = deployed.get_submodule(parent_name)
            parent[int(index)] = CachedBlock(parent[int(index)], thresholds[name])
        return deployed

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats, "thresholds": self.thresholds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats, self.thresholds = state["stats"], state["thresholds"]
