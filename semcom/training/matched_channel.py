"""State-aware training distortion: each sample trains through the bit errors its channel gives.

The fixed log-linear ``ε`` profile of ISFR training (:class:`semcom.isfr.BerMatching`) stands for
one average link. Channel-state training replaces it by the link itself: every training sample
``b`` draws a channel state (average SNR, fading class, one fading realisation) and passes through
the bit errors the link's allocation gives each feature on that realisation, from the matched
BER banks of :mod:`semcom.training.channel_bank`.

Per step (:meth:`MatchedChannel.draw_states`, generator ``G``):

- ``snr_b`` uniform over the integers of ``[lo, hi]`` (the banks' 1 dB grid; ``lo = hi`` fixes
  it), class ``c_b`` uniform over the listed fading classes, bank row ``j_b`` uniform in
  ``0..M-1``;
- the sample's :class:`~semcom.channel_state.ChannelState`: ``snr_db = snr_b``,
  ``channel = c_b``, ``gain_db`` = the row's ``10 log10(mean_k g_k)`` (what the link reports).

Forward (training mode; eval mode is the identity), for ``z`` ``[B, N, L]``:

    z~_b,i = sent_b,i · ( noisy_ε(b,i)(z_b,i) + (z_b,i - sg(z_b,i)) )

with ``ε(b, i)``, ``sent_b,i`` the bank row's bit-error rate and sent flag of feature ``i``;
``noisy`` quantises with ``Q`` bits, flips every bit with probability ``ε`` (``mode="bsc"``) or
adds Gaussian noise of the same bit-error MSE, ``σ² = ε Δ² (4^Q - 1)/3`` (``mode="gaussian"``),
and de-quantises (:func:`semcom.isfr.bsc_bit_flips`, :func:`semcom.isfr.gaussian_bit_noise`);
the gradient is straight-through as in BER matching. Unsent features are zeroed, as the
receiver zero-fills them. In an ISFR training channel the nested dropout stays in front
(:class:`semcom.isfr.TrainingChannel` with this module as ``distortion``).

A state not drawn by :meth:`draw_states` (e.g. a constant one) is served too: its SNR is rounded
to the grid and each sample takes a random row of its condition's bank.

Examples:
    >>> ch = MatchedChannel(4, 8, fading=["awgn"], snr_db=[10, 10], draws=2, seed=0).train()
    >>> state = ch.draw_states(3, torch.Generator().manual_seed(0))
    >>> state.snr_db.tolist(), state.channel.tolist()
    ([10.0, 10.0, 10.0], [0, 0, 0])
    >>> ch(torch.zeros(3, 4, 8), state).shape
    torch.Size([3, 4, 8])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from channels.errors import check_choice, check_int, check_real, fail
from semcom.channel_state import CHANNEL_CLASSES, ChannelState
from semcom.isfr import (
    MODES,
    NestedDropout,
    RandomDropout,
    TrainingChannel,
    _Seeded,
    bit_error_variance,
    bsc_bit_flips,
    gaussian_bit_noise,
)
from semcom.limits import MAX_RICIAN_K
from semcom.training.channel_bank import DEFAULT_DROPOUT, PRIORS, ChannelBank, channel_bank

SNR_RANGE_DB = (-100, 100)
"""Average SNRs (dB) a training channel may draw."""

CHANNEL_DEFAULTS: dict[str, Any] = {"eta": 0.5, "rician_k": 3.0, "draws": 64}
"""Defaults of ``TrainConfig.channel`` (``n_subchannels``: N, ``prior``: by scheme)."""


def resolve_channel_options(options: Any, n_features: int, scheme: str) -> dict[str, Any]:
    """Validate ``TrainConfig.channel`` and fill in its defaults; ``{}`` stays ``{}``.

    Keys: ``fading`` (a class or a list of them), ``snr_db`` (a number or ``[lo, hi]``),
    ``n_subchannels`` (default ``N``), ``eta`` (0.5), ``rician_k`` (3.0), ``draws`` (64),
    ``prior`` (``"isfr"`` for the ``isfr`` scheme, else ``"uniform"``). The resolved form has
    ``fading`` as a list and ``snr_db`` as ``[lo, hi]``.

    Raises:
        ConfigError: field ``channel.<key>``, one line.

    Examples:
        >>> resolve_channel_options({"fading": "rayleigh", "snr_db": 0}, 4, "isfr")["snr_db"]
        [0.0, 0.0]
    """
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise fail("channel", options, "a mapping of channel options (or {})")
    if not options:
        return {}
    allowed = ("fading", "snr_db", "n_subchannels", "eta", "rician_k", "draws", "prior")
    for key in options:
        if key not in allowed:
            raise fail(f"channel.{key}", options[key], f"options of channel: {', '.join(allowed)}")
    if scheme not in ("isfr", "conventional"):
        raise fail("scheme", scheme, "isfr or conventional with a channel (it has a distortion)")
    for key in ("fading", "snr_db"):
        if key not in options:
            raise fail(f"channel.{key}", None, "a value (required with a channel)")
    fading = options["fading"]
    fading = [fading] if isinstance(fading, str) else fading
    classes_text = f"a class or a list of distinct classes of {', '.join(CHANNEL_CLASSES)}"
    if not isinstance(fading, list | tuple) or not fading:
        raise fail("channel.fading", options["fading"], classes_text)
    for value in fading:
        if value not in CHANNEL_CLASSES:
            raise fail("channel.fading", value, classes_text)
    if len(set(fading)) != len(fading):
        raise fail("channel.fading", options["fading"], classes_text)
    snr = options["snr_db"]
    snr_text = (
        f"a number or [lo, hi] with {SNR_RANGE_DB[0]} <= lo <= hi <= {SNR_RANGE_DB[1]} "
        "containing an integer dB"
    )
    if isinstance(snr, list | tuple):
        if len(snr) != 2:
            raise fail("channel.snr_db", snr, snr_text)
        lo, hi = snr
    else:
        lo = hi = snr
    lo = check_real("channel.snr_db", lo, *SNR_RANGE_DB, coerce=True, allowed=snr_text)
    hi = check_real("channel.snr_db", hi, *SNR_RANGE_DB, coerce=True, allowed=snr_text)
    if lo > hi or math.ceil(lo) > math.floor(hi):
        raise fail("channel.snr_db", snr, snr_text)
    resolved = dict(CHANNEL_DEFAULTS) | {"n_subchannels": n_features}
    resolved["prior"] = "isfr" if scheme == "isfr" else "uniform"
    resolved |= {k: v for k, v in options.items() if k not in ("fading", "snr_db")}
    resolved["n_subchannels"] = check_int(
        "channel.n_subchannels", resolved["n_subchannels"], 1, 4096
    )
    resolved["eta"] = check_real("channel.eta", resolved["eta"], 0.0, 1e6, coerce=True)
    resolved["rician_k"] = check_real(
        "channel.rician_k", resolved["rician_k"], 0.0, MAX_RICIAN_K, coerce=True
    )
    resolved["draws"] = check_int("channel.draws", resolved["draws"], 1, 1 << 16)
    resolved["prior"] = check_choice("channel.prior", resolved["prior"], PRIORS)
    resolved["fading"] = list(fading)
    resolved["snr_db"] = [lo, hi]
    return resolved


class MatchedChannel(_Seeded):
    """Per-sample matched bit errors of the link (module docstring); ``z`` ``[B, N, L]``.

    Args:
        n_features: ``N``.
        scalars_per_feature: ``L`` (the model's; sets the link's symbol budget).
        fading: fading classes drawn uniformly (names of ``CHANNEL_CLASSES``).
        snr_db: ``[lo, hi]`` in dB; the integers in it are drawn uniformly.
        n_subchannels: ``K`` (``None``: ``N``).
        eta: symbol budget factor of the link.
        rician_k: Rician K-factor.
        draws: rows ``M`` per bank.
        prior: allocation weights of the banks, ``"isfr"`` or ``"uniform"``.
        bits_per_scalar: ``Q``.
        mode: ``"bsc"`` or ``"gaussian"``.
        bank_seed: seed of the banks' channel draws.
        dropout: ``(law, rho, n_min, p_nd)`` of the ``"isfr"`` prior.
        seed: seed of the module's noise stream (``None``: torch's global generator).
    """

    def __init__(
        self,
        n_features: int,
        scalars_per_feature: int,
        fading: Any = CHANNEL_CLASSES,
        snr_db: Any = (0, 20),
        n_subchannels: int | None = None,
        eta: float = 0.5,
        rician_k: float = 3.0,
        draws: int = 64,
        prior: str = "isfr",
        bits_per_scalar: int = 8,
        mode: str = "bsc",
        bank_seed: int = 0,
        dropout: tuple[str, float, int, float] = DEFAULT_DROPOUT,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        options = resolve_channel_options(
            {"fading": list(fading), "snr_db": list(snr_db) if isinstance(snr_db, list | tuple)
             else snr_db, "n_subchannels": n_features if n_subchannels is None else n_subchannels,
             "eta": eta, "rician_k": rician_k, "draws": draws, "prior": prior},
            n_features, "isfr",
        )  # fmt: skip
        self.n_features = check_int("n_features", n_features, 1, 4096)
        self.scalars_per_feature = check_int("scalars_per_feature", scalars_per_feature, 1)
        self.fading = tuple(options["fading"])
        lo, hi = options["snr_db"]
        self.snr_grid = tuple(range(math.ceil(lo), math.floor(hi) + 1))
        self.n_subchannels = options["n_subchannels"]
        self.eta, self.rician_k = options["eta"], options["rician_k"]
        self.draws, self.prior = options["draws"], options["prior"]
        self.bits_per_scalar = check_int("bits_per_scalar", bits_per_scalar, 1, 16)
        self.mode = check_choice("mode", mode, MODES)
        self.bank_seed = check_int("bank_seed", bank_seed, 0, 2**63 - 1)
        self.dropout = tuple(dropout)
        self._drawn: tuple[ChannelState, torch.Tensor] | None = None

    @property
    def mid_snr_db(self) -> float:
        """The grid's middle SNR (the validation state's)."""
        return float(self.snr_grid[len(self.snr_grid) // 2])

    def bank(self, fading: str, snr_db: int) -> ChannelBank:
        """The bank of one condition of this channel (cached)."""
        return channel_bank(
            fading, snr_db, self.n_features, self.scalars_per_feature, self.bits_per_scalar,
            self.n_subchannels, self.eta, self.rician_k, self.prior, self.draws, self.bank_seed,
            self.dropout,
        )  # fmt: skip

    def draw_states(
        self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> ChannelState:
        """States of ``batch`` samples (module docstring) from ``generator`` (a CPU one).

        The bank rows drawn with them are remembered, so ``forward(z, state)`` with this very
        state object uses them.
        """
        batch = check_int("batch", batch, 0)
        snr_i = torch.randint(len(self.snr_grid), (batch,), generator=generator)
        class_i = torch.randint(len(self.fading), (batch,), generator=generator)
        rows = torch.randint(self.draws, (batch,), generator=generator)
        snr = torch.tensor(self.snr_grid, dtype=torch.float32)[snr_i]
        classes = [CHANNEL_CLASSES.index(name) for name in self.fading]
        channel = torch.tensor(classes, dtype=torch.int64)[class_i]
        gain = np.zeros(batch)
        for b in range(batch):
            bank = self.bank(self.fading[int(class_i[b])], int(snr[b]))
            gain[b] = bank.gain_db[int(rows[b])]
        state = ChannelState(
            snr.to(device), torch.as_tensor(gain, dtype=torch.float32).to(device),
            channel.to(device),
        )  # fmt: skip
        self._drawn = (state, rows)
        return state

    def rows_of(self, state: ChannelState) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ε float64 [B, N], sent bool [B, N])`` (CPU) of each sample's bank row."""
        b = len(state)
        if self._drawn is not None and self._drawn[0] is state:
            rows = self._drawn[1]
        else:  # a state from elsewhere: a random row of its condition
            rows = torch.floor(self._rand((b,), torch.device("cpu")) * self.draws).long()
        snr = torch.round(state.snr_db.detach().float().cpu()).long().tolist()
        channel = state.channel.detach().cpu().tolist()
        eps = np.zeros((b, self.n_features))
        sent = np.zeros((b, self.n_features), dtype=bool)
        for i in range(b):
            bank = self.bank(CHANNEL_CLASSES[channel[i]], snr[i])
            row = min(int(rows[i]), self.draws - 1)
            eps[i], sent[i] = bank.eps[row], bank.sent[row]
        return torch.from_numpy(eps), torch.from_numpy(sent)

    def forward(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """``z`` ``[B, N, L]`` -> ``z~`` in training mode (module docstring); ``z`` in eval mode.

        Raises:
            ConfigError: training mode without a ``state`` of ``B`` samples.
        """
        if not self.training:
            return z
        if z.ndim != 3 or z.shape[1] != self.n_features:
            raise fail("z", f"tensor of shape {tuple(z.shape)}", f"[B, {self.n_features}, L]")
        if state is None or len(state) != z.shape[0]:
            raise fail(
                "state",
                None if state is None else f"{len(state)} states",
                f"a ChannelState of {z.shape[0]} samples (channel-state training)",
            )
        eps, sent = self.rows_of(state)
        eps, sent = eps.to(z.device), sent.to(z.device)
        if self.mode == "gaussian":
            sigma = torch.sqrt(bit_error_variance(eps, self.bits_per_scalar)).float()
            noisy = gaussian_bit_noise(z, sigma, self.bits_per_scalar, self._randn)
        else:
            noisy = bsc_bit_flips(z, eps, self.bits_per_scalar, self._rand)
        out = noisy.to(z.dtype) + (z - z.detach())
        return out * sent[..., None].to(z.dtype)

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, fading={self.fading}, snr_grid=[{self.snr_grid[0]}, "
            f"{self.snr_grid[-1]}], draws={self.draws}, prior={self.prior!r}, mode={self.mode!r}"
        )


def matched_training_channel(
    kind: str,
    n_features: int,
    scalars_per_feature: int,
    isfr: dict[str, Any],
    channel: dict[str, Any],
    bank_seed: int,
) -> TrainingChannel:
    """The training channel of ``kind`` with the matched distortion in place of BER matching.

    Args:
        kind: ``"isfr"`` (nested dropout in front) or ``"conventional"`` (none).
        n_features: ``N``.
        scalars_per_feature: ``L``.
        isfr: resolved :func:`semcom.isfr.training_channel` options (nested dropout and its
            switch, ``bits_per_scalar``, ``mode``; the ``ε`` profile options are unused).
        channel: resolved channel options (:func:`resolve_channel_options`, not empty).
        bank_seed: seed of the banks.

    Returns:
        A :class:`semcom.isfr.TrainingChannel` (reseed it before use, as the trainer does).
    """
    if not isfr.get("distortion", True):
        raise fail("isfr.distortion", False, "true with a channel (it is the matched distortion)")
    dropout = (isfr["law"], isfr["rho"], isfr["n_min"], isfr["p_nd"])
    nd: NestedDropout | RandomDropout | None = None
    if isfr.get("nested_dropout"):
        nd = NestedDropout(n_features, *dropout)
    elif isfr.get("random_dropout"):
        nd = RandomDropout(n_features, *dropout)
    matched = MatchedChannel(
        n_features, scalars_per_feature, channel["fading"], channel["snr_db"],
        channel["n_subchannels"], channel["eta"], channel["rician_k"], channel["draws"],
        channel["prior"], isfr["bits_per_scalar"], isfr["mode"], bank_seed, dropout,
    )  # fmt: skip
    out = TrainingChannel(nd, matched)
    out.kind = kind
    out.options = dict(isfr)
    return out


__all__ = [
    "MatchedChannel",
    "matched_training_channel",
    "resolve_channel_options",
]
