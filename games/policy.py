"""The policy protocol of batched Markov games, and the one loop that plays episodes.

A policy is any callable ``policy(game, observations) -> actions`` with the batched
``MarkovGame`` formats on both sides: ``observations`` is ``{agent: Tensor[B, ...]}`` and
the policy returns ``{agent: Tensor[B]}`` (discrete actions) or ``{agent: Tensor[B, A]}``
(continuous ones), on ``game.device``. Scripted policies (``scenarios.spread``), trained
actors (``marl.maddpg.TrainedPolicy``), tournament players and :func:`random_policy` all
have this shape, so evaluation, rendering and tournaments play them the same way.

:func:`team_returns` is the one loop that plays the first episode of every copy and sums
rewards; :func:`episode_returns` is its one-team case.

A ``policy_factory`` is a function that *builds* a policy from keyword arguments.
Tournament configs may name one with ``arguments``; the :func:`policy_factory` decorator
marks it, and nothing else is called with arguments taken from a file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

Policy = Callable[[Any, dict[str, torch.Tensor]], dict[str, torch.Tensor]]

FACTORY_MARK = "__gamelab_policy_factory__"


def policy_factory(function: Callable) -> Callable:
    """Marks ``function`` as a policy factory: ``function(**arguments)`` returns a player.

    Only marked functions are called with the ``arguments`` of a tournament config.
    """
    setattr(function, FACTORY_MARK, True)
    return function


def is_policy_factory(function: Any) -> bool:
    """Whether ``function`` was marked with :func:`policy_factory`."""
    return callable(function) and getattr(function, FACTORY_MARK, False) is True


def random_policy(seed: int = 0) -> Policy:
    """A policy that picks uniformly random actions from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)

    def policy(game: Any, observations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        del observations
        actions = {}
        for agent in game.possible_agents:
            space = game.action_space(agent)
            if game.continuous:
                draw = torch.rand(game.num_envs, space.shape[0], generator=generator, dtype=torch.float64)
                actions[agent] = (space.low[0] + draw * (space.high[0] - space.low[0])).to(game.dtype).to(game.device)
            else:
                actions[agent] = torch.randint(space.n, (game.num_envs,), generator=generator).to(game.device)
        return actions

    return policy


def team_returns(policy: Policy, game: Any, seed: int, teams: Sequence[Sequence[str]], *,
                 options: dict[str, Any] | None = None,
                 after_step: Callable[[torch.Tensor, dict[str, Any]], None] | None = None) -> torch.Tensor:
    """Plays the first episode of every copy of ``game`` from ``reset(seed, options)``.

    Args:
        policy: the policy protocol; it is called once per step with every copy's observations.
        game: a batched ``MarkovGame``.
        seed: the reset seed.
        teams: groups of agent names; each group's reward per step is the mean reward of its agents.
        options: passed to ``game.reset`` (``{"streams": ...}`` picks the copies' random streams).
        after_step: called after every step with the ``(B,)`` bool mask of copies whose first
            episode is still running and the step's ``infos`` (a tournament uses the mask to ignore
            actions in finished copies; ``scenarios.navigation.episode_metrics`` reads the infos).

    Returns:
        ``(len(teams), B)`` float64 on the game's device: each team's return per agent, the
        sum over the episode of the team's mean reward (mpe2's scale for MPE tasks). Steps
        after a copy's episode ended do not count.
    """
    observations, _ = game.reset(seed=seed, options=options)
    totals = torch.zeros(len(teams), game.num_envs, dtype=torch.float64, device=game.device)
    running = torch.ones(game.num_envs, dtype=torch.bool, device=game.device)
    while bool(running.any()):
        observations, rewards, terminated, truncated, infos = game.step(policy(game, observations))
        for index, team in enumerate(teams):
            reward = torch.stack([rewards[agent] for agent in team]).to(torch.float64).mean(0)
            totals[index] += torch.where(running, reward, torch.zeros_like(reward))
        for agent in game.possible_agents:
            running &= ~(terminated[agent] | truncated[agent])
        if after_step is not None:
            after_step(running, infos)
    return totals


def episode_returns(policy: Policy, game: Any, seed: int) -> torch.Tensor:
    """Each copy's first-episode return per agent, all agents as one team.

    Returns:
        ``(B,)`` float64 on the CPU (see :func:`team_returns`).
    """
    return team_returns(policy, game, seed, [list(game.possible_agents)])[0].cpu()


__all__ = ["Policy", "episode_returns", "is_policy_factory", "policy_factory", "random_policy", "team_returns"]
