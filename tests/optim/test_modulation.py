"""SP3 (optim.modulation): monotone patterns against brute force, and the fast variants."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from optim.modulation import (
    _lagrangian_choice,
    assign_modulations,
    count_monotone_patterns,
    fast_patterns,
    greedy_pattern,
    is_monotone,
    lagrangian_pattern,
    monotone_patterns,
    pattern_symbols,
    two_level_patterns,
)

S4 = np.array([512, 256, 128, 86])  # bpsk, qpsk, 16qam, 64qam for b = 512
S5 = np.array([512, 256, 128, 86, 64])  # + 256qam


def _brute(n, symbols, s_max, monotone=True):
    out = []
    for pat in itertools.product(range(len(symbols)), repeat=n):
        if monotone and list(pat) != sorted(pat):
            continue
        if sum(symbols[m] for m in pat) <= s_max:
            out.append(pat)
    return set(out)


@pytest.mark.parametrize("symbols", [S4, S5], ids=["M4", "M5"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("eta", [0.0, 0.3, 0.5, 0.8, 1.0, 2.5])
def test_monotone_patterns_equal_brute_force(symbols, n, eta):
    s_max = eta * max(n, 1) * 256
    got = monotone_patterns(n, symbols, s_max)
    assert got.shape[1] == n
    assert {tuple(r) for r in got.tolist()} == _brute(n, symbols, s_max)
    assert len(got) == len({tuple(r) for r in got.tolist()})


def test_pattern_count_formula():
    for n in range(8):
        for m in (1, 2, 4, 5):
            symbols = np.arange(m, 0, -1) * 10
            assert len(monotone_patterns(n, symbols, 1e9)) == count_monotone_patterns(n, m)
            assert count_monotone_patterns(n, m) == comb(n + m - 1, m - 1)


@pytest.mark.parametrize("n", [1, 3, 6])
@pytest.mark.parametrize("eta", [0.2, 0.4, 0.6, 1.0, 2.0])
def test_greedy_pattern(n, eta):
    s_max = eta * n * 256
    pat = greedy_pattern(n, S4, s_max)
    feasible = _brute(n, S4, s_max)
    if not feasible:
        assert pat is None
        return
    assert tuple(pat) in feasible and is_monotone(pat)
    # it is the pattern of "upgrade the least important feature" step by step: undoing the
    # last upgrade (lowering the first feature not at the lowest order ... from the tail)
    # breaks the budget unless the pattern is all-lowest.
    if np.any(pat > 0):
        j = int(np.flatnonzero(pat > 0)[0])
        lower = pat.copy()
        lower[j] -= 1
        assert pattern_symbols(lower, S4) > s_max


@pytest.mark.parametrize("n", [1, 2, 4, 6])
@pytest.mark.parametrize("eta", [0.2, 0.45, 0.6, 1.0, 2.0])
def test_two_level_patterns_are_admissible_frontier_points(n, eta):
    s_max = eta * n * 256
    pats = two_level_patterns(n, S4, s_max)
    feasible = _brute(n, S4, s_max)
    assert {tuple(r) for r in pats.tolist()} <= feasible
    for row in pats:
        assert len(set(row.tolist())) <= 2 and is_monotone(row)
        # the head cannot grow by one (moving one more feature to the lower order)
        levels = sorted(set(row.tolist()))
        if len(levels) == 2:
            h = int(np.sum(row == levels[0]))
            longer = np.array([levels[0]] * (h + 1) + [levels[1]] * (n - h - 1))
            assert pattern_symbols(longer, S4) > s_max
    if feasible:
        lowest_uniform = min(m for m in range(4) if n * S4[m] <= s_max)
        assert [lowest_uniform] * n in pats.tolist()


def _costs(rng, n, m=4):
    # weighted errors decreasing in importance, increasing in order
    base = np.sort(rng.exponential(size=n))[::-1]
    return base[:, None] * np.sort(rng.uniform(0.01, 1, size=(n, m)), axis=1)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_lagrangian_pattern_is_admissible_and_monotone(n):
    rng = np.random.default_rng(n)
    for eta in (0.4, 0.5, 0.9):
        s_max = eta * n * 256
        cost = _costs(rng, n)
        pat = lagrangian_pattern(cost, S4, s_max)
        assert tuple(pat) in _brute(n, S4, s_max) and is_monotone(pat)
    assert lagrangian_pattern(np.ones((3, 4)), S4, 100) is None


@pytest.mark.parametrize("n", [1, 2, 4, 5])
def test_assign_modulations_against_brute_force(n):
    """Lagrangian property: the relaxed choice is optimal among assignments that use no more
    symbols than it does; the slack fill only improves on it; the result fits."""
    rng = np.random.default_rng(100 + n)
    for eta in (0.3, 0.5, 0.75, 1.5):
        s_max = eta * n * 256
        cost = rng.exponential(size=(n, 4)) * np.array([1, 2, 4, 8])
        got = assign_modulations(cost, S4, s_max)
        everything = _brute(n, S4, s_max, monotone=False)
        if not everything:
            assert got is None
            continue
        assert tuple(got) in everything
        relaxed = _lagrangian_choice(cost, S4, s_max)
        used = pattern_symbols(relaxed, S4)

        def total(pat, cost=cost):
            return cost[np.arange(n), list(pat)].sum()

        within = [pat for pat in everything if pattern_symbols(np.array(pat), S4) <= used]
        assert total(relaxed) <= min(total(p) for p in within) + 1e-12
        assert total(got) <= total(relaxed) + 1e-12
    assert assign_modulations(np.ones((2, 4)), S4, 100) is None


def _greedy_step_by_step(n, symbols, s_max):
    """The cheap option of docs/method.md §5.4, literally: all at the lowest order, then upgrade
    the least important feature that is not yet at the top order, one level at a time."""
    if n * symbols[-1] > s_max:
        return None
    pat = [0] * n
    j = n - 1
    while sum(symbols[m] for m in pat) > s_max:
        if pat[j] == len(symbols) - 1:
            j -= 1
            continue
        pat[j] += 1
    return pat


@pytest.mark.parametrize("symbols", [S4, S5, np.array([7, 5, 2])], ids=["M4", "M5", "odd"])
def test_greedy_closed_form_equals_step_by_step(symbols):
    for n in range(0, 9):
        for s_max in np.linspace(0, n * symbols[0] + 3, 97):
            got = greedy_pattern(n, symbols, s_max)
            ref = _greedy_step_by_step(n, symbols, s_max)
            assert (got is None and ref is None) or got.tolist() == ref, (n, s_max)


def test_fast_patterns_are_distinct_admissible_monotone():
    for n in (1, 5, 40):
        for eta in (0.35, 0.5, 0.7, 1.0):
            s_max = eta * n * 256
            pats = fast_patterns(n, S4, s_max)
            assert len({tuple(r) for r in pats.tolist()}) == len(pats)
            assert np.all(pattern_symbols(pats, S4) <= s_max) and is_monotone(pats)
            assert any(r.tolist() == greedy_pattern(n, S4, s_max).tolist() for r in pats)
