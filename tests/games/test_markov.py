"""The batched MarkovGame contract, checked on every scenario.

Batched equals one at a time, the same seed gives the same trajectories, finished copies
reset themselves and report their last observation, bad actions are refused without
touching the game, and the counter-based streams equal a numpy reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scenarios
from games import streams
from games.errors import GameError
from games.markov import ActionError, ConfigError
from games.policy import random_policy

SMALL = {
    "spread": {},
    "tag": {},
    "adversary": {},
    "navigation": {"num_agents": 5, "num_obstacles": 3, "max_neighbours": 2},
}


def _random_actions(game, generator: torch.Generator) -> dict[str, torch.Tensor]:
    actions = {}
    for agent in game.possible_agents:
        if game.continuous:
            actions[agent] = torch.rand(game.num_envs, 5, generator=generator, dtype=torch.float64).to(game.dtype)
        else:
            actions[agent] = torch.randint(5, (game.num_envs,), generator=generator)
        actions[agent] = actions[agent].to(game.device)
    return actions


# ----------------------------------------------------------------------------------------
# Counter-based streams


def _splitmix_reference(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer in numpy uint64 arithmetic (wraps by definition)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def test_splitmix64_equals_the_unsigned_reference():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**64, size=1000, dtype=np.uint64)
    values[:3] = [0, 2**63, 2**64 - 1]
    ours = streams.splitmix64(torch.from_numpy(values.view(np.int64))).numpy().view(np.uint64)
    np.testing.assert_array_equal(ours, _splitmix_reference(values))
    # SplitMix64 seeded with 0 yields 0xE220A8397B1DCDAF first (Vigna's reference implementation).
    assert int(_splitmix_reference(np.array([0x9E3779B97F4A7C15], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_draws_lie_in_the_unit_interval_and_look_uniform(dtype):
    keys = streams.stream_keys(7, torch.arange(64), torch.zeros(64, dtype=torch.long))
    draws = streams.uniform(keys, 512, dtype)
    assert draws.dtype == dtype and draws.shape == (64, 512)
    assert float(draws.min()) >= 0.0 and float(draws.max()) < 1.0
    assert abs(float(draws.mean()) - 0.5) < 0.01
    assert abs(float(draws.var()) - 1 / 12) < 0.005


def test_streams_differ_by_seed_copy_and_episode():
    copies, episodes = torch.arange(4), torch.zeros(4, dtype=torch.long)
    base = streams.uniform(streams.stream_keys(1, copies, episodes), 8)
    assert len({tuple(row) for row in base.tolist()}) == 4
    assert not torch.equal(base, streams.uniform(streams.stream_keys(2, copies, episodes), 8))
    assert not torch.equal(base, streams.uniform(streams.stream_keys(1, copies, episodes + 1), 8))


# ----------------------------------------------------------------------------------------
# Batched equals one at a time; seeds


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_batch_equals_its_copies_stepped_one_at_a_time_through_resets(name, continuous, device):
    """Five copies together and five single games with ``first_copy=i`` play identically,
    across several automatic resets (episodes of 7 steps, 30 steps)."""
    settings = dict(SMALL[name], max_cycles=7, continuous_actions=continuous)
    batch = scenarios.make(name, num_envs=5, seed=3, device=device, **settings)
    singles = [scenarios.make(name, num_envs=1, seed=3, device=device, first_copy=i, **settings) for i in range(5)]
    observed, _ = batch.reset()
    alone = [single.reset()[0] for single in singles]
    generator = torch.Generator().manual_seed(0)
    for step in range(30):
        for agent in batch.possible_agents:
            expected = torch.cat([alone[i][agent] for i in range(5)])
            torch.testing.assert_close(observed[agent], expected, rtol=0, atol=1e-6, msg=f"{agent} step {step}")
        actions = _random_actions(batch, generator)
        observed, rewards, terminated, truncated, infos = batch.step(actions)
        results = [single.step({a: v[i : i + 1] for a, v in actions.items()}) for i, single in enumerate(singles)]
        alone = [result[0] for result in results]
        for agent in batch.possible_agents:
            torch.testing.assert_close(rewards[agent], torch.cat([r[1][agent] for r in results]), rtol=0, atol=1e-5)
            assert torch.equal(truncated[agent], torch.cat([r[3][agent] for r in results]))
            assert torch.equal(terminated[agent], torch.cat([r[2][agent] for r in results]))
    assert int(batch.episodes.min()) >= 4


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_same_seed_gives_the_same_trajectories_and_another_seed_does_not(name):
    def play(seed: int) -> list[torch.Tensor]:
        game = scenarios.make(name, num_envs=3, seed=seed, **SMALL[name])
        observations, _ = game.reset()
        policy = random_policy(9)
        trace = [game.state()]
        for _ in range(30):
            observations, rewards, *_ = game.step(policy(game, observations))
            trace += [game.state(), torch.stack(list(rewards.values()))]
        return trace

    first, again, other = play(4), play(4), play(5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_reset_with_a_seed_restarts_the_streams_and_without_one_moves_on():
    game = scenarios.make("spread", num_envs=2, seed=0)
    first, _ = game.reset(seed=8)
    second, _ = game.reset()
    again, _ = game.reset(seed=8)
    assert torch.equal(first["agent_0"], again["agent_0"])
    assert not torch.equal(first["agent_0"], second["agent_0"])


# ----------------------------------------------------------------------------------------
# Automatic reset


def test_finished_copies_reset_and_report_their_final_observation():
    """After the 5th step every copy is truncated: the returned observation starts episode 1
    (as a fresh ``reset()`` of a twin shows) and ``final_observation`` is where episode 0
    ended (as a twin that does not reset shows)."""
    game, fresh, kept = (scenarios.make("spread", num_envs=4, seed=1, max_cycles=5) for _ in range(3))
    game.reset()
    fresh.reset()
    next_episode, _ = fresh.reset()
    kept.reset()
    kept.autoreset = False
    right = {agent: torch.full((4,), 2) for agent in game.possible_agents}
    for _ in range(5):
        observations, rewards, terminated, truncated, infos = game.step(right)
        ended, *_ = kept.step(right)
    assert all(bool(truncated[agent].all()) for agent in game.possible_agents)
    assert not any(bool(terminated[agent].any()) for agent in game.possible_agents)
    for agent in game.possible_agents:
        torch.testing.assert_close(observations[agent], next_episode[agent])
        torch.testing.assert_close(infos[agent]["final_observation"], ended[agent])
        assert not torch.allclose(observations[agent], ended[agent])
    assert int(game.steps.max()) == 0 and game.episodes.tolist() == [1, 1, 1, 1]


def test_final_observation_is_the_returned_observation_while_nothing_finishes():
    game = scenarios.make("tag", num_envs=3, seed=0)
    game.reset()
    observations, _, _, truncated, infos = game.step({a: torch.zeros(3, dtype=torch.long) for a in game.possible_agents})
    assert not truncated["agent_0"].any()
    for agent in game.possible_agents:
        assert infos[agent]["final_observation"] is observations[agent]


def test_state_concatenates_observations_in_agent_order():
    game = scenarios.make("tag", num_envs=2, seed=0)
    observations, _ = game.reset()
    expected = torch.cat([observations[a] for a in game.possible_agents], dim=1)
    assert torch.equal(game.state(), expected)
    assert game.state().shape == (2, game.state_size) == (2, 3 * 16 + 14)


def test_spaces_describe_one_copy_and_are_the_same_objects():
    game = scenarios.make("tag", num_envs=8, seed=0, continuous_actions=True)
    observations, _ = game.reset()
    for agent in game.possible_agents:
        assert game.observation_space(agent) is game.observation_space(agent)
        assert game.action_space(agent) is game.action_space(agent)
        assert game.observation_space(agent).shape == observations[agent].shape[1:]
        assert game.action_space(agent).shape == (5,)
    with pytest.raises(GameError, match="unknown agent 'agent_9'"):
        game.action_space("agent_9")


def test_values_live_on_the_game_device_with_its_dtype(device):
    game = scenarios.make("spread", num_envs=2, seed=0, device=device, dtype=torch.float64)
    observations, _ = game.reset()
    step = game.step({a: torch.zeros(2, dtype=torch.long, device=device) for a in game.possible_agents})
    assert observations["agent_0"].device.type == device.type and observations["agent_0"].dtype == torch.float64
    assert step[1]["agent_0"].device.type == device.type and step[1]["agent_0"].dtype == torch.float64
    assert step[3]["agent_0"].dtype == torch.bool


# ----------------------------------------------------------------------------------------
# Bad input


def _discrete_game():
    game = scenarios.make("spread", num_envs=4, seed=0)
    game.reset()
    return game


BAD_ACTIONS = [
    (lambda: {"agent_0": torch.zeros(4, dtype=torch.long)}, "no action for agent 'agent_1'"),
    (lambda: {**{f"agent_{i}": torch.zeros(4, dtype=torch.long) for i in range(3)}, "agent_7": torch.zeros(4)},
     "unknown agent 'agent_7'"),
    (lambda: {"agent_0": torch.zeros(3, dtype=torch.long), "agent_1": torch.zeros(4, dtype=torch.long),
              "agent_2": torch.zeros(4, dtype=torch.long)}, r"agent 'agent_0' has shape \(3,\); expected an integer tensor of shape \(4,\)"),
    (lambda: {f"agent_{i}": torch.zeros(4) for i in range(3)}, "agent 'agent_0' has dtype torch.float32"),
    (lambda: {**{f"agent_{i}": torch.zeros(4, dtype=torch.long) for i in range(2)}, "agent_2": torch.full((4,), 5)},
     "agent 'agent_2' in copy 0 is out of range; expected 0..4"),
    (lambda: {**{f"agent_{i}": torch.zeros(4, dtype=torch.long) for i in range(2)}, "agent_2": torch.tensor([0, 0, -1, 0])},
     "agent 'agent_2' in copy 2 is out of range"),
    (lambda: {**{f"agent_{i}": torch.zeros(4, dtype=torch.long) for i in range(2)}, "agent_2": [0, 0, 0, 0]},
     "agent 'agent_2' is a list"),
    (lambda: {**{f"agent_{i}": torch.zeros(4, dtype=torch.long) for i in range(2)},
              "agent_2": torch.zeros(4, dtype=torch.long, device="meta")}, "agent 'agent_2' is on device meta"),
]


@pytest.mark.parametrize("make_actions,message", BAD_ACTIONS)
def test_bad_discrete_actions_are_refused_without_touching_the_game(make_actions, message):
    game = _discrete_game()
    position, steps = game.world.position.clone(), game.steps.clone()
    with pytest.raises(ActionError, match=message):
        game.step(make_actions())
    assert torch.equal(game.world.position, position) and torch.equal(game.steps, steps)


@pytest.mark.parametrize(
    "value,message",
    [
        (float("nan"), "agent 'agent_1' in copy 1 is not finite or outside"),
        (1.5, "agent 'agent_1' in copy 1 is not finite or outside"),
        (-0.1, r"outside \[0.0, 1.0\]"),
    ],
)
def test_bad_continuous_actions_are_refused(value, message):
    game = scenarios.make("spread", num_envs=2, seed=0, continuous_actions=True)
    game.reset()
    actions = {agent: torch.full((2, 5), 0.5) for agent in game.possible_agents}
    actions["agent_1"][1, 3] = value
    with pytest.raises(ActionError, match=message):
        game.step(actions)
    with pytest.raises(ActionError, match=r"shape \(2, 4\)"):
        game.step({**actions, "agent_1": torch.zeros(2, 4)})


def test_step_before_reset_is_an_error():
    game = scenarios.make("spread", num_envs=1, seed=0)
    with pytest.raises(GameError, match="before reset"):
        game.step({a: torch.zeros(1, dtype=torch.long) for a in game.possible_agents})


def test_unknown_scenarios_and_settings_are_named():
    with pytest.raises(GameError, match=r"unknown scenario 'sprad' \(did you mean 'spread'\?\)"):
        scenarios.make("sprad")
    with pytest.raises(ConfigError, match="spread has no setting 'N'; its settings are"):
        scenarios.make("spread", N=3)


@pytest.mark.parametrize(
    "name,settings,message",
    [
        ("spread", {"num_agents": 0}, "num_agents must be >= 1, got 0"),
        ("spread", {"num_agents": 2.5}, "num_agents must be an integer"),
        ("spread", {"local_ratio": 1.5}, "local_ratio must be <= 1.0"),
        ("tag", {"max_cycles": 0}, "max_cycles must be >= 1"),
        ("adversary", {"continuous_actions": "yes"}, "continuous_actions must be true or false"),
        ("navigation", {"sensing_radius": float("nan")}, "sensing_radius must be finite"),
        ("navigation", {"agent_size": 0.0}, "agent_size must be > 0.0"),
    ],
)
def test_bad_settings_are_refused_with_their_name(name, settings, message):
    with pytest.raises(ConfigError, match=message):
        scenarios.make(name, **settings)


def test_bad_batch_arguments_are_refused():
    with pytest.raises(ConfigError, match="num_envs must be a positive integer"):
        scenarios.make("spread", num_envs=0)
    with pytest.raises(ConfigError, match="dtype must be"):
        scenarios.make("spread", dtype=torch.int32)
    with pytest.raises(ConfigError, match="not a torch device"):
        scenarios.make("spread", device="gpu7")


def test_reset_options_start_each_copy_at_a_given_episode():
    batch = scenarios.make("spread", num_envs=3, seed=4)
    batch.reset(seed=4, options={"episodes": torch.tensor([2, 0, 5])})
    for copy, episode in enumerate([2, 0, 5]):
        single = scenarios.make("spread", num_envs=1, seed=4, first_copy=copy)
        single.reset(seed=4)
        for _ in range(episode):
            single.reset()
        torch.testing.assert_close(single.state(), batch.state()[copy:copy + 1])
    with pytest.raises(ConfigError, match="3 integers"):
        batch.reset(options={"episodes": torch.tensor([1.0, 2.0, 3.0])})
    with pytest.raises(ConfigError, match=">= 0"):
        batch.reset(options={"episodes": torch.tensor([1, -1, 3])})


def test_reset_streams_let_copies_replay_one_episode():
    """Copies given the same stream start alike, and equal the copy that owns that stream."""
    import scenarios

    game = scenarios.make("tag", num_envs=4, seed=5)
    reference, _ = game.reset(seed=5)
    replayed, _ = game.reset(seed=5, options={"streams": torch.tensor([2, 2, 0, 3])})
    for agent, values in replayed.items():
        assert torch.equal(values[0], reference[agent][2]) and torch.equal(values[1], reference[agent][2])
        assert torch.equal(values[2], reference[agent][0]) and torch.equal(values[3], reference[agent][3])
    with pytest.raises(ConfigError, match="streams"):
        game.reset(options={"streams": torch.tensor([1, 2])})
