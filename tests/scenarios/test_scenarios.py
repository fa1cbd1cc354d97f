"""Known outcomes of the scenarios: scripted play, rewards worked out by hand, and
navigation's collision counts and sensing against brute force."""

from __future__ import annotations

import math

import pytest
import torch

import scenarios
from games.policy import episode_returns, random_policy
from scenarios.navigation import goal_seeking_policy
from scenarios.spread import optimal_assignment_policy
from scenarios.tag import boundary_penalty


def _mean_return(game, policy, seed=0) -> float:
    return float(episode_returns(policy, game, seed).mean())


def test_spread_random_play_matches_mpe2s_reference_and_scripted_play_is_near_optimal():
    """Uniform random actions in mpe2's simple_spread_v3 return -27.0 per agent per episode,
    and a landmark-assignment script -9.2 (both measured on mpe2 and stated in the
    issue that specifies this scenario). Ours: random within 1.5 of -27, and the scripted
    assignment policy better than -10 with discrete and continuous actions."""
    game = scenarios.make("spread", num_envs=1024, seed=0)
    assert abs(_mean_return(game, random_policy(1)) + 27.0) < 1.5
    assert _mean_return(game, optimal_assignment_policy) > -10.0
    continuous = scenarios.make("spread", num_envs=256, seed=0, continuous_actions=True)
    assert _mean_return(continuous, optimal_assignment_policy) > -10.0


def test_spread_rewards_zero_when_every_landmark_is_covered_without_overlaps():
    game = scenarios.make("spread", num_envs=1, seed=0, dtype=torch.float64)
    game.reset()
    landmarks = torch.tensor([[-0.6, 0.0], [0.0, 0.5], [0.6, 0.0]], dtype=torch.float64)
    game.world.position = torch.cat([landmarks, landmarks])[None].clone()
    _, rewards, *_ = game.step({agent: torch.zeros(1, dtype=torch.long) for agent in game.possible_agents})
    assert all(float(r) == 0.0 for r in rewards.values())
    # Two agents on one landmark: the uncovered one costs its nearest distance, each overlap 1.
    game.world.position = torch.cat([landmarks[[0, 0, 2]], landmarks])[None].clone()
    game.world.velocity.zero_()
    _, rewards, *_ = game.step({agent: torch.zeros(1, dtype=torch.long) for agent in game.possible_agents})
    uncovered = float(torch.linalg.norm(landmarks[1] - landmarks[0]))  # nearest agent to landmark 1
    moved = game.world.position[0, :3]
    nearest = sum(float(torch.linalg.norm(moved - lm, dim=1).min()) for lm in landmarks)
    assert nearest == pytest.approx(uncovered, abs=0.05)
    assert float(rewards["agent_0"]) == pytest.approx(0.5 * -nearest + 0.5 * -1.0)
    assert float(rewards["agent_2"]) == pytest.approx(0.5 * -nearest)


def test_tag_rewards_follow_mpe2s_rules():
    game = scenarios.make("tag", num_envs=1, seed=0, dtype=torch.float64, num_obstacles=0)
    game.reset()
    # adversary_0 and adversary_1 touch the prey; adversary_2 is far; the prey is out at x = 1.2.
    game.world.position = torch.tensor([[[1.15, 0.0], [1.25, 0.05], [-1.0, -1.0], [1.2, 0.0]]], dtype=torch.float64)
    game.world.velocity.zero_()
    _, rewards, *_ = game.step({agent: torch.zeros(1, dtype=torch.long) for agent in game.possible_agents})
    x = float(game.world.position[0, 3, 0])
    assert float(rewards["adversary_2"]) == 20.0 == float(rewards["adversary_0"])
    assert float(rewards["agent_0"]) == pytest.approx(-20.0 - min(math.exp(2 * x - 2), 10.0))
    values = torch.tensor([0.0, 0.85, 0.95, 1.0, 1.5, 3.0], dtype=torch.float64)
    expected = [0.0, 0.0, 0.5, math.exp(0.0), math.exp(1.0), 10.0]
    torch.testing.assert_close(boundary_penalty(values), torch.tensor(expected, dtype=torch.float64))


def test_adversary_rewards_follow_mpe2s_rules():
    game = scenarios.make("adversary", num_envs=1, seed=0, dtype=torch.float64)
    game.reset()
    game.goal = torch.tensor([1])
    # adversary, agent_0, agent_1, landmark 0, landmark 1 (the goal)
    game.world.position = torch.tensor([[[0.0, 0.0], [0.3, 0.4], [1.0, 1.0], [0.5, 0.5], [0.0, 1.0]]],
                                       dtype=torch.float64)
    game.world.velocity.zero_()
    observations, rewards, *_ = game.step({agent: torch.zeros(1, dtype=torch.long) for agent in game.possible_agents})
    assert float(rewards["adversary_0"]) == pytest.approx(-1.0)
    # The nearer good agent (agent_0, at distance sqrt(0.45)) counts; the adversary is at 1.
    assert float(rewards["agent_0"]) == pytest.approx(1.0 - math.sqrt(0.45)) == float(rewards["agent_1"])
    torch.testing.assert_close(observations["agent_0"][0, :2], torch.tensor([-0.3, 0.6], dtype=torch.float64))


def _navigation(**settings):
    game = scenarios.make("navigation", num_envs=3, seed=5, dtype=torch.float64, **settings)
    game.reset()
    return game


def test_navigation_counts_collisions_like_a_brute_force_count():
    game = _navigation(num_agents=12, num_obstacles=5, agent_size=0.15, arena_size=0.6)
    generator = torch.Generator().manual_seed(0)
    totals = torch.zeros(3, dtype=torch.long)
    for _ in range(6):
        actions = {a: torch.rand(3, 5, generator=generator, dtype=torch.float64) for a in game.possible_agents}
        _, _, _, _, infos = game.step(actions)
        position, sizes = game.world.position, game.world.sizes
        for copy in range(3):
            pairs = 0
            for i in range(12):
                mine = 0
                for j in range(12 + 5):
                    if j == i:
                        continue
                    touching = float(torch.linalg.norm(position[copy, i] - position[copy, j])) < float(sizes[i] + sizes[j])
                    mine += touching
                    pairs += touching and (j > i)
                assert int(infos[f"agent_{i}"]["collisions"][copy]) == mine
            totals[copy] += pairs
    assert torch.equal(infos["agent_0"]["episode_collisions"], totals)
    assert int(totals.sum()) > 0


def test_navigation_observes_the_nearest_agents_within_the_sensing_radius():
    game = _navigation(num_agents=30, num_obstacles=0, max_neighbours=3, sensing_radius=0.4, max_obstacles_seen=0)
    observations, _ = game.reset()
    position = game.world.position
    for copy in range(3):
        for i in (0, 7, 29):
            offsets = [(position[copy, j] - position[copy, i]) for j in range(30) if j != i]
            ranked = sorted(offsets, key=lambda o: float(torch.linalg.norm(o)))[:3]
            seen = observations[f"agent_{i}"][copy, 6:].view(3, 3)
            for slot, offset in enumerate(ranked):
                if float(torch.linalg.norm(offset)) <= 0.4:
                    torch.testing.assert_close(seen[slot, :2], offset)
                    assert float(seen[slot, 2]) == 1.0
                else:
                    assert seen[slot].abs().sum() == 0


def test_navigation_terminates_when_every_agent_is_home():
    game = _navigation(num_agents=4, num_obstacles=0)
    goals = game.world.position[:, 4:8].clone()
    game.world.position = torch.cat([goals, goals], dim=1)
    game.world.velocity.zero_()
    _, rewards, terminated, truncated, infos = game.step(
        {a: torch.zeros(3, 5, dtype=torch.float64) for a in game.possible_agents}
    )
    assert bool(terminated["agent_0"].all()) and not truncated["agent_0"].any()
    assert int(game.episodes.min()) == 1


def test_navigation_scales_to_hundreds_of_agents_and_goal_seeking_gets_home():
    game = scenarios.make("navigation", num_envs=2, seed=0, num_agents=256, num_obstacles=16)
    observations, _ = game.reset()
    assert observations["agent_255"].shape == (2, 6 + 3 * 4 + 3 * 2)
    start = game.goal_distance().mean()
    for _ in range(60):  # top speed 1 for 6 time units: enough for most, in an arena of half-width sqrt(32)
        observations, *_ = game.step(goal_seeking_policy(game, observations))
    assert float(game.goal_distance().mean()) < 0.35 * float(start)
