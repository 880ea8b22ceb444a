"""Informed Routing: the capacity-1 identity, the LFF against NumPy least squares, the forecast
beating the skip path on held-out tokens, top-k routing, and the routing-family contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.data import load_dataset
from semcom.models import build_model
from semcom.registry import all_methods
from semcom.routing import InformedRouting, build_routing, check_architecture
from semcom.routing.informed import ExecOrApprox, executed_fraction, fit_lff

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("vit", 16, input_shape=[1, 8, 8], dim=16, depth=1, heads=2)
    x = load_dataset("digits", "train").images[:256]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        batch = x[torch.randint(0, len(x), (64,), generator=gen)]
        loss = (model(batch) - batch).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x, load_dataset("digits", "test").images[:128]


def _deployed(model: torch.nn.Module, x: torch.Tensor, **options: object) -> torch.nn.Module:
    method = build_routing("informed-routing", options)
    method.finalize(model, x, None)
    return method.apply(model).eval()


def test_full_capacity_reproduces_the_original_model(trained) -> None:
    model, x, xt = trained
    deployed = _deployed(model, x, capacity=1.0)
    with torch.no_grad():
        assert torch.equal(deployed(xt), model(xt))
    assert executed_fraction(deployed) == 1.0


def test_lff_is_least_squares_against_numpy() -> None:
    g = torch.Generator().manual_seed(3)
    u = torch.randn(300, 5, generator=g, dtype=torch.float64)
    y = torch.tanh(u @ torch.randn(5, 5, generator=g, dtype=torch.float64)) + 0.3
    lff = fit_lff(u, y, h=5, ridge=0.0)  # full rank: plain least squares on [u, 1]
    design = np.hstack([u.numpy(), np.ones((300, 1))])
    coef, *_ = np.linalg.lstsq(design, y.numpy(), rcond=None)
    with torch.no_grad():
        np.testing.assert_allclose(lff(u).numpy(), design @ coef, atol=1e-8)
    # rank h: no rank-h map fits better than the reduced-rank solution (random rank-h rivals)
    low = fit_lff(u, y, h=2, ridge=0.0)
    with torch.no_grad():
        best = float((low(u) - y).pow(2).mean())
        for _ in range(20):
            a = torch.randn(6, 2, generator=g, dtype=torch.float64)
            proj = torch.tensor(design) @ a  # any rank-2 subspace of [u, 1]
            fit = proj @ torch.linalg.lstsq(proj, y).solution
            assert best <= float((fit - y).pow(2).mean()) + 1e-12


def test_forecast_beats_skip_on_held_out_tokens(trained) -> None:
    model, x, xt = trained
    method = InformedRouting(capacity=0.0, hidden=4)
    method.finalize(model, x, None)
    deployed = method.apply(model)
    wrap = deployed.enc_blocks[0].mlp
    assert isinstance(wrap, ExecOrApprox)
    seen = []
    handle = model.enc_blocks[0].mlp.register_forward_hook(lambda _m, a, o: seen.append((a[0], o)))
    with torch.no_grad():
        model.encode(xt)
        handle.remove()
        u, f = seen[0]
        approx = (f - wrap.lff(u)).pow(2).sum(-1).mean()
        skip = f.pow(2).sum(-1).mean()
        assert approx <= skip
        approx_err = (_deployed(model, x, capacity=0.5)(xt) - xt).pow(2).mean()
        skip_err = (_deployed(model, x, capacity=0.5, mode="skip")(xt) - xt).pow(2).mean()
        assert approx_err < skip_err


def test_router_executes_the_top_k_scores_per_sequence(trained) -> None:
    model, x, xt = trained
    deployed = _deployed(model, x, capacity=0.25, hidden=2)
    wrap = deployed.dec_blocks[0].mlp
    g = torch.Generator().manual_seed(0)
    u = torch.randn(3, 16, 16, generator=g)
    with torch.no_grad():
        out = wrap(u)
        forecast, full = wrap.lff(u), wrap.mlp(u)
        score = wrap.scores(u, forecast)
        for b in range(3):
            top = set(score[b].topk(4).indices.tolist())  # ⌈0.25 · 16⌉ = 4
            for t in range(16):
                ref = full[b, t] if t in top else forecast[b, t]
                torch.testing.assert_close(out[b, t], ref, rtol=0, atol=1e-6)
    assert wrap.executed == 12 and wrap.seen == 48


def test_contract_state_determinism_and_errors(trained) -> None:
    model, x, xt = trained
    method = InformedRouting(capacity=0.5)
    method.finalize(model, x, None)
    a, b = method.apply(model).eval(), method.apply(model).eval()
    fresh = InformedRouting(capacity=0.5)
    fresh.load_state_dict(method.state_dict())
    c = fresh.apply(model).eval()
    with torch.no_grad():
        assert torch.equal(a(xt), b(xt)) and torch.equal(a(xt), c(xt))
        assert not torch.equal(a(xt), model(xt))  # it changes what the codec computes
    assert executed_fraction(a) == pytest.approx(0.5)
    info = {m.name: m for m in all_methods() if m.family == "routing"}["informed-routing"]
    assert info.paper == "arXiv:2510.13831"
    with pytest.raises(ConfigError, match="^model: 'mlp' is invalid; allowed: vit"):
        check_architecture(method, "informed-routing", "mlp")
    for option, value in {"capacity": 1.5, "hidden": 0, "blocks": "middle", "mode": "x"}.items():
        with pytest.raises(ConfigError) as err:
            build_routing("informed-routing", {option: value})
        assert str(err.value).startswith(f"routing_options.{option}: {value!r} is invalid")
    with pytest.raises(ConfigError, match="finalize"):
        InformedRouting().apply(model)
