"""The learned allocation policy, its trainer, its checkpoints and the ``rl:<kind>`` methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optim
from channels.errors import ConfigError
from optim.batch.solve import batch_methods
from optim.learned import method as rl
from optim.learned.checkpoints import policy_key, read_policy
from optim.learned.env import FrameEnv
from optim.learned.objectives import OBJECTIVES
from optim.learned.policy import AllocationPolicy, rollout
from optim.learned.trainer import KINDS, TrainPolicyConfig, teacher_records, train_policy
from optim.methods import METHODS
from optim.problem import Allocation, random_problem

SMALL = {"iterations": 12, "frames": 16, "group": 8, "levels": 8, "hidden": 32, "epochs": 2,
         "imitation": 0, "seed": 3}  # fmt: skip
TEMPLATE = random_problem(4, 4, seed=0)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory):
    """A folder holding the policy of TEMPLATE trained with SMALL (trained once)."""
    folder = tmp_path_factory.mktemp("policies")
    rl.clear_cache()
    loaded = rl.load_or_train(TEMPLATE, 4, "pg", train=SMALL, checkpoint_dir=folder,
                              progress=False)  # fmt: skip
    assert loaded.trained and loaded.path.parent == folder
    return folder


def frames(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).exponential(size=(n, k))


def as_allocations(out, modulations) -> list[Allocation]:
    return [out.allocation(b, modulations) for b in range(len(out))]


@pytest.mark.parametrize("greedy", [True, False])
@pytest.mark.parametrize(
    "template",
    [
        random_problem(6, 6, seed=1),
        random_problem(8, 4, seed=2, eta=0.1, snr_db=-3.0),
        random_problem(
            5, 7, seed=3, bits_per_scalar=[2, 8, 4, 8, 6], distortion_model="normalised"
        ),
    ],
    ids=["square", "tight", "per-feature-q"],
)
def test_policy_allocations_are_always_feasible(template, greedy):
    env = FrameEnv(template, levels=16)
    policy = AllocationPolicy(env.n_modulations, hidden=16, seed=4)
    gains = frames(250, env.n_subchannels, 5)
    out = rollout(env, policy, torch.from_numpy(gains), greedy=greedy,
                  generator=torch.Generator().manual_seed(6))  # fmt: skip
    selected, sub, mod, power = env.arrays(out.state)
    assert selected.any() or greedy  # sampling sends: the checks below are not vacuous
    for b in range(gains.shape[0]):
        f = np.flatnonzero(selected[b])
        alloc = Allocation(f, sub[b, f], tuple(template.modulations[m] for m in mod[b, f]),
                           power[b, f])  # fmt: skip
        assert alloc.is_feasible(template.replace(gains=gains[b])), b


def test_training_beats_a_random_policy(policy_dir):
    """N = K = 4, 12 seeded iterations: the greedy policy's mean objective is below the
    uniformly random feasible policy's, paired over 400 frames (95% interval of the mean
    difference entirely below 0), and below its own untrained start."""
    gains = frames(400, 4, 11)
    trained = optim.solve_batch(TEMPLATE, gains, "rl:pg", train=SMALL, checkpoint_dir=policy_dir)
    env = FrameEnv(TEMPLATE, levels=SMALL["levels"])
    state = env.reset(torch.from_numpy(gains))
    gen = torch.Generator().manual_seed(12)
    for _ in range(env.n_steps):
        env.step(state, torch.multinomial(env.mask(state).double(), 1, generator=gen)[:, 0])
    diff = trained.objective - env.objective(state).numpy()
    upper = diff.mean() + 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert upper < 0, (diff.mean(), upper)
    start = AllocationPolicy(env.n_modulations, SMALL["hidden"], seed=SMALL["seed"])
    untrained = env.objective(rollout(env, start, torch.from_numpy(gains), greedy=True).state)
    diff = trained.objective - untrained.numpy()
    assert diff.mean() + 1.96 * diff.std(ddof=1) / np.sqrt(diff.size) < 0


def test_training_is_reproducible_on_the_cpu_and_logs_a_curve():
    config = {**SMALL, "iterations": 2, "frames": 8}
    logged = []
    a = train_policy(TEMPLATE, "pg", config, log=logged.append)
    b = train_policy(TEMPLATE, "pg", config)
    assert [e["objective"] for e in a.history] == [e["objective"] for e in b.history]
    assert [e["iteration"] for e in logged] == [1, 2]
    keys = {"phase", "iteration", "objective", "reward", "loss", "entropy", "seconds"}
    assert set(logged[0]) == keys
    for key, value in a.policy.state_dict().items():
        assert torch.equal(value, b.policy.state_dict()[key]), key
    c = train_policy(TEMPLATE, "pg", {**config, "seed": 4})
    assert [e["objective"] for e in a.history] != [e["objective"] for e in c.history]


def test_teacher_episodes_reproduce_the_teachers_allocations():
    """On a fine power grid the teacher-forced episode is the solver's allocation, powers
    rounded to the grid: the same selection, subchannels and modulations, objective within
    0.1% per frame."""
    template = random_problem(6, 6, seed=2)
    env = FrameEnv(template, levels=4096)
    gains = frames(64, 6, 3)
    taught = teacher_records(env, torch.from_numpy(gains), "hierarchical")
    ref = optim.solve_batch(template, gains, "hierarchical")
    selected, sub, mod, _ = env.arrays(taught.state)
    assert np.array_equal(selected, ref.selected) and np.array_equal(sub, ref.subchannel)
    assert np.array_equal(mod, ref.modulation)
    np.testing.assert_allclose(env.objective(taught.state).numpy(), ref.objective, rtol=1e-3)
    assert len(taught.records) == env.n_steps


def test_training_on_the_link_measured_reward_runs():
    config = {**SMALL, "iterations": 2, "frames": 4, "group": 2, "reward": "link",
              "reward_options": {"repeats": 2}}  # fmt: skip
    out = train_policy(random_problem(3, 3, seed=1, scalars_per_feature=8), "pg", config)
    assert len(out.history) == 2 and all(np.isfinite(e["objective"]) for e in out.history)
    with pytest.raises(ConfigError, match="^reward_options: .* with reward 'objective'"):
        TrainPolicyConfig(reward_options={"repeats": 2})


def test_a_checkpoint_is_reused_for_its_config_only(policy_dir):
    rl.clear_cache()
    again = rl.load_or_train(TEMPLATE, 4, "pg", train=SMALL, checkpoint_dir=policy_dir)
    assert not again.trained  # read from its file, not retrained
    record = read_policy(again.path)
    assert record["key"] == again.key == policy_key(TEMPLATE, 4, "pg", TrainPolicyConfig(**SMALL))
    assert len(record["history"]) == SMALL["iterations"]
    # the gains are not part of the key; every other field, K, the kind and the config are
    other_gains = TEMPLATE.replace(gains=[5.0, 0.0, 1.0, 2.0])
    assert policy_key(other_gains, 4, "pg", TrainPolicyConfig(**SMALL)) == again.key
    keys = {
        policy_key(TEMPLATE.replace(power_budget=1.0), 4, "pg", TrainPolicyConfig(**SMALL)),
        policy_key(TEMPLATE, 5, "pg", TrainPolicyConfig(**SMALL)),
        policy_key(TEMPLATE, 4, "alp", TrainPolicyConfig(**SMALL)),
        policy_key(TEMPLATE, 4, "pg", TrainPolicyConfig(**{**SMALL, "seed": 4})),
        policy_key(TEMPLATE, 4, "pg", TrainPolicyConfig(**{**SMALL, "lr": 1e-3})),
    }
    assert again.key not in keys and len(keys) == 5
    # an explicit file of another config is refused, in one line
    other = {**SMALL, "seed": 9}
    with pytest.raises(ConfigError, match="^checkpoint: .* is invalid; allowed: the policy file"):
        rl.load_or_train(TEMPLATE, 4, "pg", train=other, checkpoint=again.path)
    # a file whose config was edited no longer matches its key
    state = torch.load(again.path, weights_only=True)
    state["payload"] = state["payload"].replace('"seed":3', '"seed":4')
    bad = policy_dir / "edited.pt"
    torch.save(state, bad)
    with pytest.raises(ConfigError, match="does not match its key"):
        read_policy(bad)


@pytest.mark.parametrize("kind", [k for k in KINDS if k in OBJECTIVES])
def test_solve_equals_solve_batch_frame_by_frame(policy_dir, kind):
    gains = frames(20, 4, 13)
    options = {"train": {**SMALL, "iterations": 2} if kind != "pg" else SMALL,
               "checkpoint_dir": policy_dir, "progress": False}  # fmt: skip
    batch = optim.solve_batch(TEMPLATE, gains, f"rl:{kind}", **options)
    assert batch.method == f"rl:{kind}"
    for b, alloc in enumerate(as_allocations(batch, TEMPLATE.modulations)):
        one = optim.solve(TEMPLATE.replace(gains=gains[b]), f"rl:{kind}", **options)
        assert one.feasible and one.allocation == alloc, b
        assert one.objective == pytest.approx(batch.objective[b], rel=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": 1.0}, "^option: 'temperature' is invalid; allowed: checkpoint, "),
        ({"train": {"iterations": 0}}, "^iterations: 0 is invalid"),
        ({"train": {"epochs": 2.5}}, "^epochs: 2.5 is invalid"),
        ({"train": {"optimizer": "sgd"}}, "^train: unknown field 'optimizer'; allowed: "),
        ({"train": {"fading": "nakagami"}}, "^fading: 'nakagami' is not one of"),
        ({"train": [1, 2]}, r"^train: \[1, 2\] is invalid"),
        ({"device": "tpu"}, "^device: 'tpu' is invalid"),
        ({"checkpoint_dir": 3}, "^checkpoint_dir: 3 is invalid"),
        ({"progress": "yes"}, "^progress: 'yes' is invalid"),
    ],
)
def test_bad_options_are_one_line_errors_before_any_work(tmp_path, options, message):
    options = {"checkpoint_dir": tmp_path, **options}
    with pytest.raises(ConfigError, match=message) as info:
        optim.solve_batch(TEMPLATE, frames(3, 4, 0), "rl:pg", **options)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=message):
        rl.solve_rl(TEMPLATE, "pg", **options)
    assert not any(tmp_path.iterdir())  # nothing was trained or written


def test_solve_reports_unknown_options_and_kinds(tmp_path):
    with pytest.raises(ConfigError, match="^option: .*unexpected keyword.*'rl:pg'"):
        optim.solve(TEMPLATE, "rl:pg", temperature=1.0)
    with pytest.raises(ConfigError, match="^kind: 'ppo' is not one of pg, "):
        rl.decide(TEMPLATE, frames(2, 4, 0), "ppo", checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^gains\[0, 1\]: -1.0 is invalid"):
        optim.solve_batch(TEMPLATE, [[1.0, -1.0, 1.0, 1.0]], "rl:pg", checkpoint_dir=tmp_path)


def test_the_nine_methods_are_registered_with_arxiv_ids():
    names = [f"rl:{kind}" for kind in KINDS]
    assert len(names) == 9 and set(names) <= set(optim.available_methods())
    for name in names:
        assert METHODS[name].source.startswith("arXiv:"), name
        assert name in batch_methods()


def test_each_objective_gets_the_extra_inputs_it_names(monkeypatch):
    seen = {}

    def fake(logp_new, logp_old, adv, mask, *, entropy, group, clip=0.2):
        seen.update(entropy=tuple(entropy.shape), group=tuple(group.shape), clip=clip)
        return OBJECTIVES["pg"](logp_new, logp_old, adv, mask)

    monkeypatch.setitem(OBJECTIVES, "hapo", fake)
    train_policy(TEMPLATE, "hapo", {**SMALL, "iterations": 1, "frames": 4, "group": 2,
                                    "minibatches": 1, "loss_options": {"clip": 0.3}})  # fmt: skip
    assert seen == {"entropy": (8, 4), "group": (8,), "clip": 0.3}

    def needs_more(logp_new, logp_old, adv, mask, *, flow_logp):
        raise AssertionError("never called")

    monkeypatch.setitem(OBJECTIVES, "policyflow", needs_more)
    with pytest.raises(ConfigError, match="^kind: 'policyflow' is invalid; .* needs flow_logp$"):
        train_policy(TEMPLATE, "policyflow", SMALL)


def test_per_step_credit_gives_discounted_returns_baselined_per_step():
    """ReviBranch's redistribution at beta = 0 (uniform over the valid steps): the advantages
    are the returns-to-go ``G_t = sum_{t' >= t} gamma^(t'-t) r_t'`` minus their group mean at
    ``t``, computed here by a loop."""
    from optim.learned.credit import redistribute
    from optim.learned.trainer import advantages

    def uniform(reward, signal, mask, *, kind):
        return redistribute(reward, torch.zeros(mask.shape), mask, kind="uniform")

    env = FrameEnv(TEMPLATE, levels=8)
    policy = AllocationPolicy(env.n_modulations, hidden=8)
    out = rollout(env, policy, torch.from_numpy(frames(6, 4, 1)).repeat_interleave(2, dim=0),
                  generator=torch.Generator().manual_seed(0))  # fmt: skip
    reward = torch.linspace(0.1, 0.9, 12)
    groups = torch.arange(6).repeat_interleave(2)
    config = TrainPolicyConfig(gamma=0.5, normalise=False, credit_options={"beta": 0.0})
    adv = advantages("revibranch", config, reward, out, torch.zeros(12, 4, 6), groups, 6)
    r = uniform(reward, None, out.mask, kind="importance").double()
    ret = torch.zeros_like(r)
    for t in reversed(range(4)):
        ret[:, t] = r[:, t] + (0.5 * ret[:, t + 1] if t < 3 else 0.0)
    expected = ret - ret.reshape(6, 2, 4).mean(dim=1).repeat_interleave(2, dim=0)
    torch.testing.assert_close(adv.double(), expected, rtol=1e-5, atol=1e-6)
