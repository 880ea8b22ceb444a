"""Our BER engine against Sionna's Mapper -> AWGN -> Demapper chain, the peer we did not write."""

from __future__ import annotations

import numpy as np
import pytest

from channels.montecarlo import simulate_ber

pytestmark = pytest.mark.sionna

CASES = [("bpsk", "pam", 1, 4.0), ("qpsk", "qam", 2, 6.0), ("16qam", "qam", 4, 12.0),
         ("64qam", "qam", 6, 18.0), ("256qam", "qam", 8, 24.0)]  # fmt: skip


@pytest.mark.parametrize(("name", "kind", "k", "esno_db"), CASES)
def test_ber_agrees_with_sionna_chain(name: str, kind: str, k: int, esno_db: float) -> None:
    import torch
    from sionna.phy.channel import AWGN
    from sionna.phy.mapping import BinarySource, Demapper, Mapper

    torch.manual_seed(1234)
    no = 10 ** (-esno_db / 10)
    source, mapper = BinarySource(), Mapper(kind, k)
    channel, demapper = AWGN(), Demapper("maxlog", kind, k, hard_out=True)
    per_symbol = []  # bit errors of each symbol: the independent unit for the variance
    while sum(int(e.sum()) for e in per_symbol) < 3000:
        b = source([64, 4096 * k])
        b_hat = demapper(channel(mapper(b), no), no)
        per_symbol.append((b != b_hat).reshape(-1, k).sum(-1).numpy())
    e = np.concatenate(per_symbol)
    theirs = e.sum() / (e.size * k)
    var_theirs = e.var(ddof=1) / (e.size * k * k)
    ours = simulate_ber(name, "awgn", esno_db, min_errors=3000, seed=7)
    var_ours = ((ours.ci_high - ours.ci_low) / (2 * 1.959964)) ** 2  # from its 95% interval
    # two-sample test at 99%: the two simulators estimate the same BER
    assert abs(ours.ber - theirs) <= 2.5758 * np.sqrt(var_ours + var_theirs), (ours.ber, theirs)
