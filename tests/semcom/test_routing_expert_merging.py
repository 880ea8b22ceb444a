"""Expert Merging(++): the merge formula against hand-written references, the chunk budget, the
SNR-bin expert container and the routing-family contract (tiny digits MLPs, a few steps)."""

from __future__ import annotations

import math

import pytest
import torch

from channels.errors import ConfigError
from semcom.channel_state import ChannelState
from semcom.data import load_dataset
from semcom.models import build_model
from semcom.registry import all_methods
from semcom.routing import ROUTING, ExpertMerging, build_routing
from semcom.routing.merging import (
    UntieHook,
    allocate_chunks,
    chunk_split,
    layer_importance,
    merge_models,
    merged_parameters,
)
from semcom.routing.snr_bins import SNRBinExperts, snr_bins

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _codecs(k: int) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [build_model("mlp", 4) for _ in range(k + 1)]


def _images(n: int = 48) -> torch.Tensor:
    return load_dataset("digits", "train").images[:n]


def _states(snr: list[float], n: int) -> ChannelState:
    values = torch.tensor(snr).repeat(n // len(snr))
    return ChannelState(values, torch.zeros(n), torch.zeros(n, dtype=torch.int64))


def test_one_hot_coefficients_reproduce_each_expert_exactly() -> None:
    base, *experts = _codecs(3)
    x = _images(8)
    for j in range(3):
        coeffs = {
            n: torch.tensor([[math.inf if k == j else -math.inf] * 3 for k in range(3)])
            for n, _ in base.named_parameters()
        }
        merged = merge_models(base, experts, coeffs)
        for (_, p), (_, q) in zip(
            merged.named_parameters(), experts[j].named_parameters(), strict=True
        ):
            assert torch.equal(p, q)
        assert torch.equal(merged(x), experts[j](x))


def test_equal_chunk_coefficients_equal_whole_tensor_scaling() -> None:
    base, *experts = _codecs(2)
    a = torch.tensor([0.3, -1.2])
    whole = {n: a[:, None].clone() for n, _ in base.named_parameters()}
    chunked = {n: a[:, None].repeat(1, 5) for n, _ in base.named_parameters()}
    m_whole = merged_parameters(
        dict(base.named_parameters()), [dict(e.named_parameters()) for e in experts], whole
    )
    m_chunk = merged_parameters(
        dict(base.named_parameters()), [dict(e.named_parameters()) for e in experts], chunked
    )
    s = torch.sigmoid(a.double())
    for name, b in base.named_parameters():
        assert torch.equal(m_whole[name], m_chunk[name])
        # hand-written task arithmetic: θ_base + Σ_k σ(a_k)(θ_k - θ_base)
        ref = b.double() + sum(
            s[k] * (dict(e.named_parameters())[name].double() - b.double())
            for k, e in enumerate(experts)
        )
        torch.testing.assert_close(m_whole[name].double(), ref, rtol=0, atol=1e-6)


def test_chunk_coefficient_moves_only_its_chunk() -> None:
    base, *experts = _codecs(1)
    name, b = next(iter(base.named_parameters()))
    coeffs = {n: torch.full((1, 4), -math.inf) for n, _ in base.named_parameters()}
    coeffs[name] = torch.tensor([[-math.inf, math.inf, -math.inf, -math.inf]])
    merged = merged_parameters(
        dict(base.named_parameters()), [dict(e.named_parameters()) for e in experts], coeffs
    )[name].reshape(-1)
    parts_b = chunk_split(b.detach(), 4)
    parts_e = chunk_split(dict(experts[0].named_parameters())[name].detach(), 4)
    got = torch.tensor_split(merged, 4)
    assert [len(p) for p in got] == [len(p) for p in parts_b]
    assert torch.equal(got[1], parts_e[1])
    for c in (0, 2, 3):
        assert torch.equal(got[c], parts_b[c])


def test_chunk_allocation_sums_to_budget_and_follows_importance() -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        layers = int(torch.randint(1, 8, (1,), generator=gen))
        imp = torch.rand(layers, generator=gen).tolist()
        sizes = torch.randint(1, 30, (layers,), generator=gen).tolist()
        names = [f"l{i}" for i in range(layers)]
        budget = int(torch.randint(layers, sum(sizes) + 1, (1,), generator=gen))
        counts = allocate_chunks(
            dict(zip(names, imp, strict=True)), dict(zip(names, sizes, strict=True)), budget
        )
        assert sum(counts.values()) == budget
        assert all(1 <= counts[n] <= s for n, s in zip(names, sizes, strict=True))
    # uncapped: largest-remainder apportionment of the 9 extra chunks (textbook Hamilton)
    counts = allocate_chunks({"a": 0.5, "b": 0.3, "c": 0.2}, dict.fromkeys("abc", 99), 12)
    # shares 4.5, 2.7, 1.8: floors 4, 2, 1; the 2 left go to the largest remainders (c, b)
    assert counts == {"a": 1 + 4, "b": 1 + 3, "c": 1 + 2}
    with pytest.raises(ValueError, match="budget"):
        allocate_chunks({"a": 1.0, "b": 1.0}, {"a": 3, "b": 3}, 1)


def test_layer_importance_formula() -> None:
    coeffs = {"a": torch.tensor([[0.0], [2.0]]), "b": torch.tensor([[-1.0], [1.0]])}
    norms = {"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([2.0, 0.5])}
    sig = torch.sigmoid
    sa = (sig(torch.tensor(0.0)) * 1 + sig(torch.tensor(2.0)) * 3) / 2
    sb = (sig(torch.tensor(-1.0)) * 2 + sig(torch.tensor(1.0)) * 0.5) / 2
    got = layer_importance(coeffs, norms)
    assert got["a"] == pytest.approx(float(sa / (sa + sb)))
    assert sum(got.values()) == pytest.approx(1.0)


def test_container_routes_frames_by_snr_bin() -> None:
    torch.manual_seed(0)
    model = SNRBinExperts(build_model("mlp", 4), [0.0, 10.0])
    assert model.conditioned and len(model.experts) == 3
    with torch.no_grad():  # make the experts differ
        for k, e in enumerate(model.experts):
            for p in e.parameters():
                p.add_(0.01 * k * torch.randn_like(p))
    x = _images(6)
    state = _states([-5.0, 0.0, 9.9, 10.0, 20.0, -0.1], 6)
    assert snr_bins(state.snr_db, model.edges).tolist() == [0, 1, 1, 2, 2, 0]
    z = model.encode(x, state)
    x_hat = model.decode(z, state)
    close = dict(rtol=0.0, atol=1e-6)  # batch size changes the matmul's summation order
    for b, e in enumerate([0, 1, 1, 2, 2, 0]):
        torch.testing.assert_close(z[b], model.experts[e].encode(x[b : b + 1])[0], **close)
        torch.testing.assert_close(x_hat[b], model.experts[e].decode(z[b : b + 1])[0], **close)
        other = model.experts[(e + 1) % 3].encode(x[b : b + 1])[0]
        assert (z[b] - other).abs().max() > 1e-3
    torch.testing.assert_close(model.encode(x), model.experts[0].encode(x), **close)


def _train(
    method: ExpertMerging, epochs: int = 2
) -> tuple[SNRBinExperts, torch.Tensor, ChannelState]:
    torch.manual_seed(0)
    model = method.build("mlp", 4, {})
    hook = method.hook()
    x = _images(48)
    state = _states([-5.0, 5.0, 15.0], 48)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(1, epochs + 1):
        order = hook.sampler(epoch, len(x), gen)
        for batch in order.split(16):
            x_hat = model(x[batch], state=state[batch])
            loss = (x_hat - x[batch]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model, x, state


def test_tie_phase_trains_expert_zero_then_splits_into_a_shared_base() -> None:
    method = ExpertMerging(tie_epochs=1, steps=5)
    model, _, _ = _train(method, epochs=1)
    assert model.tied
    e0, e1 = (dict(e.named_parameters()) for e in model.experts[:2])
    assert not all(torch.equal(e0[n], e1[n]) for n in e0)  # only expert 0 trained
    hook = UntieHook(1, lambda: model)
    hook.sampler(2, 4, torch.Generator())
    assert not model.tied
    base = model.base_parameters()
    for e in model.experts:
        for n, p in e.named_parameters():
            assert torch.equal(p, base[n]) and torch.equal(p, e0[n])


def test_contract_finalize_apply_state_and_merge_quality() -> None:
    method = build_routing("expert-merging", {"steps": 25, "chunk_budget": 24, "calibration": 16})
    assert isinstance(method, ExpertMerging)
    model, x, state = _train(method)
    before = {n: p.clone() for n, p in model.named_parameters()}
    method.finalize(model, x, state)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert sum(c.shape[1] for c in method.coeffs.values()) == 24
    assert sum(method.importance.values()) == pytest.approx(1.0)
    merged = method.apply(model)
    assert not getattr(merged, "conditioned", False)
    assert type(merged) is type(model.experts[0])
    again = method.apply(model)
    assert torch.equal(merged.decode(merged.encode(x)), again.decode(again.encode(x)))
    fresh = ExpertMerging(chunk_budget=24)
    fresh.load_state_dict(method.state_dict())
    assert torch.equal(fresh.apply(model).encode(x), merged.encode(x))
    # the learned coefficients align better with the experts than their start (weight average)
    start = ExpertMerging(steps=0)
    start.finalize(model, x, state)
    averaged = start.apply(model)
    bins = snr_bins(state.snr_db, model.edges)

    @torch.no_grad()
    def gap(m: torch.nn.Module) -> float:
        return sum(
            float((m(x[bins == k]) - e(x[bins == k])).pow(2).mean())
            for k, e in enumerate(model.experts)
        )

    assert gap(merged) < gap(averaged)
    assert gap(merged) > 0.0  # a real merge, not one of the experts


def test_registered_with_paper_and_bad_options_fail_in_one_line() -> None:
    info = {m.name: m for m in all_methods() if m.family == "routing"}["expert-merging"]
    assert info.paper == "arXiv:2509.25712"
    assert ROUTING.get("expert-merging") is ExpertMerging
    cases = {
        "snr_edges_db": [10.0, 0.0],
        "tie_epochs": -1,
        "chunk_budget": 0,
        "init_coeff": 1.0,
        "lr": 0.0,
    }
    for option, value in cases.items():
        with pytest.raises(ConfigError) as err:
            build_routing("expert-merging", {option: value})
        msg = str(err.value)
        assert msg.startswith(f"routing_options.{option}: {value!r} is invalid; allowed:")
        assert "\n" not in msg
    method = ExpertMerging(chunk_budget=2, steps=1)
    model, x, state = _train(method, epochs=1)
    with pytest.raises(ConfigError, match="routing_options.chunk_budget: 2 is invalid"):
        method.finalize(model, x, state)
    with pytest.raises(ConfigError, match="finalize"):
        ExpertMerging().apply(model)
