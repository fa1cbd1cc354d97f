"""MADDPG: Gumbel-softmax gradients, stacked networks, replay, learning, resuming, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.policy import episode_returns
from marl import checkpoint
from marl.envs import make_game
from marl.gumbel import gumbel_noise, gumbel_softmax
from marl.maddpg import MADDPG, GameSpec, MADDPGConfig, TrainedPolicy, TrainingError
from marl.networks import StackedMLP
from marl.replay import ReplayBuffer
from marl.train import load_policy, save_policy, train

SMALL = {"batch_size": 64, "hidden_sizes": (16, 16), "learning_starts": 200, "transitions_per_update": 16,
         "buffer_size": 5_000, "log_every": 200}


def small_config(**changes) -> MADDPGConfig:
    return MADDPGConfig(**{"env_steps": 800, "num_envs": 8, **SMALL, **changes})


# ---------------------------------------------------------------------------------------
# Gumbel-softmax


def test_straight_through_gradient_equals_the_numerical_gradient_of_the_relaxed_sample():
    """The value is the one-hot sample; the gradient is d softmax((logits + g) / t) (Jang et al. 2017)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, dtype=torch.float64, generator=generator)
    noise = gumbel_noise(logits.shape, logits, generator)
    weights = torch.randn(4, 5, dtype=torch.float64, generator=generator)
    temperature = 0.7

    leaf = logits.clone().requires_grad_(True)
    sample = gumbel_softmax(leaf, temperature, hard=True, noise=noise)
    (sample * weights).sum().backward()

    def relaxed_objective(values: torch.Tensor) -> float:
        return float((gumbel_softmax(values, temperature, hard=False, noise=noise) * weights).sum())

    numerical = torch.zeros_like(logits)
    step = 1e-6
    for index in np.ndindex(*logits.shape):
        up, down = logits.clone(), logits.clone()
        up[index] += step
        down[index] -= step
        numerical[index] = (relaxed_objective(up) - relaxed_objective(down)) / (2 * step)
    torch.testing.assert_close(leaf.grad, numerical, atol=1e-8, rtol=1e-6)
    assert torch.equal(sample.detach(), torch.nn.functional.one_hot((logits + noise).argmax(1), 5).double())


def test_gumbel_max_samples_follow_the_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    draws = 200_000
    samples = gumbel_softmax(logits.expand(draws, -1), generator=torch.Generator().manual_seed(3)).argmax(1)
    frequencies = torch.bincount(samples, minlength=4).double() / draws
    expected = torch.softmax(logits, 0)
    # 5 standard errors of a binomial proportion
    assert torch.all((frequencies - expected).abs() < 5 * (expected * (1 - expected) / draws).sqrt())


# ---------------------------------------------------------------------------------------
# Stacked networks and the replay buffer


@pytest.mark.parametrize("parameter_sets, members", [(3, 1), (3, 2), (1, 2), (1, 1)])
def test_stacked_networks_equal_one_network_at_a_time(parameter_sets, members):
    network = StackedMLP(parameter_sets, members, [5, 7, 2], generator=torch.Generator().manual_seed(0),
                         device=torch.device("cpu"), dtype=torch.float64)
    inputs = torch.randn(3, members, 4, 5, dtype=torch.float64)
    outputs = network(inputs)
    assert outputs.shape == (3, members, 4, 2)
    for agent in range(3):
        for member in range(members):
            row = (agent if parameter_sets > 1 else 0) * members + member
            hidden = torch.relu(inputs[agent, member] @ network.weights[0][row] + network.biases[0][row])
            expected = hidden @ network.weights[1][row] + network.biases[1][row]
            torch.testing.assert_close(outputs[agent, member], expected)


def test_gradient_clipping_is_per_network_and_per_variable():
    network = StackedMLP(2, 1, [3, 2], generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
    network.weights[0].grad = torch.stack([torch.full((3, 2), 10.0), torch.full((3, 2), 0.01)])
    network.biases[0].grad = torch.zeros(2, 1, 2)
    network.clip_gradients_(0.5)
    norms = network.weights[0].grad.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([0.5, 0.01 * 6**0.5]))
    assert torch.equal(network.biases[0].grad, torch.zeros(2, 1, 2))


def _rows(start: int, count: int, agents: int = 2) -> dict[str, torch.Tensor]:
    values = torch.arange(start, start + count, dtype=torch.float32)[:, None]
    return {"observations": values.expand(-1, 3), "actions": values.expand(-1, 2),
            "rewards": values.expand(-1, agents), "next_observations": values.expand(-1, 3) + 1,
            "terminated": torch.zeros(count, agents), "members": torch.zeros(count, agents, dtype=torch.int64),
            "controllers": (values.long() % 3 - 1).expand(-1, agents)}


def test_replay_ring_keeps_the_newest_rows_and_restores_exactly():
    buffer = ReplayBuffer(10, 3, 2, 2, device=torch.device("cpu"), controllers=True)
    for start in range(0, 24, 4):
        buffer.add(**_rows(start, 4))
    assert len(buffer) == 10
    assert sorted(buffer.storage["observations"][:, 0].tolist()) == list(range(14, 24))
    copy = ReplayBuffer(10, 3, 2, 2, device=torch.device("cpu"), controllers=True)
    copy.load_state_dict(buffer.state_dict())
    first = buffer.sample(32, torch.Generator().manual_seed(1))
    second = copy.sample(32, torch.Generator().manual_seed(1))
    for field in dataclasses.fields(first):
        assert torch.equal(getattr(first, field.name), getattr(second, field.name))
    copy.add(**_rows(100, 1))
    buffer.add(**_rows(100, 1))
    assert torch.equal(copy.storage["observations"], buffer.storage["observations"])


# ---------------------------------------------------------------------------------------
# The learner


def test_critic_inputs_put_the_agent_first_then_the_others_in_game_order():
    game = make_game("tag", 2, seed=0)
    learner = MADDPG(GameSpec.of(game), small_config(num_envs=2))
    observations, _ = game.reset(seed=0)
    joint_observations = torch.cat([observations[a] for a in game.possible_agents], 1)
    actions = torch.randn(2, 5 * game.num_agents)
    for group in learner.groups:
        inputs = learner._critic_inputs(group, joint_observations, actions)
        for row, agent_index in enumerate(group.indices.tolist()):
            agent = game.possible_agents[agent_index]
            others = [a for a in game.possible_agents if a != agent]
            expected = torch.cat([observations[agent], actions[:, 5 * agent_index: 5 * agent_index + 5]]
                                 + [observations[a] for a in others]
                                 + [actions[:, 5 * i: 5 * i + 5] for i, a in enumerate(game.possible_agents)
                                    if a != agent], 1)
            torch.testing.assert_close(inputs[row], expected)
    assert [len(group.indices) for group in learner.groups] == [3, 1]  # adversaries, the good agent


@settings(max_examples=15, deadline=None)
@given(copies=st.integers(1, 6), seed=st.integers(0, 1000), members=st.integers(1, 3))
def test_acting_on_a_batch_equals_acting_one_copy_at_a_time(copies, seed, members):
    game = make_game("spread", copies, seed=seed)
    learner = MADDPG(GameSpec.of(game), small_config(num_envs=copies, ensemble_size=members, seed=seed))
    observations, _ = game.reset(seed=seed)
    joint = torch.cat([observations[a] for a in game.possible_agents], 1)
    chosen = torch.randint(members, (copies, 3), generator=torch.Generator().manual_seed(seed))
    together = learner.act(joint, chosen, explore=False)
    for row in range(copies):
        torch.testing.assert_close(learner.act(joint[row:row + 1], chosen[row:row + 1], explore=False),
                                   together[row:row + 1])


@pytest.mark.slow
def test_centralized_critic_finds_the_optimal_plan_of_the_two_step_game():
    """Rashid et al. (2018), section 6.1: the optimal return is 8, the trap returns 7."""
    for seed in range(4):
        config = MADDPGConfig(env_steps=20_000, num_envs=32, seed=seed, batch_size=64, hidden_sizes=(32, 32),
                              learning_starts=256, transitions_per_update=32, buffer_size=20_000, log_every=10_000)
        result = train(make_game("two_step", 32, seed=seed), config)
        assert result.updates == 618
        returns = episode_returns(TrainedPolicy(result.learner), make_game("two_step", 4, seed=seed), seed)
        assert torch.all(returns == 8.0), (seed, returns)


@pytest.mark.parametrize(
    "name, changes",
    [
        ("spread", {}),
        ("spread", {"continuous_actions": True}),
        ("tag", {}),
        ("adversary", {}),
    ],
)
def test_smoke_runs_learn_with_finite_losses(name, changes, device):
    game = make_game(name, 8, device=device, seed=0, settings=changes)
    seen = []
    result = train(game, small_config(share_parameters=name == "tag"), device=device, callback=lambda stats, _: seen.append(stats))
    assert result.env_steps == 800 and result.updates == (800 - 200) // 16 + 1
    assert seen and all(np.isfinite(stats["critic_loss"]) for stats in seen if "critic_loss" in stats)
    returns = episode_returns(TrainedPolicy(result.learner), make_game(name, 3, device=device, seed=1,
                                                                        settings=changes), 1)
    assert returns.shape == (3,) and torch.isfinite(returns).all()


def test_smoke_run_on_an_mpe2_environment_through_the_adapter():
    pytest.importorskip("mpe2")
    game = make_game("pettingzoo:mpe2.simple_spread_v3", 4, seed=0, settings={"max_cycles": 25})
    result = train(game, small_config(num_envs=4, env_steps=400, learning_starts=100))
    assert result.env_steps == 400 and result.updates > 0
    returns = episode_returns(TrainedPolicy(result.learner), make_game(
        "pettingzoo:mpe2.simple_spread_v3", 2, seed=1, settings={"max_cycles": 25}), 1)
    assert torch.isfinite(returns).all()


def test_ensembles_draw_members_per_copy_and_update_each():
    game = make_game("spread", 8, seed=0)
    result = train(game, small_config(ensemble_size=3))
    actors = result.learner.actors[0].weights[0]
    assert actors.shape[0] == 3 * 3
    fresh = MADDPG(GameSpec.of(game), small_config(ensemble_size=3)).actors[0].weights[0]
    assert all(not torch.equal(actors[i], fresh[i]) for i in range(9))  # every member learned


# ---------------------------------------------------------------------------------------
# Checkpoints and resuming


def _parameters(learner: MADDPG) -> list[torch.Tensor]:
    return [p.detach().clone() for m in (learner.actors, learner.critics, learner.target_actors,
                                         learner.target_critics) for p in m.parameters()]


def test_a_resumed_run_equals_the_uninterrupted_run(tmp_path):
    config = small_config(env_steps=800, checkpoint_every=400)
    whole = train(make_game("spread", 8, seed=0), config, run_dir=tmp_path / "whole", game_name="spread")
    first = train(make_game("spread", 8, seed=0), dataclasses.replace(config, env_steps=400),
                  run_dir=tmp_path / "parts", game_name="spread")
    saved = checkpoint.load(tmp_path / "parts" / "checkpoint.pt")
    assert saved["run"]["env_steps"] == 400 and saved["run"]["updates"] == first.updates
    assert len(saved["run"]["replay"]["observations"]) == 400
    resumed = train(make_game("spread", 8, seed=0), config, run_dir=tmp_path / "parts", game_name="spread",
                    resume=True)
    assert resumed.env_steps == whole.env_steps and resumed.updates == whole.updates
    for a, b in zip(_parameters(resumed.learner), _parameters(whole.learner)):
        assert torch.equal(a, b)
    steps = [group["params"] for group in resumed.learner.actor_optimizer.state_dict()["param_groups"]]
    state = resumed.learner.actor_optimizer.state_dict()["state"]
    assert steps and int(state[0]["step"]) == whole.updates
    assert [p["env_steps"] for p in resumed.curve] == [p["env_steps"] for p in whole.curve]


def test_tensorboard_logs_hold_the_training_return(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_game("spread", 8, seed=0), small_config(), run_dir=tmp_path, game_name="spread")
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert "train/episode_return" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("train/episode_return")][-1] == 800


def test_policy_files_replay_the_trained_actors(tmp_path):
    game = make_game("spread", 8, seed=0)
    result = train(game, small_config())
    save_policy(tmp_path / "policy.pt", result.learner, "spread", {})
    loaded = load_policy(tmp_path / "policy.pt", game_name="spread", game_settings={"num_agents": 3})
    observations, _ = game.reset(seed=5)
    expected = TrainedPolicy(result.learner)(game, observations)
    for agent, action in loaded(game, observations).items():
        assert torch.equal(action, expected[agent])


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    game = make_game("spread", 8, seed=0)
    result = train(game, small_config())
    good = tmp_path / "policy.pt"
    save_policy(good, result.learner, "spread", {})
    with pytest.raises(checkpoint.CheckpointError, match="trained on 'spread', not 'tag'"):
        load_policy(good, game_name="tag")
    with pytest.raises(checkpoint.CheckpointError, match="settings"):
        load_policy(good, game_name="spread", game_settings={"num_agents": 4})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(checkpoint.CheckpointError, match="corrupted or foreign"):
        load_policy(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"actors": torch.zeros(3)}, foreign)
    with pytest.raises(checkpoint.CheckpointError, match="format marker"):
        load_policy(foreign)
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint"):
        load_policy(tmp_path / "missing.pt")
    with pytest.raises(checkpoint.CheckpointError, match="do not fit the game"):
        load_policy(good, game=make_game("spread", 2, settings={"num_agents": 4}))


def test_resuming_another_scenario_or_a_policy_file_is_refused(tmp_path):
    train(make_game("spread", 8, seed=0), small_config(), run_dir=tmp_path, game_name="spread")
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(checkpoint.CheckpointError, match="not 'tag'"):
        train(make_game("tag", 8, seed=0), small_config(), run_dir=tmp_path, game_name="tag", resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


# ---------------------------------------------------------------------------------------
# Bad settings and games


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"gamma": 1.5}, "gamma"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"centralized_critic": "yes"}, "centralized_critic"),
        ({"actor_lr": float("nan")}, "actor_lr"),
    ],
)
def test_bad_settings_are_named(changes, message):
    with pytest.raises(TrainingError, match=message):
        MADDPGConfig(**changes)
    with pytest.raises(TrainingError, match="no setting 'learning_rate'"):
        MADDPGConfig.from_dict({"learning_rate": 0.1})


def test_incompatible_action_spaces_are_refused():
    from gymnasium import spaces

    class MultiDiscreteGame:
        possible_agents = ["a"]

        def observation_space(self, agent):
            return spaces.Box(-1, 1, (3,))

        def action_space(self, agent):
            return spaces.MultiDiscrete([2, 2])

    with pytest.raises(TrainingError, match="MultiDiscrete"):
        GameSpec.of(MultiDiscreteGame())


@pytest.mark.parametrize("minutes, more_than_the_last", [(0.0, False), (1e-6, True)])
def test_checkpoints_are_also_written_by_the_clock(tmp_path, monkeypatch, minutes, more_than_the_last):
    """checkpoint_minutes writes checkpoints on time as well as on transitions (0 turns it off)."""
    written = []
    original = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, payload: (written.append(payload["run"]["env_steps"]),
                                                                    original(path, payload)))
    config = small_config(env_steps=400, checkpoint_every=10**9, checkpoint_minutes=minutes)
    train(make_game("spread", 8, seed=0), config, run_dir=tmp_path, game_name="spread")
    assert written[-1] == 400 and (len(written) > 1) == more_than_the_last
    assert all(steps % (8 * 25) == 0 for steps in written[:-1])  # at episode boundaries only


def test_greedy_evaluation_points_leave_training_unchanged():
    """The learning curve's greedy points come from games of their own: a run that evaluates trains the
    same weights as one that does not, and records an evaluation at every eval_every and at the end."""
    from games.policy import episode_returns

    config = small_config(env_steps=800, eval_every=300, log_every=100, seed=3)
    plain = train(make_game("spread", 8, seed=3), config)
    judge = make_game("spread", 4, seed=9)
    evaluated = train(make_game("spread", 8, seed=3), config,
                      evaluate=lambda learner: float(episode_returns(TrainedPolicy(learner), judge, 9).mean()))
    for first, second in zip(plain.learner.actors.parameters(), evaluated.learner.actors.parameters()):
        assert torch.equal(first, second)
    points = [entry["env_steps"] for entry in evaluated.curve if "greedy_return" in entry]
    assert points == [304.0, 600.0, 800.0]
    assert not any("greedy_return" in entry for entry in plain.curve)
    final = float(episode_returns(TrainedPolicy(evaluated.learner), judge, 9).mean())
    assert evaluated.curve[-1]["greedy_return"] == final


@pytest.mark.parametrize("scenario", ["spread", "navigation"])
def test_a_run_stopped_mid_episode_resumes_exactly(tmp_path, scenario):
    """Ctrl-C at step 13 of a 25-step episode (env_steps 104 with 8 copies): the resumed run trains the
    same weights and logs the same curve as a run that was never stopped."""
    config = small_config(env_steps=800, log_every=100, seed=5, checkpoint_minutes=0)
    whole = train(make_game(scenario, 8, seed=5), config)

    def stop(stats, learner):
        if stats["env_steps"] >= 104:
            raise KeyboardInterrupt

    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(make_game(scenario, 8, seed=5), config, run_dir=folder, game_name=scenario, callback=stop)
    saved = checkpoint.load(folder / "checkpoint.pt")
    assert saved["run"]["env_steps"] == 104 and int(saved["run"]["game_state"]["tensors"]["steps"][0]) == 13
    resumed = train(make_game(scenario, 8, seed=5), config, run_dir=folder, game_name=scenario, resume=True)
    for first, second in zip(whole.learner.actors.parameters(), resumed.learner.actors.parameters()):
        assert torch.equal(first, second)
    assert [entry["episode_return"] for entry in resumed.curve] == [entry["episode_return"] for entry in whole.curve]


def test_a_saved_game_state_of_another_game_is_refused():
    from games.markov import ConfigError

    spread, tag = make_game("spread", 4, seed=0), make_game("tag", 4, seed=0)
    spread.reset(seed=0)
    tag.reset(seed=0)
    with pytest.raises(ConfigError, match="of another game or size"):
        tag.load_state_dict(spread.state_dict())
    with pytest.raises(ConfigError, match="of another game or size: its .* does not fit"):
        make_game("spread", 5, seed=0).load_state_dict(spread.state_dict())


def test_the_demos_training_is_a_fixed_budget_whatever_the_machines_load():
    """The demo trains a number of transitions, not seconds: two runs print the same result."""
    import io

    from rich.console import Console

    from marl.demo import _maddpg_demo

    quiet = Console(file=io.StringIO())
    first, second = _maddpg_demo(quiet, env_steps=6_000), _maddpg_demo(quiet, env_steps=6_000)
    assert first == second and first[2] > 0  # a short budget still reaches updates (learning_starts lowered)
