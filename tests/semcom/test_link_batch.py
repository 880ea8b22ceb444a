"""SemanticLink's batched allocation (optim.solve_batch) against its per-frame optim.solve
loop: the same frames bit for bit (allocation, bits, received features, decoded images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semcom.link import SemanticLink
from tests.semcom.test_link import TanhModel, images


def link_pair(**kwargs: object) -> tuple[SemanticLink, SemanticLink]:
    """Two equal links; the second is forced onto the per-frame optim.solve loop."""
    model = TanhModel(n=6, length=2)
    weights = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
    drop = np.array([0.4, 0.35, 0.3, 0.3, 0.2, 0.1])
    options = dict(n_subchannels=6, snr_db=6.0, eta=0.6, bits_per_scalar=6, backend="cpu")
    options.update(kwargs)
    batched = SemanticLink(model, weights, drop, **options)
    per_frame = SemanticLink(model, weights, drop, **options)
    per_frame._batchable = False
    return batched, per_frame


@pytest.mark.parametrize(
    ("channel", "method", "method_options"),
    [
        ("rayleigh", "hierarchical", {}),
        ("rician", "hierarchical", {}),
        ("rayleigh", "hierarchical", {"refine": False}),
        ("rician", "equal-power", {}),
        ("rayleigh", "random-matching", {"seed": 3}),
    ],
)
def test_batched_frames_equal_per_frame_frames(channel, method, method_options) -> None:
    batched, per_frame = link_pair(channel=channel, method=method, method_options=method_options,
                                   rician_k=2.0)  # fmt: skip
    allocations = {}
    for name, link in (("batched", batched), ("per_frame", per_frame)):
        allocate = link._allocate_frames

        def spy(*args, allocate=allocate, name=name):
            allocations[name] = allocate(*args)
            return allocations[name]

        link._allocate_frames = spy
    x = images(100, seed=4)
    for draw in (0, 1):  # 200 frames per case
        a, b = batched.simulate(x, draw=draw), per_frame.simulate(x, draw=draw)
        assert batched._batchable is True and per_frame._batchable is False
        np.testing.assert_array_equal(a.gains, b.gains)
        np.testing.assert_array_equal(a.sent, b.sent)
        np.testing.assert_array_equal(a.bits_per_symbol, b.bits_per_symbol)
        np.testing.assert_array_equal(a.bit_errors, b.bit_errors)
        np.testing.assert_array_equal(a.z_hat, b.z_hat)
        assert torch.equal(a.x_hat, b.x_hat)
        np.testing.assert_allclose(a.objective, b.objective, rtol=1e-9, atol=0.0)
        assert a.sent.any() and a.bit_errors.sum() > 0  # not a vacuous comparison
        # the allocations themselves: choices identical, powers equal to the last bit
        selected = allocations["batched"][0]
        assert selected.shape == (100, 6) and selected.any()
        # selected, subchannel, modulation, power: identical (power to the last bit)
        for left, right in zip(allocations["batched"][:4], allocations["per_frame"][:4],
                               strict=True):  # fmt: skip
            np.testing.assert_array_equal(left, right)


def test_randomised_method_with_per_frame_seeds_and_awgn_frames() -> None:
    """A per-frame seed (drawn from each frame's stream) keeps the per-frame loop; AWGN frames
    (equal gains) are solved once and all get that allocation."""
    batched, per_frame = link_pair(channel="rayleigh", method="random-matching")
    x = images(40, seed=5)
    a, b = batched.simulate(x), per_frame.simulate(x)
    assert batched._batchable is None  # never tried: each frame has its own seed
    np.testing.assert_array_equal(a.bit_errors, b.bit_errors)
    assert torch.equal(a.x_hat, b.x_hat)
    awgn, awgn_loop = link_pair(channel="awgn")
    c, d = awgn.simulate(x), awgn_loop.simulate(x)
    assert np.all(c.bits_per_symbol == c.bits_per_symbol[0]) and c.sent.any()
    np.testing.assert_array_equal(c.bit_errors, d.bit_errors)
    np.testing.assert_allclose(c.objective, d.objective, rtol=1e-9, atol=0.0)


def test_options_the_batched_solver_refuses_fall_back_to_the_loop() -> None:
    link, _ = link_pair(channel="rayleigh", method="hierarchical",
                        method_options={"early_stop": True})  # fmt: skip
    frames = link.simulate(images(8))
    assert link._batchable is False and frames.sent.any()
