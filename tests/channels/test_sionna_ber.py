"""Our BER engine against Sionna's Mapper -> AWGN -> Demapper chain, the peer we did not write."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from channels.montecarlo import simulate_ber

pytestmark = pytest.mark.sionna

CASES = [("bpsk", "pam", 1, 4.0), ("qpsk", "qam", 2, 6.0), ("16qam", "qam", 4, 12.0),
         ("64qam", "qam", 6, 18.0), ("256qam", "qam", 8, 24.0)]  # fmt: skip


@pytest.mark.parametrize(("name", "kind", "k", "esno_db"), CASES)
def test_ber_agrees_with_sionna_chain(
    name: str, kind: str, k: int, esno_db: float, sionna_seed: Callable[[int], None]
) -> None:
    from sionna.phy.channel import AWGN
    from sionna.phy.mapping import BinarySource, Demapper, Mapper

    sionna_seed(1234)  # a fixed draw: a 99% test over 5 cases must not fail 5% of CI runs
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


def test_sionna_draws_are_fixed_by_its_config_seed(sionna_seed: Callable[[int], None]) -> None:
    """The seeding the tests above rely on: the same ``config.seed`` gives the same draws."""
    import torch
    from sionna.phy.channel import AWGN
    from sionna.phy.mapping import BinarySource

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(1000, dtype=torch.complex128)
        return BinarySource()([4, 100]), AWGN(precision="double")(zeros, 0.3)

    sionna_seed(7)
    bits, noise = draw()
    sionna_seed(7)
    again_bits, again_noise = draw()
    assert torch.equal(bits, again_bits) and torch.equal(noise, again_noise)
    sionna_seed(8)
    assert not torch.equal(noise, draw()[1])
