"""The frame-allocation environment: (P0) decided feature by feature, batched in torch.

A *frame* is one instance of (P0) (:mod:`optim.problem`): the template's importance weights,
quantiser, budgets and modulations, and the frame's subchannel power gains ``g[K]``. The
environment runs ``B`` frames at once (tensors ``[B, ...]`` on a CPU or CUDA device).

Episode. The features are visited in importance order (descending ``w_i``, ties by index), one
*step* per feature, ``T = N`` steps. At step ``t`` the feature ``i = order[t]`` is either
skipped or sent with a triple (subchannel ``k``, modulation ``m``, power level ``l``), per-symbol
power ``p = l P_tot / P`` for ``l in 1..P`` (``P = levels``, default 64). The action index is::

    a = 0                              skip
    a = 1 + (k M + m) P + (l - 1)      send on k with modulation m at level l

Masks keep every decision feasible, so every finished episode is a feasible allocation:

- one feature per subchannel: ``k`` must still be free;
- symbol budget: ``S_i(m) <= S_left`` (integer symbols; ``S_left`` starts at ``floor(S_max)``);
- power budget: ``l <= P_left`` (integer levels; ``P_left`` starts at ``P``), so the powers sum
  to at most ``P_tot`` up to rounding.

Skip is always allowed. A decision is made in two stages (:meth:`FrameEnv.send_mask`, then
:meth:`FrameEnv.level_mask` given the chosen ``(k, m)``), so a policy scores ``1 + K M``
choices and then ``P`` levels instead of ``1 + K M P`` joint ones; the joint action and its
log-probability (the sum of the two stages') are what the trainer sees.

Reward, at the end of the frame: minus the importance-weighted distortion of the allocation.

- ``"objective"``: the exact (P0) objective ``J = sum_i w_i D_i`` of :func:`optim.distortion.
  objective`, evaluated in float64 on the device with the problem's BER and distortion models
  (tests check it equals ``optim.distortion.objective`` of the same allocation).
- ``"link"``: measured through the link kernels of :mod:`channels`: each sent feature's
  ``L`` scalars are drawn uniformly within uniformly drawn quantiser bins (the source model
  under which ``d_err = Delta^2/12 + Pb Delta^2 (4^Q - 1)/3`` holds), sent with
  :func:`channels.kernels.link_cpu.transmit_codes` on the chosen modulation, power and gain,
  and their squared error measured by :func:`channels.kernels.distortion.feature_distortion`;
  dropped features cost their ``D_drop,i``. Averaged over ``repeats`` independent
  transmissions. Its mean equals the objective when every bit of a code is equally reliable
  (BPSK, QPSK); with 16/64-QAM a code's most significant bit always sits on the same label
  position of its symbol, whose error rate differs from the average ``Pb`` the objective uses.

Per-step *progress* (for credit assignment): the objective decrease of step ``t``'s decision
divided by the cost of sending nothing, ``(w_i D_drop,i - w_i D_i) / J_drop``; the steps'
progress sums to ``1 - J / J_drop``, so ``-J / J_drop = -1 + sum_t progress_t``.

Examples:
    >>> import torch
    >>> from optim.problem import random_problem
    >>> env = FrameEnv(random_problem(3, 3, seed=0), levels=4)
    >>> env.n_actions
    49
    >>> state = env.reset(torch.ones(2, 3, dtype=torch.float64))
    >>> for _ in range(env.n_steps):
    ...     env.step(state, torch.zeros(2, dtype=torch.long))   # skip everything
    >>> expected = torch.full((2,), env.dropped_cost, dtype=torch.float64)
    >>> bool(torch.allclose(env.objective(state), expected))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from channels.coded import is_coded
from channels.errors import ConfigError, check_int, check_name, fail
from channels.names import BITS_PER_SYMBOL
from channels.theory import ber_terms, bound_coefficients
from optim.feature_terms import feature_terms
from optim.problem import Problem

REWARDS = ("objective", "link")
"""Reward kinds of :meth:`FrameEnv.reward`."""

CONTEXT_FEATURES = 8
"""Width of the per-step context (before the ``M`` symbol fractions), :meth:`FrameEnv.observe`."""

CHOICE_FEATURES = 10
"""Width of the features of one ``(k, m)`` choice, :meth:`FrameEnv.observe`."""

LEVEL_FEATURES = 5
"""Width of the features of one power level, :meth:`FrameEnv.level_features`."""


def resolve_device(device: Any) -> torch.device:
    """``device`` as a torch device: ``"cpu"``, ``"cuda"``, ``"cuda:K"`` or ``"auto"`` (CUDA
    when available).

    Raises:
        ConfigError: another value, or CUDA asked for where none is available.
    """
    if isinstance(device, torch.device):
        device = str(device)
    allowed = "cpu, cuda, cuda:K or auto"
    if not isinstance(device, str):
        raise fail("device", device, allowed)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise fail("device", device, allowed)
    if device != "cpu" and not torch.cuda.is_available():
        raise fail("device", device, "cpu or auto (no CUDA GPU is available)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise fail("device", device, allowed) from None


@dataclass
class FrameState:
    """The running state of ``B`` frames (all tensors on the environment's device).

    Attributes:
        gains: float64 ``[B, K]``, the frames' subchannel power gains.
        free: bool ``[B, K]``, subchannel not yet used.
        symbols_left: int64 ``[B]``, symbols still available.
        levels_left: int64 ``[B]``, power levels still available.
        subchannel: int64 ``[B, N]`` per feature (feature order), ``-1`` unsent.
        modulation: int64 ``[B, N]``, index into the template's modulations, ``-1`` unsent.
        level: int64 ``[B, N]``, power level ``1..P``, 0 unsent.
        t: the number of steps taken.
    """

    gains: torch.Tensor
    free: torch.Tensor
    symbols_left: torch.Tensor
    levels_left: torch.Tensor
    subchannel: torch.Tensor
    modulation: torch.Tensor
    level: torch.Tensor
    t: int = 0


class FrameEnv:
    """(P0) of a template as a sequential decision problem (module docstring).

    Args:
        template: a :class:`~optim.problem.Problem`; everything but its gains is used.
        n_subchannels: ``K`` (default: the template's).
        levels: ``P``, the number of power levels (``p = l P_tot / P``), in 1..4096.
        device: torch device (:func:`resolve_device`).

    Raises:
        ConfigError: a template that is not a Problem, or a bad ``levels`` or ``device``.
    """

    def __init__(
        self,
        template: Problem,
        n_subchannels: int | None = None,
        *,
        levels: int = 64,
        device: Any = "cpu",
    ) -> None:
        if not isinstance(template, Problem):
            raise fail("problem", type(template).__name__, "optim.Problem")
        k = template.n_subchannels if n_subchannels is None else n_subchannels
        self.n_subchannels = check_int("n_subchannels", k, 0)
        self.levels = check_int("levels", levels, 1, 4096)
        self.device = resolve_device(device)
        self.template = template
        n = template.n_features
        self.n_features = n
        self.n_modulations = len(template.modulations)
        dev, f64 = self.device, torch.float64
        self.order = torch.from_numpy(np.argsort(-template.weights, kind="stable")).to(dev)
        terms = feature_terms(template)
        self.weights = torch.tensor(template.weights, dtype=f64, device=dev)
        self.floor = torch.as_tensor(terms.floor, dtype=f64, device=dev)
        self.slope = torch.as_tensor(terms.slope, dtype=f64, device=dev)
        self.drop = torch.as_tensor(terms.drop, dtype=f64, device=dev)
        self.dropped_cost = float(template.weights @ terms.drop)
        self._scale = self.dropped_cost if self.dropped_cost > 0 else 1.0
        self.symbols = torch.tensor(template.symbol_table, dtype=torch.long, device=dev)
        self.symbol_budget = int(np.floor(template.symbol_budget)) if n else 0
        self.power_budget = float(template.power_budget)
        self.noise_power = float(template.noise_power)
        self.unit_power = self.power_budget / self.levels
        self._ber = _BerTable(template.modulations, template.ber_model, dev)

    # ------------------------------------------------------------------------ structure
    @property
    def n_steps(self) -> int:
        """``T = N``: one decision per feature."""
        return self.n_features

    @property
    def n_choices(self) -> int:
        """``1 + K M``: skip, or a (subchannel, modulation) pair (the first stage)."""
        return 1 + self.n_subchannels * self.n_modulations

    @property
    def n_actions(self) -> int:
        """``1 + K M P``: skip, or a (subchannel, modulation, level) triple."""
        return 1 + self.n_subchannels * self.n_modulations * self.levels

    def joint_action(self, choice: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """The action index of a first-stage ``choice`` (0 skip, ``1 + k M + m``) and a
        ``level`` in ``1..P`` (ignored for a skip)."""
        send = choice > 0
        return torch.where(send, 1 + (choice - 1) * self.levels + (level - 1), 0)

    def split_action(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(choice, level)`` of action indices (level 0 for a skip)."""
        send = action > 0
        rest = (action - 1).clamp_min(0)
        choice = torch.where(send, 1 + rest // self.levels, 0)
        level = torch.where(send, 1 + rest % self.levels, 0)
        return choice, level

    # ----------------------------------------------------------------------------- run
    def reset(self, gains: Any) -> FrameState:
        """Start ``B`` frames with gains ``[B, K]`` (finite, >= 0).

        Raises:
            ConfigError: gains of another shape, or a NaN, infinite or negative entry.
        """
        g = torch.as_tensor(gains, dtype=torch.float64, device=self.device)
        if g.ndim != 2 or g.shape[1] != self.n_subchannels:
            allowed = f"shape [B, {self.n_subchannels}]"
            raise fail("gains", f"array of shape {tuple(g.shape)}", allowed)
        bad = ~(torch.isfinite(g) & (g >= 0))
        if bool(bad.any()):
            b, k = (int(v) for v in torch.nonzero(bad)[0])
            raise fail(f"gains[{b}, {k}]", float(g[b, k]), "finite numbers >= 0")
        b, n, dev = g.shape[0], self.n_features, self.device
        return FrameState(
            gains=g,
            free=torch.ones(b, self.n_subchannels, dtype=torch.bool, device=dev),
            symbols_left=torch.full((b,), self.symbol_budget, dtype=torch.long, device=dev),
            levels_left=torch.full((b,), self.levels, dtype=torch.long, device=dev),
            subchannel=torch.full((b, n), -1, dtype=torch.long, device=dev),
            modulation=torch.full((b, n), -1, dtype=torch.long, device=dev),
            level=torch.zeros(b, n, dtype=torch.long, device=dev),
        )

    def feature(self, state: FrameState) -> int:
        """The feature decided at the current step."""
        if state.t >= self.n_steps:
            raise ConfigError(f"step: {state.t} is invalid; allowed: < T = {self.n_steps}")
        return int(self.order[state.t])

    def send_mask(self, state: FrameState) -> torch.Tensor:
        """bool ``[B, 1 + K M]``: the feasible first-stage choices (skip always)."""
        i = self.feature(state)
        fits = self.symbols[i][None, :] <= state.symbols_left[:, None]  # [B, M]
        ok = state.free[:, :, None] & fits[:, None, :]  # [B, K, M]
        ok = ok & (state.levels_left >= 1)[:, None, None]
        skip = torch.ones(ok.shape[0], 1, dtype=torch.bool, device=self.device)
        return torch.cat([skip, ok.reshape(ok.shape[0], -1)], dim=1)

    def level_mask(self, state: FrameState) -> torch.Tensor:
        """bool ``[B, P]``: the feasible power levels ``1..P`` (at most the levels left)."""
        levels = torch.arange(1, self.levels + 1, device=self.device)
        return levels[None, :] <= state.levels_left[:, None]

    def mask(self, state: FrameState) -> torch.Tensor:
        """bool ``[B, 1 + K M P]``: the feasible joint actions (skip always)."""
        send = self.send_mask(state)
        lv = self.level_mask(state)
        joint = send[:, 1:, None] & lv[:, None, :]
        return torch.cat([send[:, :1], joint.reshape(joint.shape[0], -1)], dim=1)

    def step(self, state: FrameState, action: torch.Tensor) -> None:
        """Apply joint actions ``[B]`` (int64) of the current step, in place.

        Raises:
            ConfigError: an action out of range or masked out (infeasible).
        """
        action = torch.as_tensor(action, dtype=torch.long, device=self.device)
        if action.shape != (state.gains.shape[0],):
            raise fail("action", f"array of shape {tuple(action.shape)}", "shape [B]")
        if bool(((action < 0) | (action >= self.n_actions)).any()):
            raise fail("action", int(action.max()), f"indices in 0..{self.n_actions - 1}")
        choice, level = self.split_action(action)
        send = choice > 0
        allowed = self.send_mask(state).gather(1, choice[:, None])[:, 0]
        allowed &= ~send | (level <= state.levels_left)  # the joint mask, without building it
        if not bool(allowed.all()):
            b = int(torch.nonzero(~allowed)[0, 0])
            raise fail(f"action[{b}]", int(action[b]), "a feasible action (see FrameEnv.mask)")
        i = self.feature(state)
        rows = torch.nonzero(send)[:, 0]
        km = choice[rows] - 1
        k, m = km // self.n_modulations, km % self.n_modulations
        state.subchannel[rows, i] = k
        state.modulation[rows, i] = m
        state.level[rows, i] = level[rows]
        state.free[rows, k] = False
        state.symbols_left[rows] -= self.symbols[i][m]
        state.levels_left[rows] -= level[rows]
        state.t += 1

    # --------------------------------------------------------------------- observations
    def observe(self, state: FrameState) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's inputs at the current step (float32).

        The *fair share* of a step is what is left divided by the steps left (this one
        included): ``P_left / (T - t)`` power levels and ``S_left / (T - t)`` symbols.

        Returns:
            ``(context [B, 8 + M], choices [B, K M, 10])``. Context: the feature's weight over
            the largest, its potential share ``w_i (D_drop,i - floor_i) / J_drop``, the
            potential share of the features not yet decided (this one included), its
            sensitivity ``w_i slope_i / J_drop``, the step ``t / T``, the power and symbol
            fractions left, the free subchannels' fraction, then ``S_i(m) / S_max`` per
            modulation. Per (subchannel, modulation) choice: free; the SNR in dB / 30 of one
            power level, of the fair share and of all the power left; ``Pb`` and the objective
            share gained at the fair share; the objective share gained with all the power
            left; the symbols it uses over those left and over the fair share; the fraction
            of the free subchannels with a larger gain (0: the best free one).
        """
        i = self.feature(state)
        b = state.gains.shape[0]
        w_max = float(self.weights.max()) if self.n_features else 1.0
        potential = self.weights * (self.drop - self.floor) / self._scale
        rest = potential[self.order[state.t :]].sum()
        s_max = max(self.symbol_budget, 1)
        steps_left = self.n_steps - state.t
        ctx = torch.empty(b, CONTEXT_FEATURES + self.n_modulations, dtype=torch.float64,
                          device=self.device)  # fmt: skip
        ctx[:, 0] = self.weights[i] / (w_max if w_max > 0 else 1.0)
        ctx[:, 1] = potential[i]
        ctx[:, 2] = rest
        ctx[:, 3] = self.weights[i] * self.slope[i] / self._scale
        ctx[:, 4] = state.t / max(self.n_steps, 1)
        ctx[:, 5] = state.levels_left / self.levels
        ctx[:, 6] = state.symbols_left / s_max
        ctx[:, 7] = state.free.double().mean(dim=1) if self.n_subchannels else 0.0
        ctx[:, CONTEXT_FEATURES:] = self.symbols[i][None, :] / s_max
        unit = state.gains * (self.unit_power / self.noise_power)  # [B, K]
        full = unit * state.levels_left[:, None]
        fair = unit * (state.levels_left / steps_left).clamp_min(1.0)[:, None]
        pb_full = self._ber(full[:, :, None].expand(-1, -1, self.n_modulations))  # [B, K, M]
        pb_fair = self._ber(fair[:, :, None].expand(-1, -1, self.n_modulations))
        w, d, f, sl = self.weights[i], self.drop[i], self.floor[i], self.slope[i]
        symbols = self.symbols[i][None, :].double()  # [1, M]
        left = state.symbols_left.clamp_min(1)[:, None].double()  # [B, 1]
        choices = torch.empty(b, self.n_subchannels, self.n_modulations, CHOICE_FEATURES,
                              dtype=torch.float64, device=self.device)  # fmt: skip
        choices[..., 0] = state.free[:, :, None].double()
        choices[..., 1] = _db(unit)[:, :, None] / 30.0
        choices[..., 2] = _db(fair)[:, :, None] / 30.0
        choices[..., 3] = _db(full)[:, :, None] / 30.0
        choices[..., 4] = pb_fair
        choices[..., 5] = w * (d - f - sl * pb_fair) / self._scale
        choices[..., 6] = w * (d - f - sl * pb_full) / self._scale
        choices[..., 7] = (symbols / left)[:, None, :]
        choices[..., 8] = (symbols * steps_left / left)[:, None, :]
        free_gain = torch.where(state.free, state.gains, -1.0)  # used ones rank below all
        better = (free_gain[:, None, :] > free_gain[:, :, None]).sum(dim=2)  # [B, K]
        n_free = state.free.sum(dim=1, keepdim=True).clamp_min(1)
        choices[..., 9] = (better / n_free)[:, :, None]
        return ctx.float(), choices.reshape(b, -1, CHOICE_FEATURES).float()

    def level_features(self, state: FrameState, choice: torch.Tensor) -> torch.Tensor:
        """float32 ``[B, P, 5]``: per level ``l`` of first-stage ``choice`` (skips: any):
        ``l / P``, the fraction of the levels left it uses, ``l`` over the fair share
        (:meth:`observe`), ``Pb`` at that power and the objective share gained."""
        i = self.feature(state)
        km = (choice - 1).clamp_min(0)
        k, m = km // self.n_modulations, km % self.n_modulations
        levels = torch.arange(1, self.levels + 1, device=self.device, dtype=torch.float64)
        g = state.gains.gather(1, k[:, None])  # [B, 1]
        esno = g * levels[None, :] * (self.unit_power / self.noise_power)  # [B, P]
        pb = self._ber(esno, m[:, None].expand(-1, self.levels))
        gain = self.weights[i] * (self.drop[i] - self.floor[i] - self.slope[i] * pb) / self._scale
        fair = (state.levels_left / (self.n_steps - state.t)).clamp_min(1.0)[:, None]
        out = torch.empty(esno.shape + (LEVEL_FEATURES,), dtype=torch.float64, device=self.device)
        out[..., 0] = levels / self.levels
        out[..., 1] = levels[None, :] / state.levels_left.clamp_min(1)[:, None]
        out[..., 2] = levels[None, :] / fair
        out[..., 3] = pb
        out[..., 4] = gain
        return out.float()

    # --------------------------------------------------------------------------- reward
    def power(self, state: FrameState) -> torch.Tensor:
        """float64 ``[B, N]``: per-symbol power of every feature (0 unsent)."""
        return state.level.double() * self.unit_power

    def feature_costs(self, state: FrameState) -> torch.Tensor:
        """float64 ``[B, N]``: ``w_i D_i`` of every feature under the allocation so far
        (unsent features at their drop cost), the problem's own models."""
        sent = state.subchannel >= 0
        g = state.gains.gather(1, state.subchannel.clamp_min(0))
        esno = g * self.power(state) / self.noise_power
        pb = self._ber(esno, state.modulation.clamp_min(0))
        sent_cost = self.weights * (self.floor + self.slope * pb)
        return torch.where(sent, sent_cost, self.weights * self.drop)

    def objective(self, state: FrameState) -> torch.Tensor:
        """float64 ``[B]``: (P0) objective ``J = sum_i w_i D_i`` of each frame's allocation."""
        return self.feature_costs(state).sum(dim=1)

    def progress(self, state: FrameState) -> torch.Tensor:
        """float64 ``[B, T]``: step ``t``'s objective decrease over ``J_drop`` (module
        docstring); sums to ``1 - J / J_drop`` per frame."""
        gain = (self.weights * self.drop)[None, :] - self.feature_costs(state)
        return gain[:, self.order] / self._scale

    def reward(self, state: FrameState, kind: str = "objective", **options: Any) -> torch.Tensor:
        """float64 ``[B]``: minus the distortion of each finished frame, ``-J``.

        Args:
            state: a finished episode (``T`` steps taken).
            kind: ``"objective"`` (exact) or ``"link"`` (measured, :meth:`link_objective`,
                whose ``options`` are ``repeats`` and ``seed``).

        Raises:
            ConfigError: an unknown kind or option, or an unfinished episode.
        """
        kind = check_name("reward", kind, REWARDS)
        if state.t != self.n_steps:
            raise fail("state", f"{state.t} steps taken", f"a finished episode of {self.n_steps}")
        if kind == "objective":
            if options:
                raise fail("reward option", sorted(options)[0], "none for reward 'objective'")
            return -self.objective(state)
        return -self.link_objective(state, **options)

    def link_objective(self, state: FrameState, repeats: int = 1, seed: int = 0) -> torch.Tensor:
        """float64 ``[B]``: the distortion measured through the link kernels (module
        docstring), averaged over ``repeats`` transmissions of fresh data and noise.

        Raises:
            ConfigError: coded modulation entries (their link is the LDPC chain, not these
                kernels), ``Q > 16`` or a bad ``repeats``/``seed``.
        """
        from channels.kernels.distortion import feature_distortion
        from channels.kernels.link_cpu import transmit_codes

        t = self.template
        repeats = check_int("repeats", repeats, 1, 10**6)
        seed = check_int("seed", seed, 0, 2**63 - 1)
        if any(is_coded(name) for name in t.modulations):
            raise fail("reward", "link", "'objective' for coded modulation entries")
        q = t.feature_bits_per_scalar
        if q.size and int(q.max()) > 16:
            raise fail("bits_per_scalar", int(q.max()), "at most 16 for reward 'link'")
        b, n, length = state.gains.shape[0], self.n_features, t.scalars_per_feature
        sub = state.subchannel.cpu().numpy()
        sent = sub >= 0
        bps_of = np.array([BITS_PER_SYMBOL[name] for name in t.modulations], dtype=np.int64)
        bps = np.where(sent, bps_of[state.modulation.clamp_min(0).cpu().numpy()], 0)
        gains = state.gains.cpu().numpy()
        h = np.sqrt(np.take_along_axis(gains, np.maximum(sub, 0), axis=1)) if n else gains[:, :0]
        power = self.power(state).cpu().numpy()
        rng = np.random.default_rng(seed)
        top = (1 << q.astype(np.int64))[None, :, None]
        step = 2.0 / top  # the kernels' quantiser: span 2
        total = np.zeros((b, n))
        for r in range(repeats):
            codes = (rng.random((b, n, length)) * top).astype(np.int64)
            z = -1.0 + (codes + rng.random((b, n, length))) * step
            link = transmit_codes(codes, bps, h, power, self.noise_power, _q_arg(t, q),
                                  seed=seed, point=r, backend="cpu")  # fmt: skip
            out = feature_distortion(z, link.codes_hat, np.ones(n), _q_arg(t, q), backend="cpu")
            total += out.squared_error
        mse = total / (repeats * length) * (t.quantiser_span / 2.0) ** 2  # per scalar
        if t.distortion_model == "normalised":
            d_sent = mse / t.drop_distortion[None, :]
        else:
            d_sent = length * mse
        cost = np.where(sent, d_sent, feature_terms(t).drop[None, :]) * t.weights[None, :]
        return torch.as_tensor(cost.sum(axis=1), dtype=torch.float64, device=self.device)

    # ------------------------------------------------------------------------ results
    def arrays(self, state: FrameState) -> tuple[np.ndarray, ...]:
        """``(selected bool, subchannel int64, modulation int64, power float64)``, each
        ``[B, N]`` NumPy in feature order (``-1``/0 unsent): the fields of
        :class:`optim.batch.solve.BatchResult`."""
        sub = state.subchannel.cpu().numpy()
        return (sub >= 0, sub, state.modulation.cpu().numpy(), self.power(state).cpu().numpy())


def _q_arg(t: Problem, q: np.ndarray) -> int | np.ndarray:
    return q if t.per_feature_bits else int(t.bits_per_scalar)


def _db(x: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(x.clamp_min(1e-12))


class _BerTable:
    """``Pb(m, gamma)`` of a modulation set in torch, the formulas of
    :func:`optim.distortion.bit_error_rate` (exact: sums of Q-functions of
    :func:`channels.theory.ber_terms`; bound: ``A exp(-B gamma)``), clipped to ``[0, 1/2]``."""

    def __init__(self, modulations: tuple[str, ...], model: str, device: torch.device) -> None:
        self.exact = model == "exact"
        terms = [(np.zeros(1), np.ones(1)) if is_coded(m) else ber_terms(m) for m in modulations]
        width = max(len(w) for w, _ in terms)
        weight = np.zeros((len(modulations), width))
        scale = np.zeros((len(modulations), width))
        for j, (w, s) in enumerate(terms):
            weight[j, : len(w)], scale[j, : len(s)] = w, s
        coef = np.array([bound_coefficients(m) for m in modulations], dtype=np.float64)
        f64 = torch.float64
        self.weight = torch.as_tensor(weight, dtype=f64, device=device)
        self.scale = torch.as_tensor(scale, dtype=f64, device=device)
        self.a = torch.as_tensor(coef[:, 0], dtype=f64, device=device)
        self.b = torch.as_tensor(coef[:, 1], dtype=f64, device=device)

    def __call__(self, esno: torch.Tensor, modulation: torch.Tensor | None = None) -> torch.Tensor:
        """``Pb`` of ``esno`` (float64 ``[..., M]`` with one column per modulation when
        ``modulation`` is None, else any shape with ``modulation`` indices alike)."""
        if modulation is None:
            m = torch.arange(self.weight.shape[0], device=esno.device).expand(esno.shape)
        else:
            m = modulation
        if self.exact:
            root = torch.sqrt(esno.clamp_min(0.0))[..., None] / np.sqrt(2.0)
            q = 0.5 * torch.erfc(self.scale[m] * root)
            pb = (self.weight[m] * q).sum(dim=-1)
        else:
            pb = self.a[m] * torch.exp(-self.b[m] * esno)
        return pb.clamp(0.0, 0.5)


__all__ = [
    "CHOICE_FEATURES",
    "CONTEXT_FEATURES",
    "LEVEL_FEATURES",
    "REWARDS",
    "FrameEnv",
    "FrameState",
    "resolve_device",
]
