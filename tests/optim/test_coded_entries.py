"""(modulation, LDPC rate) entries in the allocation problem: symbol counts, the fitted BER
model, and the solvers against brute force on tiny problems."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import optim
from channels.errors import ConfigError
from optim.distortion import dropped_cost
from optim.problem import Allocation, random_problem

ENTRIES = ("qpsk", "qpsk-r1/2", "qpsk-r5/6", "16qam-r1/2", "16qam")


def _problem(seed: int, snr_db: float, eta: float = 0.6):
    return random_problem(2, 2, seed=seed, modulations=ENTRIES, ber_model="bound",
                          snr_db=snr_db, eta=eta, scalars_per_feature=16)  # fmt: skip


def _brute_force(p) -> float:
    """min over selections, injective matchings and entries, with the best power split found
    by a bounded scalar search (two features) or all the power (one): objective value."""
    best = dropped_cost(p)
    n, k = p.n_features, p.n_subchannels

    for size in (1, 2):
        for sel in itertools.permutations(range(n), size):
            if list(sel) != sorted(sel):
                continue
            for sub in itertools.permutations(range(k), size):
                for mods in itertools.product(p.modulations, repeat=size):
                    alloc = Allocation(np.array(sel), np.array(sub), mods, np.zeros(size))
                    if alloc.symbols_needed(p) > p.symbol_budget:
                        continue

                    def cost(split: float, sel=sel, sub=sub, mods=mods, size=size) -> float:
                        power = np.array([split, 1 - split])[:size] * p.power_budget
                        a = Allocation(np.array(sel), np.array(sub), mods, power)
                        return optim.distortion.objective(p, a)

                    if size == 1:
                        value = cost(1.0)
                    else:
                        grid = np.linspace(0, 1, 401)
                        j = int(np.argmin([cost(s) for s in grid]))
                        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, 400)]
                        value = min(cost(grid[j]), minimize_scalar(
                            cost, bounds=(lo, hi), method="bounded").fun)  # fmt: skip
                    best = min(best, value)
    return best


def test_symbol_table_counts_coded_bits() -> None:
    p = _problem(0, 5.0)
    # b = L Q = 128 bits: ceil(b / (beta r))
    expect = {"qpsk": 64, "qpsk-r1/2": 128, "qpsk-r5/6": 77, "16qam-r1/2": 64, "16qam": 32}
    assert dict(zip(p.modulations, p.symbol_table[0].tolist(), strict=True)) == expect


@pytest.mark.parametrize(("seed", "snr_db"), [(0, 0.0), (1, 4.0), (2, 8.0), (3, 12.0)])
def test_exact_equals_brute_force_and_hierarchical_is_feasible(seed: int, snr_db: float) -> None:
    p = _problem(seed, snr_db)
    exact = optim.solve(p, "exact")
    hier = optim.solve(p, "hierarchical")
    assert exact.allocation.is_feasible(p) and hier.allocation.is_feasible(p)
    brute = _brute_force(p)
    assert exact.objective <= brute * (1 + 1e-6) + 1e-12
    assert exact.objective >= brute * (1 - 1e-3) - 1e-12
    assert hier.objective >= exact.objective * (1 - 1e-9) - 1e-12


def test_rates_follow_the_snr() -> None:
    """One feature on one AWGN subchannel: at 1.5 dB the rate-1/2 code (fitted Pb ~ 1e-3 against
    the uncoded QPSK bound's 0.24) is chosen; at 25 dB with room for 16-QAM, the uncoded
    16-QAM entry (same cost floor, fewest symbols, Pb ~ 0) ties and the budget is met."""
    for snr_db, expect in ((1.5, "qpsk-r1/2"), (25.0, None)):
        p = random_problem(1, 1, seed=0, fading="awgn", modulations=ENTRIES, ber_model="bound",
                           snr_db=snr_db, eta=4.0, scalars_per_feature=16)  # fmt: skip
        alloc = optim.solve(p, "exact").allocation
        assert alloc.n_selected == 1 and alloc.is_feasible(p)
        if expect is not None:
            assert alloc.modulation[0] == expect


def test_exact_ber_model_with_coded_entries_is_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"^ber_model: 'exact' is invalid"):
        random_problem(2, 2, modulations=ENTRIES, ber_model="exact")
