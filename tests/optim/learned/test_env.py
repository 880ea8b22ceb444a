"""The frame-allocation environment: feasibility by its masks, its reward against optim's own
objective and against the link kernels' measurement, its inputs' errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from optim.distortion import objective
from optim.learned.env import FrameEnv, FrameState
from optim.problem import Allocation, random_problem

TEMPLATES = {
    "default": lambda: random_problem(6, 5, seed=1),
    "tight": lambda: random_problem(7, 4, seed=2, eta=0.15, snr_db=0.0),
    "per-feature-q": lambda: random_problem(5, 6, seed=3, bits_per_scalar=[4, 8, 6, 8, 2]),
    "normalised-bound": lambda: random_problem(
        5, 5, seed=4, distortion_model="normalised", ber_model="bound", profile="random"
    ),
    "coded": lambda: random_problem(
        4, 4, seed=5, ber_model="bound", modulations=("qpsk-r1/2", "16qam-r2/3", "bpsk")
    ),
    "more-features": lambda: random_problem(8, 3, seed=6, eta=1.0),
}


def random_episode(env: FrameEnv, gains: torch.Tensor, seed: int) -> FrameState:
    """Uniformly random feasible actions at every step."""
    state = env.reset(gains)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(env.n_steps):
        action = torch.multinomial(env.mask(state).double(), 1, generator=gen)[:, 0]
        env.step(state, action)
    return state


def allocations(env: FrameEnv, state: FrameState) -> list[Allocation]:
    selected, sub, mod, power = env.arrays(state)
    names = env.template.modulations
    out = []
    for b in range(selected.shape[0]):
        f = np.flatnonzero(selected[b])
        out.append(Allocation(f, sub[b, f], tuple(names[m] for m in mod[b, f]), power[b, f]))
    return out


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_random_feasible_actions_give_feasible_allocations_and_reward_is_minus_objective(name):
    template = TEMPLATES[name]()
    env = FrameEnv(template, levels=6)
    gains = torch.from_numpy(np.random.default_rng(7).exponential(size=(300, env.n_subchannels)))
    state = random_episode(env, gains, seed=8)
    reward = env.reward(state).numpy()
    sent = 0
    for b, alloc in enumerate(allocations(env, state)):
        frame = template.replace(gains=gains[b].numpy())
        assert alloc.violations(frame) == [], (name, b)
        assert len(set(alloc.subchannel.tolist())) == alloc.n_selected  # one feature each
        assert -reward[b] == pytest.approx(objective(frame, alloc), rel=1e-12, abs=1e-300)
        sent += alloc.n_selected
    assert sent > 0  # the random policy does send: the check above is not vacuous


def test_progress_sums_to_the_fraction_of_the_drop_cost_removed():
    template = TEMPLATES["default"]()
    env = FrameEnv(template, levels=8)
    gains = torch.from_numpy(np.random.default_rng(9).exponential(size=(64, 5)))
    state = random_episode(env, gains, seed=1)
    total = env.progress(state).sum(dim=1)
    expected = 1.0 - env.objective(state) / env.dropped_cost
    torch.testing.assert_close(total, expected, rtol=1e-12, atol=1e-12)


def test_masks_leave_skip_only_when_budgets_are_spent_and_reject_infeasible_actions():
    template = random_problem(3, 2, seed=0)
    env = FrameEnv(template, levels=4)
    state = env.reset(torch.ones(1, 2, dtype=torch.float64))
    full = env.joint_action(torch.tensor([2]), torch.tensor([4]))  # k=0, qpsk, every level
    env.step(state, full)
    assert env.mask(state).sum() == 1  # no power left: only skip
    with pytest.raises(ConfigError, match=r"^action\[0\]: 1 is invalid; allowed: a feasible"):
        env.step(state, torch.tensor([1]))
    with pytest.raises(ConfigError, match="indices in 0"):
        env.step(state, torch.tensor([env.n_actions]))


def test_joint_and_split_actions_are_inverse():
    env = FrameEnv(random_problem(3, 3, seed=0), levels=5)
    actions = torch.arange(env.n_actions)
    choice, level = env.split_action(actions)
    assert torch.equal(env.joint_action(choice, level), actions)
    assert int(choice.max()) == env.n_choices - 1 and int(level.max()) == env.levels


def test_link_reward_matches_the_objective_within_its_interval():
    """BPSK/QPSK: every bit equally reliable, so the measured distortion's mean is (P0)'s."""
    template = random_problem(4, 4, seed=3, modulations=("bpsk", "qpsk"), snr_db=2.0,
                              scalars_per_feature=16, bits_per_scalar=4)  # fmt: skip
    env = FrameEnv(template, levels=4)
    gains = torch.from_numpy(np.random.default_rng(2).exponential(size=(40, 4)))
    state = random_episode(env, gains, seed=4)
    exact = env.objective(state).numpy()
    draws = np.stack([env.link_objective(state, repeats=1, seed=s).numpy() for s in range(40)])
    diff = draws - exact[None, :]  # [draws, frames]
    mean, sem = diff.mean(), diff.std(ddof=1) / np.sqrt(diff.size)
    assert abs(mean) < 4 * sem, (mean, sem)
    # the interval is narrow enough to see a 3 dB error in power
    louder = FrameState(**{**state.__dict__, "level": state.level * 2})
    shift = (env.objective(louder).numpy() - exact).mean()
    assert abs(shift) > 8 * sem, (shift, sem)


def test_link_reward_refuses_coded_entries_and_bad_options():
    env = FrameEnv(TEMPLATES["coded"](), levels=2)
    state = random_episode(env, torch.ones(2, 4, dtype=torch.float64), seed=0)
    with pytest.raises(ConfigError, match="^reward: 'link' is invalid"):
        env.reward(state, "link")
    env = FrameEnv(TEMPLATES["default"](), levels=2)
    state = random_episode(env, torch.ones(2, 5, dtype=torch.float64), seed=0)
    with pytest.raises(ConfigError, match="^repeats: 0 is invalid"):
        env.reward(state, "link", repeats=0)
    with pytest.raises(ConfigError, match="^reward: 'psnr' is not one of objective, link"):
        env.reward(state, "psnr")
    unfinished = env.reset(torch.ones(2, 5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="^state: "):
        env.reward(unfinished)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": 0}, "^levels: 0 is invalid"),
        ({"device": "tpu"}, "^device: 'tpu' is invalid"),
        ({"n_subchannels": -1}, "^n_subchannels: -1 is invalid"),
    ],
)
def test_bad_environment_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        FrameEnv(random_problem(3, 3, seed=0), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_gains_are_one_line_errors():
    env = FrameEnv(random_problem(3, 3, seed=0))
    with pytest.raises(ConfigError, match=r"^gains: 'array of shape \(2, 4\)' is invalid"):
        env.reset(torch.ones(2, 4))
    with pytest.raises(ConfigError, match=r"^gains\[1, 2\]: -1.0 is invalid"):
        env.reset(torch.tensor([[1.0, 1, 1], [1, 1, -1]]))
    with pytest.raises(ConfigError, match="^problem: "):
        FrameEnv({"weights": [1]})  # type: ignore[arg-type]


def test_observations_have_the_documented_shapes():
    template = TEMPLATES["default"]()
    env = FrameEnv(template, levels=8)
    state = env.reset(torch.ones(3, 5, dtype=torch.float64))
    ctx, choices = env.observe(state)
    assert ctx.shape == (3, 8 + 4) and choices.shape == (3, 5 * 4, 10)
    assert ctx.dtype == torch.float32 and torch.isfinite(ctx).all()
    assert torch.isfinite(choices).all()
    levels = env.level_features(state, torch.tensor([0, 1, 20]))
    assert levels.shape == (3, 8, 5) and torch.isfinite(levels).all()


@pytest.mark.gpu
def test_the_environment_runs_on_cuda_with_the_cpu_reward():
    template = TEMPLATES["per-feature-q"]()
    gains = torch.from_numpy(np.random.default_rng(1).exponential(size=(128, 6)))
    actions = random_actions(FrameEnv(template), gains, seed=3)
    objectives = []
    for device in ("cpu", "cuda"):
        env = FrameEnv(template, device=device)
        state = env.reset(gains)
        for t in range(env.n_steps):
            env.step(state, actions[:, t].to(env.device))
        objectives.append(env.objective(state).cpu())
    torch.testing.assert_close(objectives[1], objectives[0], rtol=1e-12, atol=0.0)


def random_actions(env: FrameEnv, gains: torch.Tensor, seed: int) -> torch.Tensor:
    """The actions of :func:`random_episode`, ``[B, T]``."""
    state = env.reset(gains)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(env.n_steps):
        action = torch.multinomial(env.mask(state).double(), 1, generator=gen)[:, 0]
        env.step(state, action)
        out.append(action)
    return torch.stack(out, dim=1)
