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
from semcom.separate.image_codecs import (
    CODECS,
    HEVC,
    PILLOW_CODECS,
    decode,
    encode,
    fit_quality,
    hevc_available,
    to_uint8,
)
from tests.semcom.link_task_helpers import tiny_task

needs_heif = pytest.mark.skipif(not hevc_available(), reason="pillow-heif (extra hevc) missing")
INSTALLED_CODECS = [pytest.param(c, marks=needs_heif) if c == HEVC else c for c in CODECS]


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


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("snr_db", [0.5, 1.5])
def test_ldpc_chain_bler_matches_sionna(snr_db: float) -> None:
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
@pytest.mark.parametrize("codec", INSTALLED_CODECS)
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
@pytest.mark.usefixtures("one_thread")
def test_failure_rule_mean_image_and_counts() -> None:
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


# ------------------------------------------------------------------ HEVC intra (pillow-heif)
@needs_heif
def test_hevc_files_are_heif_hevc_and_deterministic() -> None:
    """The ``hevc`` file is what libheif reads back as an HEVC image of the same size, the
    same bytes on every call, with a PSNR that grows with the quality (x265's rate control)."""
    import pillow_heif
    from skimage import data

    x = torch.from_numpy(data.astronaut()[:64, 160:224].transpose(2, 0, 1) / 255.0).float()
    pixels = to_uint8(x)
    psnr = {}
    for q in (10, 50, 100):
        data = encode(pixels, HEVC, q)
        assert data == encode(pixels, HEVC, q)
        assert pillow_heif.is_supported(data)
        heif = pillow_heif.open_heif(data)
        assert heif.info.get("bit_depth", 8) == 8 and heif.size == (64, 64)
        y = torch.from_numpy(decode(data, HEVC, (3, 64, 64)))
        psnr[q] = -10 * math.log10(float(((y - x) ** 2).mean()))
    assert psnr[10] < psnr[50] < psnr[100] and psnr[100] > 35.0, psnr
    grey = to_uint8(x[:1])
    assert decode(encode(grey, HEVC, 90), HEVC, (1, 64, 64)).shape == (1, 64, 64)


@pytest.mark.usefixtures("one_thread")
@needs_heif
def test_hevc_link_delivers_the_fitted_file_or_the_mean_image() -> None:
    images = torch.stack([_image(s, 32) for s in range(2)])
    mean = torch.full((3, 32, 32), 0.25)
    good = SeparateLink("hevc", mean, 4000, "awgn", 30.0, 4, rate=1 / 2, modulation="16qam")
    frames = good.simulate(images)
    assert good.failures == 0 and frames.sent.all()
    room = good.plan.payload_bits - 32
    for j in range(2):
        _, data = fit_quality(to_uint8(images[j]), HEVC, room)
        assert torch.equal(frames.x_hat[j], torch.from_numpy(decode(data, HEVC, (3, 32, 32))))
    bad = SeparateLink("hevc", mean, 4000, "awgn", -10.0, 4, rate=5 / 6, modulation="64qam")
    frames = bad.simulate(images)
    assert bad.failures == 2 and torch.equal(frames.x_hat, mean.expand(2, -1, -1, -1))


def test_hevc_without_pillow_heif_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the optional package the codec, the built-in scheme and a custom scheme are
    refused before any work, each naming the extra to install."""
    from semcom.scenario import checks
    from semcom.scenario.schema import CustomScheme
    from semcom.separate import image_codecs

    monkeypatch.setattr(image_codecs, "hevc_available", lambda: False)
    monkeypatch.setattr(checks, "hevc_available", lambda: False)
    monkeypatch.setattr("semcom.separate.link.hevc_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^codec: 'hevc' is invalid; .*semcom\[hevc\]"):
        SeparateLink("hevc", torch.zeros(3, 8, 8), 100)
    with pytest.raises(ConfigError, match=r"^capacity_codecs: .*pillow-heif"):
        SeparateLink("capacity", torch.zeros(3, 8, 8), 100, capacity_codecs=("webp", "hevc"))
    problems: list[str] = []
    custom = CustomScheme.model_validate({"name": "my-hevc", "separate": {"codec": "hevc"}})
    assert not checks.check_schemes([(0, "sep-hevc-ldpc"), (1, custom)], problems)
    assert problems[0].startswith("schemes[0]: 'sep-hevc-ldpc' is invalid; allowed: a scheme ")
    assert problems[1].startswith("schemes[1].separate.codec: 'hevc' is invalid")
    assert all("pip install 'semcom[hevc]'" in p and "\n" not in p for p in problems)
    assert checks.check_schemes([(0, "sep-webp-ldpc")], []) is True  # the others unaffected


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


@pytest.mark.usefixtures("one_thread")  # setup() sets torch's thread count
def test_scenario_of_separate_schemes_only_runs_without_a_model() -> None:
    """No semantic scheme: nothing is trained; the budget's N and L come from the scenario's
    model built untrained, the data split and the mean image from its data set."""
    from semcom.data import load_dataset
    from semcom.link_task import LinkPointTask
    from semcom.models.build import build_model
    from semcom.prepare import Calibration, split_test_set, test_split
    from semcom.runner import grid
    from semcom.scenario import Scenario
    from semcom.scenario.checks import check_schemes

    problems: list[str] = []
    assert check_schemes([(0, "sep-webp-ldpc"), (1, "sep-capacity")], problems) and not problems
    s = Scenario.model_validate({
        "name": "only", "data": {"dataset": "digits", "eval_images": 3},
        "model": {"name": "mlp", "n_features": 8}, "channel": {"snr_db": 30},
        "allocation": {"eta": 0.25}, "schemes": ["sep-capacity"],
        "stop": {"min_draws": 1, "max_draws": 1},
    })  # fmt: skip
    assert s.model_variants() == [] and s.reference_variant() == "isfr"
    config = s.reference_config()
    eval_idx, calib_idx = split_test_set(len(test_split(config)), 3, 8, 0)
    task = LinkPointTask(s, Calibration({}, {}, {}, {}, {}, eval_idx, calib_idx))
    state = torch.random.get_rng_state()
    task.setup()
    assert torch.equal(torch.random.get_rng_state(), state)  # the untrained model drew nothing
    (point,) = grid(s)
    n, length = 8, build_model("mlp", n_features=8).scalars_per_feature
    budget = 0.25 * n * length * 8 / 2  # S_max = eta N L Q / 2
    assert task.symbol_budget(point.as_dict()) == budget
    train = load_dataset("digits", "train")
    assert torch.equal(task._separate["mean"], train.images.mean(dim=0))
    row = task(point).row
    assert row["model"] == "none" and row["n_images"] == 3
    assert row["bandwidth_ratio"] == budget / 64  # 8x8 grey digits
    assert 0 <= row["sep_failures"] <= 3


# ---------------------------------------------------------------- paired fading with semantic
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("channel", [{"model": "rayleigh"}, {"model": "rician", "rician_k": 2.0}])
def test_separate_and_semantic_frames_see_the_same_gains(channel: dict) -> None:
    task, points = tiny_task(["isfr-uep", "ui-opt", "sep-capacity"],
                              {"snr_db": 5, "n_subchannels": 4, **channel})  # fmt: skip
    by = {p.as_dict()["scheme"]: p for p in points}
    images = task._images
    semantic = task.link(by["isfr-uep"])
    separate, _ = task.separate_link(by["sep-capacity"])
    other = task.link(by["ui-opt"])  # another allocation method: its own stream (unpaired)
    assert separate.fading_point == semantic._point
    for draw, first in ((0, 0), (1, 0), (3, 7)):
        g_sem = semantic.simulate(images, draw, first).gains
        g_sep = separate.simulate(images, draw, first).gains
        np.testing.assert_array_equal(g_sep, g_sem)  # identical draws, frame by frame
        assert not np.array_equal(other.simulate(images, draw, first).gains, g_sem)
    assert np.unique(g_sem).size == g_sem.size  # real fading, not a constant


def test_reference_point_is_the_semantic_links() -> None:
    from semcom.link import SemanticLink, reference_point
    from semcom.models.build import build_model

    model = build_model("mlp", n_features=4)
    values = {"channel": "rician", "snr_db": 2.0, "rician_k": 4.0, "n_subchannels": 3,
              "eta": 0.75, "bits_per_scalar": 6}  # fmt: skip
    for method, mods, ber in (("hierarchical", ("64qam", "qpsk"), "exact"),
                              ("ui-opt", ("qpsk", "bpsk", "16qam"), "bound")):  # fmt: skip
        link = SemanticLink(model, np.full(4, 0.25), np.full(4, 0.1), 6, "rician", 3, 2.0, 0.75,
                            method, 4.0, modulations=mods, ber_model=ber)  # fmt: skip
        assert reference_point(values, method, "binary", mods, ber) == link._point
    # a digital separate link with that point draws the semantic link's fading
    images = torch.stack([_image(s, 8) for s in range(2)])
    link = SemanticLink(model, np.full(4, 0.25), np.full(4, 0.1), 6, "rician", 3, 2.0, 0.75,
                        rician_k=4.0)  # fmt: skip
    sep = SeparateLink("webp", torch.zeros(3, 8, 8), 200, "rician", 2.0, 3, rician_k=4.0,
                       fading_point=link._point)  # fmt: skip
    grey = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(sep.simulate(images, 2, 5).gains,
                                  link.simulate(grey, 2, 5).gains)  # fmt: skip


# ------------------------------------------------------------ YAML route for the options
def _file(schemes: list) -> dict:
    return {"name": "sepyaml", "data": {"dataset": "digits", "eval_images": 4},
            "model": {"name": "mlp", "n_features": 4}, "channel": {"snr_db": 5},
            "schemes": schemes, "stop": {"min_draws": 1, "max_draws": 1}}  # fmt: skip


_SEP_OPTIONS = {"codec": "webp", "rates": [0.5, 0.75], "modulations": ["qpsk"],
                "calibration_images": 2}  # fmt: skip
_SEP = {"name": "my-webp", "separate": _SEP_OPTIONS}


def test_custom_separate_scheme_from_yaml() -> None:
    from semcom.scenario import load_scenario, schema
    from semcom.separate import ldpc, task
    from semcom.separate.link import DIGITAL_MODULATIONS

    # the schema's copies of the package's constants (the schema does not import the link)
    assert schema.SEPARATE_CODECS == (*CODECS, "capacity")
    assert schema.DEFAULT_CAPACITY_CODECS == PILLOW_CODECS
    assert schema.SEPARATE_RATES == task.RATES
    assert schema.SEPARATE_MODULATIONS == task.MODULATIONS
    assert schema.SEPARATE_MODULATION_SET == DIGITAL_MODULATIONS
    assert schema.SEPARATE_RATE_RANGE == (ldpc.RATE_MIN, ldpc.RATE_MAX)
    cap = {"name": "cap-eq", "separate": {"codec": "capacity", "power": "equal",
                                          "capacity_codecs": ["jpeg2000"]}}  # fmt: skip
    s = load_scenario(_file(["isfr-uep", _SEP, cap, "sep-avif-ldpc"]))
    assert s.model_variants() == ["isfr"]
    mine = s.scheme("my-webp")
    assert (mine.model, mine.method, mine.separate) == ("none", "none", "webp")
    options = task.SeparateOptions.from_dict(mine.separate_options)
    assert options.rates == (0.5, 0.75) and options.modulations == ("qpsk",)
    assert options.calibration_images == 2 and options.fading == "hierarchical"
    assert options.power == task.SeparateOptions().power  # unset: the defaults
    assert s.scheme("sep-avif-ldpc").separate_options is None  # built-in: the defaults
    resolved = s.resolved()["schemes"]
    assert resolved[1]["separate"]["codec"] == "webp" and "separate" not in resolved[3]
    again = load_scenario({**s.resolved(), "name": "sepyaml"})  # the resolved file reloads
    assert again.config_hash() == s.config_hash()
    fewer = {**_SEP, "separate": {**_SEP_OPTIONS, "rates": [0.5]}}
    other = load_scenario(_file(["isfr-uep", fewer, cap, "sep-avif-ldpc"]))
    assert other.config_hash() != s.config_hash()


@pytest.mark.usefixtures("one_thread")
def test_custom_separate_options_reach_the_link() -> None:
    cap = {
        "name": "cap-eq",
        "separate": {
            "codec": "capacity",
            "power": "equal",
            "capacity_codecs": ["jpeg2000"],
            "fading": "ui-opt",
        },
    }
    mine = {"name": "mine", "separate": {"codec": "jpeg2000", "rates": [0.5],
                                         "modulations": ["16qam"], "calibration_images": 1,
                                         "calibration_draws": 1, "num_iter": 5}}  # fmt: skip
    task, points = tiny_task(["isfr-uep", "ui-opt", mine, cap],
                              {"snr_db": 5, "n_subchannels": 4})  # fmt: skip
    by = {p.as_dict()["scheme"]: p for p in points}
    link, columns = task.separate_link(by["mine"])  # one pair: the search has no choice
    assert (link.rate, link.modulation, link.num_iter) == (0.5, "16qam", 5)
    assert columns == {"sep_rate": 0.5, "sep_modulation": "16qam"}
    link, _ = task.separate_link(by["cap-eq"])
    assert (link.power, link.capacity_codecs) == ("equal", ("jpeg2000",))
    assert link.fading_point == task.link(by["ui-opt"])._point  # fading: ui-opt's stream


@pytest.mark.parametrize(
    ("separate", "line"),
    [({"codec": "bpg"}, r"schemes\[1\]\.separate\.codec: 'bpg' is invalid; allowed: jpeg2000"),
     ({"codec": "webp", "rates": [0.1]}, r"schemes\[1\]\.separate\.rates\[0\]: 0\.1 is invalid"),
     ({"codec": "webp", "rates": []}, r"schemes\[1\]\.separate\.rates: \[\] is invalid"),
     ({"codec": "webp", "rates": [0.5, 0.5]}, r"schemes\[1\]\.separate\.rates: \[0\.5, 0\.5\]"),
     ({"codec": "webp", "modulations": ["8psk"]},
      r"schemes\[1\]\.separate\.modulations\[0\]: '8psk' is invalid; allowed: a non-empty list"),
     ({"codec": "capacity", "power": "max"}, r"schemes\[1\]\.separate\.power: 'max' is invalid"),
     ({"codec": "capacity", "capacity_codecs": ["capacity"]},
      r"schemes\[1\]\.separate\.capacity_codecs\[0\]: 'capacity' is invalid"),
     ({"codec": "webp", "fading": "nope"}, r"schemes\[1\]\.separate\.fading: 'nope' is invalid"),
     ({"codec": "webp", "calibration_images": 0},
      r"schemes\[1\]\.separate\.calibration_images: 0 is invalid; allowed: an integer in 1\.\."),
     ({"codec": "webp", "quality": 3}, r"schemes\[1\]\.separate\.quality: unknown key"),
     ({"rates": [0.5]}, r"schemes\[1\]\.separate\.codec: required key is missing")],
)  # fmt: skip
def test_bad_separate_options_one_line(separate: dict, line: str) -> None:
    from semcom.scenario import ScenarioError, load_scenario

    with pytest.raises(ScenarioError, match=line) as info:
        load_scenario(_file(["isfr-uep", {"name": "s", "separate": separate}]))
    assert len(str(info.value).strip().splitlines()) == 1, str(info.value)


@pytest.mark.parametrize(
    ("entry", "line"),
    [({**_SEP, "model": "isfr"}, r"schemes\[1\]\.model: 'isfr' is invalid; allowed: null or none"),
     ({**_SEP, "bits": {"method": "uniform", "average_bits": 4}},
      r"schemes\[1\]\.bits: .* is invalid; allowed: null \(a separate scheme uses no model\)"),
     ({**_SEP, "name": "sep-webp-ldpc"},
      r"schemes\[1\]\.name: 'sep-webp-ldpc' is invalid; allowed: a name that is not a built-in"),
     ({"name": "x", "model": "isfr", "weights": "uniform"},
      r"schemes\[1\]\.method: required key is missing; allowed: an allocation method")],
)  # fmt: skip
def test_separate_and_semantic_fields_do_not_mix(entry: dict, line: str) -> None:
    from semcom.scenario import ScenarioError, load_scenario

    with pytest.raises(ScenarioError, match=line) as info:
        load_scenario(_file(["isfr-uep", entry]))
    assert len(str(info.value).strip().splitlines()) == 1, str(info.value)


def test_check_trial_builds_separate_links(tmp_path, capsys) -> None:  # noqa: ANN001
    """``semcom check`` (tiny trial) on a file of separate schemes only, one custom."""
    import yaml

    from semcom.cli import main

    path = tmp_path / "only.yaml"
    path.write_text(yaml.safe_dump(_file(["sep-capacity", {"name": "j2k", "separate": {
        "codec": "jpeg2000", "rates": [0.5], "modulations": ["16qam"]}}])))  # fmt: skip
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 schemes, 0 model variants" in out and "j2k" in out


def test_block_plan_at_rate_one_third_fits_base_graph_2() -> None:
    """A photo's payload at rate 1/3 (about 200,000 channel bits): every block has at most
    3,824 information bits, so Sionna keeps it on base graph 2 (base graph 1 needs a rate above
    1/3) and builds its encoder."""
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    plan = block_plan(200_000, 1 / 3)
    assert plan.k <= 3824 and plan.n_blocks * plan.n <= 200_000 and plan.payload > 0
    LDPC5GEncoder(plan.k, plan.n)


# ------------------------------------------------------------------- decoder chunks, device
def test_chunked_decoding_equals_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding in chunks of blocks (bounded decoder memory) gives Sionna's one-call result,
    for the separate chain and for the coded semantic link's blocks."""
    from channels import ldpc as channel_ldpc
    from semcom.separate import ldpc as separate_ldpc

    plan = block_plan(3000, 0.5)
    rng = np.random.default_rng(3)
    payload = rng.integers(0, 2, (5, plan.n_blocks, plan.payload)).astype(np.uint8)
    coded = separate_ldpc.encode_blocks(payload, plan)
    mu = np.array([4.0, 4.0, 4.0, 0.5, 0.5])[:, None, None]  # consistent Gaussian LLRs:
    llr = (2.0 * coded - 1.0) * mu + rng.standard_normal(coded.shape) * np.sqrt(2.0 * mu)
    whole = separate_ldpc.decode_blocks(llr, plan)
    info = rng.integers(0, 2, (7, 100)).astype(np.uint8)
    n = channel_ldpc.codeword_length(100, "qpsk-r1/2")
    cw_llr = (2.0 * channel_ldpc.encode(info, n) - 1.0) + rng.standard_normal((7, n)) * 1.2
    one_call = channel_ldpc.decode(cw_llr, 100)
    monkeypatch.setattr(channel_ldpc, "DECODE_CHUNK", 2)
    chunked = separate_ldpc.decode_blocks(llr, plan)
    assert np.array_equal(chunked[0], whole[0]) and np.array_equal(chunked[1], whole[1])
    assert 0 < whole[1].sum() < whole[1].size  # the case has both outcomes
    monkeypatch.setattr(channel_ldpc, "DECODE_CHUNK", 3)
    assert np.array_equal(channel_ldpc.decode(cw_llr, 100), one_call)


def test_fec_device_follows_the_environment_then_sionna(monkeypatch: pytest.MonkeyPatch) -> None:
    from sionna.phy import config

    from channels.ldpc import fec_device

    monkeypatch.setenv("SEMCOM_FEC_DEVICE", "cpu")
    assert fec_device() == "cpu"
    monkeypatch.delenv("SEMCOM_FEC_DEVICE")
    assert fec_device() == str(config.device)


def test_codec_fits_are_shared_between_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second link with the same budget (another SNR of a sweep) encodes nothing again."""
    from semcom.separate import link as separate_link

    calls = []
    real = separate_link.fit_quality
    monkeypatch.setattr(separate_link, "_FITS", {})
    monkeypatch.setattr(separate_link, "fit_quality",
                        lambda *a, **k: calls.append(a[1]) or real(*a, **k))  # fmt: skip
    images = torch.stack([_image(s, 16) for s in range(2)])
    mean = torch.full((3, 16, 16), 0.25)
    for snr_db in (20.0, 30.0):
        SeparateLink("webp", mean, 400, "awgn", snr_db, 4, modulation="16qam").simulate(images)
    assert calls == ["webp", "webp"]  # one bisection per image, none for the second link
