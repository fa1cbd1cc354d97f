"""Episode returns of a policy on a batched Markov game.

A policy is gamelab's policy protocol: ``policy(game, observations) -> actions``, with the
batched ``MarkovGame`` formats on both sides (``games.render.random_policy`` for uniform
random actions, ``marl.maddpg.TrainedPolicy`` for trained actors, scripted policies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def episode_returns(policy: Callable[[Any, dict[str, torch.Tensor]], dict[str, torch.Tensor]], game: Any,
                    seed: int) -> torch.Tensor:
    """Plays the first episode of every copy of ``game`` from ``reset(seed)``.

    Returns:
        ``(B,)`` float64 on the CPU: each copy's return per agent, the sum over the episode of
        the mean reward of its agents (mpe2's scale for MPE tasks).
    """
    observations, _ = game.reset(seed=seed)
    totals = torch.zeros(game.num_envs, dtype=torch.float64, device=game.device)
    running = torch.ones(game.num_envs, dtype=torch.bool, device=game.device)
    while bool(running.any()):
        observations, rewards, terminated, truncated, _ = game.step(policy(game, observations))
        step_reward = torch.stack([rewards[agent] for agent in game.possible_agents]).to(torch.float64).mean(0)
        totals += torch.where(running, step_reward, torch.zeros_like(step_reward))
        for agent in game.possible_agents:
            running &= ~(terminated[agent] | truncated[agent])
    return totals.cpu()
