"""Matched BER banks and the state-aware training distortion, against textbook closed forms,
independent channel draws and binomial intervals."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy.special import erfc

import optim
from channels.errors import ConfigError
from channels.fading import fading_coefficients
from optim.distortion import bit_error_rate
from optim.problem import Problem
from semcom.isfr import quantize_index
from semcom.training.channel_bank import DEFAULT_DROPOUT, channel_bank, prior_weights
from semcom.training.matched_channel import MatchedChannel, resolve_channel_options


def _qpsk_ber(gamma: np.ndarray) -> np.ndarray:
    """Gray QPSK bit-error rate at symbol SNR gamma: Q(sqrt(gamma)) = erfc(sqrt(gamma/2))/2."""
    return 0.5 * erfc(np.sqrt(np.asarray(gamma) / 2.0))


@pytest.mark.parametrize("snr", [0, 6, 10])
def test_awgn_equal_power_rows_match_the_erfc_closed_form(snr: int) -> None:
    # AWGN, K = N, uniform weights, all features fit in QPSK: by symmetry (and convexity of the
    # objective) every feature gets P_tot / N = 10^(snr/10), so eps = Q(sqrt(gamma))
    bank = channel_bank("awgn", snr, 4, 8, n_subchannels=4, eta=1.0, prior="uniform", draws=3,
                        modulations=("qpsk",))  # fmt: skip
    assert bank.sent.all() and np.allclose(bank.gain_db, 0.0)
    assert np.allclose(bank.eps, _qpsk_ber(10 ** (snr / 10)), rtol=1e-9, atol=0)


def test_fading_rows_follow_the_allocation_and_the_closed_form() -> None:
    n, length, k, snr, seed = 4, 8, 6, 3, 11
    bank = channel_bank("rayleigh", snr, n, length, n_subchannels=k, eta=1.0, prior="uniform",
                        draws=5, seed=seed, modulations=("qpsk",))  # fmt: skip
    for j in range(5):
        h = fading_coefficients("rayleigh", (k,), rng=np.random.default_rng((seed, j)))
        g = np.abs(h) ** 2
        assert bank.gain_db[j] == pytest.approx(10 * np.log10(g.mean()), abs=1e-12)
        problem = Problem(
            weights=np.full(n, 0.25), drop_distortion=np.ones(n), gains=g,
            power_budget=10 ** (snr / 10) * k, symbol_budget=length * 8 * n / 2,
            scalars_per_feature=length, bits_per_scalar=8, modulations=("qpsk",),
        )  # fmt: skip
        a = optim.solve(problem, "hierarchical").allocation
        expected = np.zeros(n)
        on = a.power > 0
        expected[a.selected[on]] = _qpsk_ber(g[a.subchannel[on]] * a.power[on])
        assert np.allclose(bank.eps[j], expected, rtol=1e-9, atol=1e-15)
        assert set(np.flatnonzero(bank.sent[j])) == set(a.selected[on].tolist())


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_rows_equal_the_per_frame_solver_with_every_modulation(fading: str) -> None:
    # the bank solves its rows in one batch; each row must be what optim.solve gives that draw,
    # with the link's full modulation set, the ISFR prior and the exact BER (bit for bit)
    n, length, k, snr, seed, draws = 8, 16, 6, 4, 5, 24
    bank = channel_bank(fading, snr, n, length, n_subchannels=k, eta=0.5, draws=draws,
                        seed=seed)  # fmt: skip
    weights = prior_weights("isfr", n)
    for j in range(draws):
        h = fading_coefficients(fading, (k,), rng=np.random.default_rng((seed, j)),
                                k_factor=3.0 if fading == "rician" else 0.0)  # fmt: skip
        g = np.abs(h) ** 2
        problem = Problem(
            weights=weights, drop_distortion=np.ones(n), gains=g,
            power_budget=10 ** (snr / 10) * k, symbol_budget=0.5 * n * length * 8 / 2,
            scalars_per_feature=length, bits_per_scalar=8, ber_model="exact",
        )  # fmt: skip
        a = optim.solve(problem, "hierarchical").allocation
        on = a.power > 0
        modulation = np.array([problem.modulation_index(m) for m in a.modulation], dtype=int)
        expected = np.zeros(n)
        expected[a.selected[on]] = bit_error_rate(
            problem, modulation[on], g[a.subchannel[on]] * a.power[on]
        )
        np.testing.assert_array_equal(np.flatnonzero(bank.sent[j]), np.sort(a.selected[on]))
        np.testing.assert_allclose(bank.eps[j], expected, rtol=1e-12, atol=0)


def test_unsent_features_are_masked_and_eps_in_range() -> None:
    # half the symbol budget of QPSK for all: at most half the features are sent
    bank = channel_bank("rician", -2, 6, 8, eta=0.5, draws=8, modulations=("qpsk",))
    assert (bank.sent.sum(axis=1) <= 3).all() and bank.sent.any()
    assert (bank.eps[~bank.sent] == 0).all()
    full = channel_bank("rayleigh", 0, 16, 16, draws=8)
    assert ((full.eps >= 0) & (full.eps <= 0.5)).all() and (full.eps[full.sent] > 0).all()


def test_same_seed_same_bank_other_seed_other_draws() -> None:
    a = channel_bank("rayleigh", 5, 4, 8, draws=4, seed=1)
    from semcom.training.channel_bank import clear_cache

    clear_cache()
    b = channel_bank("rayleigh", 5, 4, 8, draws=4, seed=1)
    assert a is not b and np.array_equal(a.eps, b.eps) and np.array_equal(a.gain_db, b.gain_db)
    assert channel_bank("rayleigh", 5, 4, 8, draws=4, seed=1) is b  # cached
    c = channel_bank("rayleigh", 5, 4, 8, draws=4, seed=2)
    assert not np.array_equal(a.gain_db, c.gain_db)
    # row j does not depend on M
    assert np.array_equal(channel_bank("rayleigh", 5, 4, 8, draws=6, seed=1).eps[:4], a.eps)


def test_isfr_prior_is_the_normalised_retention() -> None:
    from semcom.isfr import NestedDropout

    r = NestedDropout(5, "geometric", 0.2, 1, 0.8).retention().numpy()
    assert np.allclose(prior_weights("isfr", 5, ("geometric", 0.2, 1, 0.8)), r / r.sum())


def test_default_dropout_is_the_nested_dropouts_own_default() -> None:
    from semcom.isfr import NestedDropout

    params = inspect.signature(NestedDropout).parameters
    assert DEFAULT_DROPOUT == tuple(params[k].default for k in ("law", "rho", "n_min", "p_nd"))
    for function in (prior_weights, channel_bank, MatchedChannel):
        assert inspect.signature(function).parameters["dropout"].default == DEFAULT_DROPOUT


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: channel_bank("fog", 0, 4, 8), "fading: 'fog'"),
        (lambda: channel_bank("awgn", 0.5, 4, 8), "snr_db: 0.5"),
        (lambda: channel_bank("awgn", 0, 4, 8, prior="x"), "prior: 'x'"),
        (lambda: channel_bank("awgn", 0, 4, 8, draws=0), "draws: 0"),
    ],
)
def test_bad_bank_arguments(call: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------
# the matched training distortion


def test_states_come_from_the_bank_grid_and_replay_with_the_generator() -> None:
    ch = MatchedChannel(4, 8, fading=["awgn", "rayleigh"], snr_db=[-1.5, 2.2], draws=3, seed=0)
    assert ch.snr_grid == (-1, 0, 1, 2) and ch.mid_snr_db == 1.0
    s1 = ch.draw_states(200, torch.Generator().manual_seed(5))
    s2 = ch.draw_states(200, torch.Generator().manual_seed(5))
    assert torch.equal(s1.snr_db, s2.snr_db) and torch.equal(s1.gain_db, s2.gain_db)
    assert set(s1.snr_db.tolist()) == {-1.0, 0.0, 1.0, 2.0}
    assert set(s1.channel.tolist()) == {0, 1}
    for b in range(20):  # gain_db is the drawn row's
        bank = ch.bank(("awgn", "rayleigh")[int(s1.channel[b])], int(s1.snr_db[b]))
        assert float(s1.gain_db[b]) in {float(np.float32(g)) for g in bank.gain_db}
    assert torch.all(s1.gain_db[s1.channel == 0] == 0)


def test_forward_flips_bits_at_the_bank_rate_and_zeroes_unsent() -> None:
    # AWGN 0 dB QPSK-only would be ideal, but the channel uses the link's set: take the bank's
    # own eps per feature and check the measured flip rate against a 4-sigma binomial interval
    ch = MatchedChannel(4, 64, fading=["awgn"], snr_db=[0, 0], eta=0.5, draws=1, seed=3).train()
    bank = ch.bank("awgn", 0)
    z = torch.rand(64, 4, 64) * 2 - 1
    z.requires_grad_(True)
    state = ch.draw_states(64, torch.Generator().manual_seed(0))
    out = ch(z, state)
    sent = torch.tensor(bank.sent[0])
    assert torch.all(out[:, ~sent] == 0)
    flips = quantize_index(z.detach()[:, sent]) ^ quantize_index(out.detach()[:, sent])
    bits = torch.stack([(flips >> j) & 1 for j in range(8)], -1).float()  # [B, S, L, 8]
    rate = bits.mean(dim=(0, 2, 3)).numpy()
    eps = bank.eps[0][bank.sent[0]]
    n = 64 * 64 * 8
    assert np.all(np.abs(rate - eps) <= 4 * np.sqrt(eps * (1 - eps) / n) + 1e-12)
    out.sum().backward()  # straight-through gradient, zero on unsent features
    assert torch.equal(z.grad, sent[None, :, None].float().expand_as(z))
    assert torch.equal(ch.eval()(z, state), z)


def test_gaussian_mode_has_the_bit_error_mse() -> None:
    ch = MatchedChannel(4, 256, fading=["awgn"], snr_db=[0, 0], draws=1, mode="gaussian", seed=1)
    ch.train()
    bank = ch.bank("awgn", 0)
    z = torch.zeros(64, 4, 256)
    out = ch(z, ch.draw_states(64, torch.Generator().manual_seed(0)))
    sent = bank.sent[0]
    var = (out - (-1 + 128.5 * 2 / 256)).pow(2).mean(dim=(0, 2)).numpy()[sent]
    expected = bank.eps[0][sent] * (2 / 256) ** 2 * (4**8 - 1) / 3
    assert np.allclose(var, expected, rtol=0.05)  # 16384 samples: ~1.1% relative std
    assert torch.all(out[:, torch.from_numpy(~sent)] == 0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"fading": "fog", "snr_db": 0}, "channel.fading: 'fog'"),
        ({"fading": "awgn", "snr_db": [5, 1]}, r"channel.snr_db: \[5, 1\]"),
        ({"fading": "awgn", "snr_db": [0.2, 0.7]}, "containing an integer"),
        ({"fading": "awgn"}, "channel.snr_db: None"),
        ({"fading": "awgn", "snr_db": 0, "draws": 0}, "channel.draws: 0"),
        ({"fading": "awgn", "snr_db": 0, "speed": 3}, "channel.speed: 3"),
    ],
)
def test_bad_channel_options(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_channel_options(options, 4, "isfr")
    with pytest.raises(ConfigError, match="scheme: 'none'"):
        resolve_channel_options({"fading": "awgn", "snr_db": 0}, 4, "none")
