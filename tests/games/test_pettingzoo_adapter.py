"""PettingZoo interop: gamelab scenarios pass PettingZoo's own conformance tests, and any
PettingZoo ParallelEnv (here every default mpe2 MPE task we mirror) runs behind the
batched MarkovGame API with the values mpe2 itself gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test

import scenarios
from games.adapters.pettingzoo import from_parallel_env, to_parallel_env
from games.errors import GameError

SETTINGS = {
    "spread": {},
    "tag": {},
    "adversary": {},
    "navigation": {"num_agents": 4, "num_obstacles": 2},
}


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_scenario_passes_parallel_api_test(name, continuous):
    env = to_parallel_env(scenarios.make(name, seed=0, continuous_actions=continuous, **SETTINGS[name]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo reports contract slips as warnings
        parallel_api_test(env, num_cycles=200)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_scenario_passes_parallel_seed_test(name, continuous):
    parallel_seed_test(
        lambda: to_parallel_env(scenarios.make(name, continuous_actions=continuous, **SETTINGS[name])), num_cycles=50
    )


def test_the_parallel_env_returns_the_last_observation_then_empties_its_agents():
    game = scenarios.make("spread", seed=2, max_cycles=3)
    env = to_parallel_env(game)
    observations, _ = env.reset(seed=2)
    assert observations["agent_0"].dtype == np.float32
    assert env.state().shape == (54,)
    for _ in range(3):
        observations, rewards, terminated, truncated, infos = env.step({agent: 2 for agent in env.agents})
    assert all(truncated.values()) and env.agents == []
    assert isinstance(rewards["agent_0"], float)
    with pytest.raises(GameError, match="finished episode"):
        env.step({})
    frame = env.render()
    assert frame.shape == (480, 480, 3)


def test_to_parallel_env_needs_one_copy():
    with pytest.raises(GameError, match="num_envs=1"):
        to_parallel_env(scenarios.make("spread", num_envs=2))


@pytest.mark.parametrize("name", ["spread", "tag", "adversary"])
def test_mpe2_behind_the_batched_api_gives_mpe2s_own_values(name):
    from mpe2 import simple_adversary_v3, simple_spread_v3, simple_tag_v3

    module = {"spread": simple_spread_v3, "tag": simple_tag_v3, "adversary": simple_adversary_v3}[name]
    batch = from_parallel_env(module.parallel_env, num_envs=3, seed=40)
    references = [module.parallel_env() for _ in range(3)]
    observations, _ = batch.reset(seed=40)
    expected = [reference.reset(seed=40 + i)[0] for i, reference in enumerate(references)]
    generator = torch.Generator().manual_seed(1)
    for step in range(30):  # through one automatic reset at step 25
        for agent in batch.possible_agents:
            stacked = np.stack([row[agent] for row in expected])
            np.testing.assert_array_equal(observations[agent].numpy(), stacked)
        actions = {a: torch.randint(5, (3,), generator=generator) for a in batch.possible_agents}
        observations, rewards, terminated, truncated, infos = batch.step(actions)
        rows = [ref.step({a: int(actions[a][i]) for a in ref.agents}) for i, ref in enumerate(references)]
        for i, row in enumerate(rows):
            for agent in batch.possible_agents:
                assert float(rewards[agent][i]) == pytest.approx(row[1][agent], abs=1e-6)
                np.testing.assert_array_equal(infos[agent]["final_observation"][i].numpy(), row[0][agent])
        expected = []
        for i, reference in enumerate(references):
            if not reference.agents:
                expected.append(reference.reset()[0])
            else:
                expected.append(rows[i][0])
        assert bool(truncated[batch.possible_agents[0]].all()) == (step == 24)


def test_the_batched_adapter_refuses_actions_like_a_gamelab_game():
    from mpe2 import simple_spread_v3

    batch = from_parallel_env(simple_spread_v3.parallel_env, num_envs=2, seed=0)
    batch.reset()
    with pytest.raises(GameError, match="agent 'agent_1' in copy 1 is out of range"):
        batch.step({"agent_0": torch.zeros(2, dtype=torch.long), "agent_1": torch.tensor([0, 9]),
                    "agent_2": torch.zeros(2, dtype=torch.long)})
