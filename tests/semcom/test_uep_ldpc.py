"""The isfr-uep-ldpc scheme: registered, its link sends LDPC-coded features, bad entries are
one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.coded import coded_entries
from channels.errors import ConfigError
from semcom.link import SemanticLink, drop_distortion
from semcom.models.build import build_model
from semcom.schemes import LDPC_LINK, SCHEMES

pytest.importorskip("sionna.phy.fec.ldpc")


def test_scheme_is_built_in() -> None:
    scheme = SCHEMES.get("isfr-uep-ldpc")
    assert scheme.link == LDPC_LINK and scheme.method == "hierarchical"


def _link(**kwargs):
    torch.manual_seed(0)
    model = build_model("mlp", n_features=4)
    images = torch.rand(3, 1, 8, 8)
    entries = coded_entries(["qpsk", "16qam"], ["1/2", "1"])
    link = SemanticLink(model, np.full(4, 0.25), drop_distortion(model, images), channel="awgn",
                        n_subchannels=4, snr_db=kwargs.pop("snr_db", 3.0), modulations=entries,
                        ber_model="bound", **kwargs)  # fmt: skip
    return link, images


def test_link_sends_coded_features() -> None:
    link, images = _link(snr_db=3.0)
    frames = link.simulate(images, draw=0)
    assert frames.sent.any()
    rng = np.random.default_rng(0)
    gains = np.abs(link._draw_fading(rng))[None] ** 2
    modulation = link._allocate_frames([rng], gains, None)[2][0]  # one draw uses a coded entry
    assert any("-r" in link.modulations[m] for m in modulation if m >= 0)
    strong, _ = _link(snr_db=30.0)  # far above every waterfall: no bit error after decoding
    assert int(strong.simulate(images).bit_errors.sum()) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"modulations": ("qpsk-r3/5",)}, "modulations"), ({"ber_model": "exact"}, "ber_model")],
)
def test_bad_options_are_one_line_errors(kwargs: dict, field: str) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", n_features=4)
    base = {"modulations": ("qpsk-r1/2", "qpsk"), "ber_model": "bound", **kwargs}
    with pytest.raises(ConfigError) as err:
        SemanticLink(model, np.full(4, 0.25), np.full(4, 0.1), **base)
    assert str(err.value).startswith(f"{field}:") and "\n" not in str(err.value)
