"""The channel state of a frame: what a channel-conditioned codec and its router observe.

Both ends of the link know it: the transmitter allocates from the subchannel gains (CSI) and the
receiver knows the allocation. Per frame ``b``:

- ``snr_db[b]``: the average SNR ``P_tot / (K σ²)`` in dB the link runs at;
- ``gain_db[b]``: ``10 log10(mean_k g_k)`` of the frame's fading draw (0 for AWGN), so
  ``snr_db + gain_db`` is the frame's realised SNR;
- ``channel[b]``: the channel class, an index into :data:`CHANNEL_CLASSES`.

:meth:`ChannelState.features` is the router's input vector ``[B, 5]``:
``(snr_db/10, (snr_db + gain_db)/10, one-hot(channel))``.

Examples:
    >>> state = ChannelState.constant(10.0, "rayleigh", batch=2)
    >>> state.features().tolist()
    [[1.0, 1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0, 0.0]]
    >>> len(state[torch.tensor([1])])
    1
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from channels.errors import check_choice, check_int, check_real

CHANNEL_CLASSES = ("awgn", "rayleigh", "rician")
"""Channel classes a state names, in the order of the one-hot part of its features."""

STATE_FEATURES = 2 + len(CHANNEL_CLASSES)
"""Length of :meth:`ChannelState.features` per frame."""

SNR_SCALE_DB = 10.0
"""dB per unit of the router's SNR inputs (keeps them O(1) over -10..30 dB)."""


@dataclass(frozen=True)
class ChannelState:
    """Per-frame channel state of a batch (module docstring).

    Attributes:
        snr_db: float32 ``[B]``, average SNR in dB.
        gain_db: float32 ``[B]``, ``10 log10`` of the frame's mean subchannel power gain.
        channel: int64 ``[B]``, index into :data:`CHANNEL_CLASSES`.
    """

    snr_db: torch.Tensor
    gain_db: torch.Tensor
    channel: torch.Tensor

    @classmethod
    def constant(
        cls,
        snr_db: float,
        channel: str,
        batch: int,
        device: torch.device | str = "cpu",
        gain_db: float = 0.0,
    ) -> ChannelState:
        """The same state for ``batch`` frames."""
        snr = check_real("snr_db", snr_db, -300.0, 300.0, coerce=True)
        kind = CHANNEL_CLASSES.index(check_choice("channel", channel, CHANNEL_CLASSES))
        n = check_int("batch", batch, 0)
        full = torch.full((n,), snr, dtype=torch.float32, device=device)
        return cls(
            full,
            torch.full((n,), float(gain_db), dtype=torch.float32, device=device),
            torch.full((n,), kind, dtype=torch.int64, device=device),
        )

    def __len__(self) -> int:
        return int(self.snr_db.shape[0])

    def __getitem__(self, index: torch.Tensor | slice) -> ChannelState:
        """The states of the frames ``index`` selects (a slice or an index tensor)."""
        return ChannelState(self.snr_db[index], self.gain_db[index], self.channel[index])

    def to(self, device: torch.device | str) -> ChannelState:
        """The same state on ``device``."""
        return ChannelState(
            self.snr_db.to(device), self.gain_db.to(device), self.channel.to(device)
        )

    def realised_snr_db(self) -> torch.Tensor:
        """``snr_db + gain_db`` ``[B]``: the frame's SNR with its fading draw."""
        return self.snr_db + self.gain_db

    def features(self) -> torch.Tensor:
        """Router inputs float32 ``[B, 5]``: ``snr/10, realised snr/10, one-hot(channel)``."""
        one_hot = torch.nn.functional.one_hot(self.channel, len(CHANNEL_CLASSES))
        return torch.cat(
            [
                (self.snr_db / SNR_SCALE_DB)[:, None],
                (self.realised_snr_db() / SNR_SCALE_DB)[:, None],
                one_hot.to(self.snr_db.dtype),
            ],
            dim=1,
        ).float()
