"""optim.polca: the epsilon-net memory, the UCB priority queue, the search loop and the
``polca`` method.

References: the invariants themselves (pairwise separation, covering of every rejected
proposal, the UCB formula computed by hand), and the certified optimum of
``optim.solve(problem, "exact")`` that a noise-free search with an exhaustive budget must
reach on tiny instances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optim
from channels.errors import ConfigError
from optim.polca import MOVES, EpsNet, UCBQueue, local_moves, polca, polca_search
from optim.problem import random_problem

point = st.lists(st.floats(-3, 3, allow_nan=False), min_size=2, max_size=2)


@settings(max_examples=200, deadline=None)
@given(st.lists(point, max_size=40), st.floats(0, 2))
def test_eps_net_invariant_after_any_inserts(points, eps):
    net = EpsNet(eps)
    for p in points:
        x = np.array(p)
        i, new = net.add(tuple(p), x)
        e = net.embeddings
        if new:
            assert i == len(net) - 1 and np.array_equal(e[i], x)
        else:  # rejected: covered by its nearest member
            d = np.sqrt(((e - x) ** 2).sum(axis=1))
            assert d[i] == d.min() and (d[i] < eps or d[i] == 0.0)
        # invariant: members pairwise >= eps apart and distinct
        d = np.sqrt(((e[:, None] - e[None]) ** 2).sum(axis=-1))
        off = d[~np.eye(len(net), dtype=bool)]
        assert np.all(off >= eps) and np.all(off > 0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.floats(-1, 1), max_size=6), min_size=1, max_size=10),
    st.floats(0, 3),
    st.data(),
)
def test_pop_returns_the_argmax_ucb(histories, c, data):
    queue = UCBQueue(c)
    for i, rewards in enumerate(histories):
        for r in rewards:
            queue.update(i, r)
    queued = data.draw(st.sets(st.integers(0, len(histories) - 1), min_size=1))
    for i in queued:
        queue.push(i)
    t = sum(len(h) for h in histories)

    def ucb(i):  # by hand
        h = histories[i]
        return math.inf if not h else sum(h) / len(h) + c * math.sqrt(math.log(1 + t) / len(h))

    while len(queue):
        best = max(ucb(i) for i in queued)
        got = queue.pop()
        assert got in queued and ucb(got) == best
        assert got == min(i for i in queued if ucb(i) == best)  # ties: lower index
        queued.discard(got)
    with pytest.raises(IndexError):
        queue.pop()


def test_search_finds_the_maximum_of_a_noisy_function():
    def evaluate(x, rng):
        return -((x - 13) ** 2) + rng.normal(0.0, 2.0)

    def propose(x, rng):
        return [x + int(rng.choice([-2, -1, 1, 2]))]

    out = polca_search([0], evaluate, propose, lambda x: np.array([float(x)]), budget=600,
                       eps=0.5, ucb_c=2.0, rng=np.random.default_rng(0))  # fmt: skip
    assert out.best == 13 and out.evaluations == 600
    assert out.queue.counts[out.index] == max(out.queue.counts)  # the most evaluated member


def test_noise_free_exhaustive_budget_reaches_the_exact_optimum():
    structural = tuple(m for m in MOVES if m != "power")  # a finite space of structures
    for s in range(12):
        p = random_problem(2, 2, seed=s, modulations=("bpsk", "qpsk"),
                           eta=(0.5, 1.0)[s % 2], snr_db=(0.0, 10.0, 20.0)[s % 3])  # fmt: skip
        exact = optim.solve(p, "exact")
        assert exact.status["optimal"]
        got = optim.solve(p, "polca", budget=200, noise=0.0, eps=0.0, ucb_c=1.0,
                          moves=structural, seed=s)  # fmt: skip
        assert got.objective == pytest.approx(exact.objective, rel=1e-9), s


def test_polca_is_feasible_reproducible_and_no_worse_than_its_start():
    rng = np.random.default_rng(8)
    for i in range(25):
        n, k = (int(x) for x in rng.integers(0, 7, size=2))
        snr, eta = float(rng.uniform(-5, 25)), float(rng.uniform(0, 1.2))
        p = random_problem(n, k, seed=i, snr_db=snr, eta=eta, ber_model=("exact", "bound")[i % 2])
        r = optim.solve(p, "polca", budget=40, noise=0.0, seed=i)
        assert r.feasible, r.allocation.violations(p)
        assert r.objective <= optim.solve(p, "lowest-order").objective * (1 + 1e-9)
        noisy = optim.solve(p, "polca", budget=40, seed=i)
        assert noisy.feasible
        assert optim.solve(p, "polca", budget=40, seed=i).allocation == noisy.allocation


def test_every_local_move_stays_feasible():
    rng = np.random.default_rng(9)
    p = random_problem(6, 5, seed=4, eta=0.6)
    c = optim.polca.from_allocation(p, optim.solve(p, "lowest-order").allocation)
    for _ in range(300):
        out = local_moves(p, c, rng)
        for new in out:
            assert new.allocation(p).is_feasible(p)
            c = new


def test_solve_batch_equals_solve_frame_by_frame():
    p = random_problem(4, 5, seed=2)
    gains = np.random.default_rng(10).exponential(size=(4, 5))
    out = optim.solve_batch(p, gains, "polca", budget=30, seed=5)
    for b in range(gains.shape[0]):
        ref = optim.solve(p.replace(gains=gains[b]), "polca", budget=30, seed=5)
        assert out.allocation(b, p.modulations) == ref.allocation
        assert math.isclose(out.objective[b], ref.objective, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget": 0}, r"^budget: 0 is invalid"),
        ({"eps": -1.0}, r"^eps: -1.0 is invalid"),
        ({"noise": -0.1}, r"^noise: -0.1 is invalid"),
        ({"moves": ["teleport"]}, r"^moves: \['teleport'\] is invalid"),
        ({"start": ["ui-ep"]}, r"^start: 'ui-ep' is invalid"),
        ({"start": ["nope"]}, r"^method: 'nope' is not one of"),
        ({"propose": 3}, r"^propose: 3 is invalid"),
    ],
)
def test_bad_options_are_one_line_config_errors(options, message):
    p = random_problem(3, 3, seed=0)
    with pytest.raises(ConfigError, match=message):
        polca(p, **options)
    with pytest.raises(ConfigError, match=message):
        optim.solve_batch(p, np.ones((2, 3)), "polca", **options)
