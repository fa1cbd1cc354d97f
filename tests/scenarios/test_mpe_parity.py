"""gamelab's MPE scenarios against mpe2 itself, from the same states under the same actions.

Each test resets an mpe2 task, copies its entity positions and velocities (and, for
``adversary``, its goal) into a one-copy gamelab game in float64, then steps both with the
same random actions for a whole episode. mpe2 keeps its state in float64 and hands out
float32 observations, so observations agree to float32 rounding; rewards agree to 1e-12
(summation order) with discrete actions, and to 1e-7 with continuous ones (mpe2 subtracts the action
components in float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scenarios

mpe2 = pytest.importorskip("mpe2")

CASES = [
    ("spread", "simple_spread_v3", {}, {}),
    ("spread", "simple_spread_v3", {"num_agents": 5, "local_ratio": 0.3}, {"N": 5, "local_ratio": 0.3}),
    ("tag", "simple_tag_v3", {}, {}),
    (
        "tag",
        "simple_tag_v3",
        {"num_good": 2, "num_adversaries": 4, "num_obstacles": 3},
        {"num_good": 2, "num_adversaries": 4, "num_obstacles": 3},
    ),
    ("adversary", "simple_adversary_v3", {}, {}),
    ("adversary", "simple_adversary_v3", {"num_good": 3}, {"N": 3}),
]


def _mpe_env(task: str, continuous: bool, settings: dict):
    module = __import__(f"mpe2.{task}", fromlist=["parallel_env"])
    return module.parallel_env(continuous_actions=continuous, **settings)


def _copy_state(env, game, crowd: bool) -> None:
    """Puts ``game`` in ``env``'s state; with ``crowd``, first packs mpe2's agents together."""
    world = env.unwrapped.world
    if crowd:
        for index, agent in enumerate(world.agents):
            agent.state.p_pos = np.array([0.07 * index, 0.05 * (index % 2)])
    entities = world.agents + world.landmarks
    position = np.array([entity.state.p_pos for entity in entities])
    velocity = np.array([entity.state.p_vel for entity in entities])
    game.world.position = torch.tensor(position, dtype=torch.float64)[None]
    game.world.velocity = torch.tensor(velocity, dtype=torch.float64)[None]
    if hasattr(game, "goal"):
        game.goal = torch.tensor([world.landmarks.index(world.agents[0].goal_a)])


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("crowd", [False, True], ids=["spread-out", "crowded"])
@pytest.mark.parametrize("name,task,ours,theirs", CASES)
def test_observations_and_rewards_equal_mpe2_over_an_episode(name, task, ours, theirs, crowd, continuous):
    env = _mpe_env(task, continuous, theirs)
    observations, _ = env.reset(seed=11)
    game = scenarios.make(name, num_envs=1, seed=0, dtype=torch.float64, continuous_actions=continuous, **ours)
    game.reset()
    _copy_state(env, game, crowd)
    assert game.possible_agents == env.possible_agents
    for agent in game.possible_agents:
        assert game.observation_space(agent).shape == env.observation_space(agent).shape
        assert game.action_space(agent) == env.action_space(agent)
    rng = np.random.default_rng(5)
    overlaps = 0
    for step in range(25):
        if continuous:
            actions = {agent: rng.uniform(0, 1, 5).astype(np.float32) for agent in env.agents}
            tensors = {agent: torch.tensor(a, dtype=torch.float64)[None] for agent, a in actions.items()}
        else:
            actions = {agent: int(rng.integers(5)) for agent in env.agents}
            tensors = {agent: torch.tensor([a]) for agent, a in actions.items()}
        expected, rewards, _, truncated, _ = env.step(actions)
        _, got_rewards, _, got_truncated, infos = game.step(tensors)
        count = game.world.num_agents
        overlaps += int(game.world.overlapping(slice(0, count), slice(0, count)).sum()) - count
        for agent in game.possible_agents:
            final = infos[agent]["final_observation"][0].numpy()
            np.testing.assert_allclose(final, expected[agent], rtol=0, atol=2e-6, err_msg=f"{agent} step {step}")
            tolerance = 1e-7 if continuous else 1e-12
            assert abs(float(got_rewards[agent][0]) - rewards[agent]) <= tolerance, (agent, step)
            assert bool(got_truncated[agent][0]) == truncated[agent]
    if crowd and name != "adversary":  # adversary's agents never collide
        assert overlaps > 0, "the crowded start should exercise the contact forces"


def test_a_scenario_with_its_mpe_name_reproduces_that_task():
    assert scenarios.MPE_EQUIVALENTS == {
        "spread": "simple_spread_v3",
        "tag": "simple_tag_v3",
        "adversary": "simple_adversary_v3",
    }
