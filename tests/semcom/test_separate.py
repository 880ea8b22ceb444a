"""Separate source-channel coding (semcom.separate): the LDPC chain against Sionna's own
chain, the quality bisection against brute force, the failure rule, the capacity bound
against its closed form, and one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.separate import SeparateLink, block_plan, capacity_bits, waterfilling
from semcom.separate.chain import transmit_payload
from semcom.separate.image_codecs import CODECS, decode, encode, fit_quality, to_uint8


def _image(seed: int = 0, size: int = 8) -> torch.Tensor:
    """A smooth random colour image ``[3, size, size]`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 2, 2, generator=g)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")[0]
    return (0.8 * fine + 0.2 * torch.rand(3, size, size, generator=g)).clamp(0, 1)


# ---------------------------------------------------------------- LDPC against Sionna's chain
def _sionna_bler(snr_db: float, plan, blocks: int, seed: int) -> float:
    """Block error rate of Sionna's own chain: CRC-24B + 5G LDPC + QAM mapper, AWGN,
    app demapper, 5G LDPC decoder, CRC check (QPSK)."""
    from sionna.phy import config
    from sionna.phy.channel import AWGN
    from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
    from sionna.phy.mapping import Demapper, Mapper

    config.seed = seed
    crc_enc = CRCEncoder("CRC24B")
    crc_dec = CRCDecoder(crc_enc)
    enc = LDPC5GEncoder(plan.k, plan.n)
    dec = LDPC5GDecoder(enc, num_iter=20)
    mapper, demapper = Mapper("qam", 2), Demapper("app", "qam", 2)
    no = 10.0 ** (-snr_db / 10.0)
    u = torch.randint(0, 2, (blocks, plan.payload), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = AWGN()(mapper(enc(crc_enc(u.float()))), no)
        _, ok = crc_dec(dec(demapper(y, no)))
    return 1.0 - float(ok.float().mean())


def _our_bler(snr_db: float, plan, blocks: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 2, (blocks, plan.payload)).astype(np.uint8)
    n_symbols = plan.n // 2
    h = np.ones((blocks, 4), dtype=np.complex128)  # 4 unit subchannels: AWGN
    noise = (rng.standard_normal((blocks, n_symbols))
             + 1j * rng.standard_normal((blocks, n_symbols))) / math.sqrt(2)  # fmt: skip
    _, ok = transmit_payload(payload, h, noise, snr_db, "qpsk", plan)
    return 1.0 - float(ok.all(axis=1).mean())


@pytest.mark.parametrize("snr_db", [0.5, 1.5])
def test_ldpc_chain_bler_matches_sionna(snr_db: float) -> None:
    torch.set_num_threads(1)
    plan = block_plan(256, 0.5)  # one block: n = 256, k = 128 (104 payload + CRC-24B)
    assert (plan.n_blocks, plan.n, plan.k, plan.payload) == (1, 256, 128, 104)
    blocks = 400
    ours = _our_bler(snr_db, plan, blocks, seed=1)
    ref = _sionna_bler(snr_db, plan, blocks, seed=2)
    pooled = (ours + ref) / 2
    sigma = math.sqrt(max(pooled * (1 - pooled), 1e-12) * 2 / blocks)
    assert 0.02 < ref < 0.98  # an informative operating point
    assert abs(ours - ref) <= 4.0 * sigma, (ours, ref)  # two-proportion test at ~4 sigma


def test_ldpc_noiseless_and_crc_failure() -> None:
    plan = block_plan(600, 0.5)
    payload = np.random.default_rng(0).integers(0, 2, (2, plan.payload_bits)).astype(np.uint8)
    h = np.ones((2, 3), dtype=np.complex128)
    rx, ok = transmit_payload(payload, h, None, math.inf, "16qam", plan)
    assert ok.all() and np.array_equal(rx, payload)
    noise = np.full((2, 150), 50.0 + 0j)  # a huge constant offset: every block fails
    _, ok = transmit_payload(payload, h, noise, 0.0, "16qam", plan)
    assert not ok.any()


# ----------------------------------------------------------------------- quality bisection
@pytest.mark.parametrize("codec", CODECS)
def test_bisection_fits_and_is_maximal(codec: str) -> None:
    pixels = to_uint8(_image(3))
    sizes = {q: 8 * len(encode(pixels, codec, q)) for q in range(1, 101)}
    monotone = all(sizes[q] <= sizes[q + 1] for q in range(1, 100))
    for budget in sorted({sizes[1] - 1, sizes[1], sizes[50], sizes[100] - 8, sizes[100], 10**6}):
        fit = fit_quality(pixels, codec, budget)
        if sizes[1] > budget:
            assert fit is None
            continue
        q, data = fit
        assert 8 * len(data) <= budget and data == encode(pixels, codec, q)
        assert q == 100 or sizes[q + 1] > budget  # a fit/no-fit boundary
        if monotone:  # then the largest fitting quality (brute force)
            assert q == max(p for p, s in sizes.items() if s <= budget)
    if codec == "jpeg2000":
        assert monotone  # rate-controlled sizes: the brute-force comparison above ran


# ----------------------------------------------------------------------------- failure rule
def test_failure_rule_mean_image_and_counts() -> None:
    torch.set_num_threads(1)
    images = torch.stack([_image(s, 16) for s in range(3)])
    mean = torch.full((3, 16, 16), 0.25)
    bad = SeparateLink("webp", mean, 400, "awgn", -10.0, 4, rate=5 / 6, modulation="64qam")
    frames = bad.simulate(images)
    assert bad.failures == bad.frames == 3 and bad.unfit == 0
    assert torch.equal(frames.x_hat, mean.expand(3, -1, -1, -1))
    good = SeparateLink("webp", mean, 400, "awgn", 30.0, 4, rate=1 / 2, modulation="16qam")
    frames = good.simulate(images)
    assert good.failures == 0 and frames.bit_errors.sum() == 0 and frames.sent.all()
    room = good.plan.payload_bits - 32
    for j in range(3):
        _, data = fit_quality(to_uint8(images[j]), "webp", room)
        assert torch.equal(frames.x_hat[j], torch.from_numpy(decode(data, "webp", (3, 16, 16))))
    tiny = SeparateLink("avif", mean, 40, "awgn", 30.0, 4, rate=1 / 2, modulation="qpsk")
    frames = tiny.simulate(images)  # no AVIF file fits 40 payload bits: nothing sent
    assert tiny.failures == tiny.unfit == 3 and not frames.sent.any()
    assert torch.equal(frames.x_hat, mean.expand(3, -1, -1, -1))


# --------------------------------------------------------------------------- capacity bound
def test_waterfilling_and_capacity_closed_form() -> None:
    g = np.array([2.0, 0.5, 0.1])
    # P = 1: water level 1.5 < 1/0.5, one active subchannel
    assert np.allclose(waterfilling(g, 1.0), [1.0, 0.0, 0.0])
    # P = 3: level (3 + 0.5 + 2) / 2 = 2.75, powers 2.25 and 0.75
    assert np.allclose(waterfilling(g, 3.0), [2.25, 0.75, 0.0])
    n = 9  # three symbols per subchannel
    want = 3 * (math.log2(1 + 2 * 2.25) + math.log2(1 + 0.5 * 0.75))
    assert capacity_bits(g, 3.0, n) == pytest.approx(want, rel=1e-12)
    equal = 3 * sum(math.log2(1 + gk * 1.0) for gk in g)
    assert capacity_bits(g, 3.0, n, power="equal") == pytest.approx(equal, rel=1e-12)
    assert capacity_bits(g, 3.0, n) >= capacity_bits(g, 3.0, n, power="equal")


def test_capacity_link_uses_the_capacity_budget() -> None:
    images = torch.stack([_image(s, 16) for s in range(2)])
    mean = torch.zeros(3, 16, 16)
    budget, snr = 300, 3.0
    link = SeparateLink("capacity", mean, budget, "awgn", snr, 4, capacity_codecs=("webp",))
    frames = link.simulate(images)
    c = budget * math.log2(1 + 10 ** (snr / 10))  # AWGN: g = 1 on every subchannel
    assert capacity_bits(np.ones(4), 4 * 10 ** (snr / 10), budget) == pytest.approx(c)
    for j in range(2):
        _, data = fit_quality(to_uint8(images[j]), "webp", c)
        assert torch.equal(frames.x_hat[j], torch.from_numpy(decode(data, "webp", (3, 16, 16))))
    assert link.failures == 0 and not frames.sent.any()
    starved = SeparateLink("capacity", mean, 2, "awgn", -20.0, 2, capacity_codecs=("webp",))
    starved.simulate(images)
    assert starved.failures == 2


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"codec": "bpg"}, "codec"), ({"rate": 0.1}, "rate"), ({"modulation": "8psk"}, "modulation"),
     ({"channel": "fading"}, "channel"), ({"symbol_budget": 0}, "symbol_budget"),
     ({"power": "max"}, "power"), ({"capacity_codecs": ()}, "capacity_codecs")],
)  # fmt: skip
def test_bad_options_one_line(kwargs: dict, field: str) -> None:
    args = {"codec": "webp", "mean_image": torch.zeros(3, 8, 8), "symbol_budget": 100, **kwargs}
    with pytest.raises(ConfigError) as err:
        SeparateLink(**args)
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


def test_scenario_needs_a_semantic_scheme() -> None:
    from semcom.scenario import Scenario
    from semcom.scenario.checks import check_schemes

    s = Scenario.model_validate({"name": "d", "schemes": ["isfr-uep", "sep-webp-ldpc"]})
    assert s.model_variants() == ["isfr"] and s.scheme("sep-webp-ldpc").separate == "webp"
    problems: list[str] = []
    assert not check_schemes([(0, "sep-webp-ldpc"), (1, "sep-capacity")], problems)
    assert len(problems) == 1 and problems[0].startswith("schemes:")
