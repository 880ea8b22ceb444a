"""DiT redundancy: D = 0 for identical steps, the statistics against NumPy, threshold 0 exact,
caching saves compute on a stream, and the routing-family contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.data import load_dataset
from semcom.models import build_model
from semcom.registry import all_methods
from semcom.routing import DiTRedundancy, build_routing
from semcom.routing.redundancy import CachedBlock, compute_saved, redundancy, stream

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _model(name: str = "mlp") -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "vit":
        return build_model("vit", 4, input_shape=[1, 8, 8], dim=16, depth=1, heads=2).eval()
    return build_model("mlp", 8).eval()


def test_statistics_against_numpy_and_zero_for_identical_steps() -> None:
    g = np.random.default_rng(0)
    a, b = g.normal(size=(4, 7)), g.normal(size=(4, 7))
    mean, var = redundancy(torch.tensor(a), torch.tensor(b))
    assert mean == pytest.approx(np.abs(b - a).mean()) and var == pytest.approx(np.abs(b - a).var())
    rel = redundancy(torch.tensor(a), torch.tensor(b), relative=True)[0]
    assert rel == pytest.approx((np.abs(b - a) / (np.abs(a) + np.abs(b) + 1e-12)).mean())
    assert redundancy(torch.tensor(a), torch.tensor(a)) == (0.0, 0.0)
    # identical consecutive inputs through the method's hooks: every D is 0
    model = _model()
    x = load_dataset("digits", "train").images[:16]
    method = DiTRedundancy(steps=3)
    method.finalize(model, x, _state(300.0, 16))  # 300 dB: noise 1e-30 of the power
    for stats in method.stats.values():
        assert all(d < 1e-12 for d in stats["D"]) and all(v < 1e-12 for v in stats["var"])


def _state(snr: float, n: int):
    from semcom.channel_state import ChannelState

    return ChannelState.constant(snr, "awgn", n)


@pytest.mark.parametrize("arch", ["mlp", "vit"])
def test_threshold_zero_is_exact_and_identical_inputs_are_reused(arch: str) -> None:
    model = _model(arch)
    x = load_dataset("digits", "test").images[:8]
    deployed = DiTRedundancy(threshold=0.0).apply(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        frames = stream(model.encode(x), torch.full((8,), 10.0), 4, gen)
        for f in frames + [frames[-1]]:
            assert torch.equal(deployed.decode(f), model.decode(f))
    # 5 calls of 8 rows per unit: the repeated last frame is the only reuse
    assert compute_saved(deployed) == pytest.approx(8 / 40)


def test_cached_block_reuses_rows_below_threshold() -> None:
    block = CachedBlock(torch.nn.Linear(3, 2), threshold=0.1)
    u = torch.zeros(2, 3)
    first = block(u)
    moved = u + torch.tensor([[0.05], [0.5]])  # row 0 moved 0.05 (reuse), row 1 0.5 (compute)
    out = block(moved)
    assert torch.equal(out[0], first[0])
    assert torch.equal(out[1], block.block(moved[1:])[0])
    assert (block.computed, block.calls) == (3, 4)


def test_contract_stats_thresholds_and_compute_saving() -> None:
    model = _model()
    x = load_dataset("digits", "train").images[:32]
    method = build_routing("dit-redundancy", {"steps": 4, "reuse_quantile": 0.5})
    method.finalize(model, x, None)
    assert set(method.stats) == {f"decoder.{i}" for i in range(1, 6)}  # Linear and PReLU
    assert all(len(s["D"]) == 3 and min(s["D"]) > 0 for s in method.stats.values())
    deployed = method.apply(model)
    again = DiTRedundancy()
    again.load_state_dict(method.state_dict())
    other = again.apply(model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        frames = stream(model.encode(x), torch.full((32,), 10.0), 4, gen)
        outs = [deployed.decode(f) for f in frames]
        assert all(torch.equal(o, other.decode(f)) for o, f in zip(outs, frames, strict=True))
        assert not all(torch.equal(o, model.decode(f)) for o, f in zip(outs, frames, strict=True))
    assert 0.2 < compute_saved(deployed) < 0.8
    info = {m.name: m for m in all_methods() if m.family == "routing"}["dit-redundancy"]
    assert info.paper == "arXiv:2411.13588"
    for option, value in {"steps": 1, "reuse_quantile": 2.0, "threshold": -1.0}.items():
        with pytest.raises(ConfigError) as err:
            build_routing("dit-redundancy", {option: value})
        assert str(err.value).startswith(f"routing_options.{option}: {value!r} is invalid")
    with pytest.raises(ConfigError, match="finalize"):
        DiTRedundancy().apply(model)
