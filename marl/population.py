"""Populations of team policies on two-team Markov games: members, mixtures and opponents.

PSRO on a Markov game (``marl.psro_oracle``) keeps a population per team, a team being the
agents of one role (``games.markov.agent_role``: ``adversary_*`` and ``agent_*`` in
``tag``). A member acts for its team's agents only, through the policy protocol
(``games.policy``):

- :class:`UniformMember`: uniform random actions. They are counter-based, like the games'
  own randomness (``games.streams``): copy ``c`` draws its actions at step ``t`` of episode
  ``e`` from the stream ``(seed, stream of c, e, t)``, so a copy acts the same in a batch of
  any size;
- :class:`TrainedMember`: actors trained by MADDPG for the team's agents, kept as the
  payload of a policy file (``marl.train.policy_payload``), so it saves with
  ``weights_only=True``.

:class:`PopulationPolicy` plays every team's population in one batched game, choosing the
member of each team in each copy: drawn from the team's sigma at the start of each episode
(again from the copy's stream, so the draw does not depend on the batch), or a fixed
``(T, B)`` assignment (one meta-game entry per block of copies).

:class:`VersusPopulation` is the game one team trains on: the other teams' agents act from
a :class:`PopulationPolicy` and drop out of the observations, rewards and spaces, so
``marl.train.train`` sees a game of the learning team alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from games import streams

Tensor = torch.Tensor


def teams_of(game: Any) -> list[list[str]]:
    """The game's agents grouped by role, in order of first appearance (``games.markov.teams``)."""
    from games.markov import teams

    return list(teams(game.possible_agents).values())


class UniformMember:
    """Uniform random actions for ``agents``, counter-based per copy, episode and step."""

    def __init__(self, agents: Sequence[str], seed: int) -> None:
        self.agents = list(agents)
        self.seed = int(seed)

    def __call__(self, game: Any, observations: Mapping[str, Tensor]) -> dict[str, Tensor]:
        del observations
        sizes = [game.action_size(agent) for agent in self.agents]
        # (episode, step) as one counter: each step of each episode has its own stream.
        keys = streams.stream_keys(self.seed, game.copy_streams, game.episodes * (game.max_steps + 1) + game.steps)
        draws = streams.uniform(keys, sum(sizes) if game.continuous else len(sizes), torch.float64)
        actions, start = {}, 0
        for agent, size in zip(self.agents, sizes):
            if game.continuous:
                values = game.action_low + (game.action_high - game.action_low) * draws[:, start:start + size]
                actions[agent] = values.to(game.dtype)
                start += size
            else:
                actions[agent] = (draws[:, start] * size).long().clamp_(max=size - 1)
                start += 1
        return actions

    def payload(self) -> dict[str, Any]:
        return {"kind": "uniform", "agents": list(self.agents), "seed": self.seed}


class TrainedMember:
    """Trained actors of a team (a policy file's payload), acting greedily.

    Args:
        payload: what ``marl.train.policy_payload`` returns for a learner of the team's agents.
        device: where the actors run.
        label: names the member in errors (``population/team0_003``).
    """

    def __init__(self, payload: dict[str, Any], device: torch.device | str = "cpu", label: str = "member") -> None:
        from marl.train import load_policy

        self._payload = payload
        self.policy = load_policy(label, saved=payload, device=device)
        self.agents = list(self.policy.learner.spec.agents)
        game = payload.get("game")
        self.game_name = game.get("name") if isinstance(game, dict) else None

    def __call__(self, game: Any, observations: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.policy(game, observations)

    def payload(self) -> dict[str, Any]:
        return {"kind": "maddpg", **self._payload}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to and from Ray workers) as its payload; the actors are rebuilt on the CPU."""
        return {"payload": self._payload}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["payload"])


def member_from_payload(payload: Any, agents: Sequence[str], device: torch.device | str, label: str) -> Any:
    """A member back from its ``payload()``; raises ``ValueError`` naming ``label`` when it does not fit ``agents``."""
    from games.errors import GamelabError

    if not isinstance(payload, dict) or payload.get("kind") not in ("uniform", "maddpg"):
        raise ValueError(f"{label} is not a saved team policy")
    if payload["kind"] == "uniform":
        seed = payload.get("seed")
        if payload.get("agents") != list(agents) or isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"{label} is a random policy of agents {payload.get('agents')}, not of {list(agents)}")
        return UniformMember(agents, seed)
    body = {key: value for key, value in payload.items() if key != "kind"}
    try:
        member = TrainedMember(body, device, label)
    except (GamelabError, KeyError, TypeError) as error:
        raise ValueError(f"{label}: {error}") from None
    if member.agents != list(agents):
        raise ValueError(f"{label} acts for agents {member.agents}, not for {list(agents)}")
    return member


def sigma_draws(weights: Sequence[Tensor | None], seed: int) -> Callable[[Any], Tensor]:
    """A chooser for :class:`PopulationPolicy`: each team's member drawn from its sigma per copy and episode.

    ``weights[t]`` is ``(K_t,)`` (None for a team that the policy does not play). The draw
    of copy ``c`` in episode ``e`` reads the stream ``(seed, stream of c, e)``.
    """
    cumulative = [None if w is None else torch.cumsum(w.to(torch.float64), 0) / float(w.sum()) for w in weights]

    def choose(game: Any) -> Tensor:
        draws = streams.uniform(streams.stream_keys(seed, game.copy_streams, game.episodes), len(weights),
                                torch.float64)
        chosen = torch.zeros(len(weights), game.num_envs, dtype=torch.int64, device=game.device)
        for team, totals in enumerate(cumulative):
            if totals is not None:
                totals = totals.to(game.device)
                chosen[team] = torch.searchsorted(totals, draws[:, team].contiguous(), right=True).clamp_(
                    max=totals.numel() - 1)
        return chosen

    return choose


class PopulationPolicy:
    """Every team's population as one policy of the whole game (the policy protocol).

    Args:
        teams: the agents of each team (``teams_of``).
        populations: each team's members; None for a team this policy does not act for.
        choose: ``choose(game) -> (T, B)`` int64, the member of each team in each copy
            (:func:`sigma_draws`, or a fixed assignment).
    """

    def __init__(self, teams: Sequence[Sequence[str]], populations: Sequence[Sequence[Any] | None],
                 choose: Callable[[Any], Tensor]) -> None:
        self.teams = [list(team) for team in teams]
        self.populations = populations
        self.choose = choose

    def __call__(self, game: Any, observations: Mapping[str, Tensor]) -> dict[str, Tensor]:
        chosen = self.choose(game)
        actions: dict[str, Tensor] = {}
        for team, (agents, members) in enumerate(zip(self.teams, self.populations)):
            if members is None:
                continue
            column = chosen[team]
            for index in torch.unique(column).tolist():
                acted = members[index](game, observations)
                playing = column == index
                for agent in agents:
                    action = acted[agent]
                    if agent not in actions:
                        actions[agent] = action
                    else:
                        actions[agent] = torch.where(playing[:, None] if action.dim() == 2 else playing, action,
                                                     actions[agent])
        return actions


class VersusPopulation:
    """``game`` as the team ``agents`` sees it while the other agents play ``opponents``.

    It has the ``MarkovGame`` interface that ``marl.train.train`` uses, restricted to
    ``agents``: ``reset``, ``step``, the spaces, and the inner game's counters.
    """

    def __init__(self, game: Any, agents: Sequence[str], opponents: Callable) -> None:
        self.game = game
        self.possible_agents = list(agents)
        self.agents = list(agents)
        self.opponents = opponents
        self._others = [agent for agent in game.possible_agents if agent not in self.possible_agents]
        self._observations: dict[str, Tensor] | None = None
        for name in ("num_envs", "max_steps", "device", "dtype", "continuous", "action_low", "action_high"):
            setattr(self, name, getattr(game, name))

    @property
    def steps(self) -> Tensor:
        return self.game.steps

    @property
    def episodes(self) -> Tensor:
        return self.game.episodes

    @property
    def copy_streams(self) -> Tensor:
        return self.game.copy_streams

    def observation_space(self, agent: str) -> Any:
        return self.game.observation_space(agent)

    def action_space(self, agent: str) -> Any:
        return self.game.action_space(agent)

    def action_size(self, agent: str) -> int:
        return self.game.action_size(agent)

    def _mine(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {agent: values[agent] for agent in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        observations, infos = self.game.reset(seed=seed, options=options)
        self._observations = observations
        return self._mine(observations), self._mine(infos)

    def step(self, actions: Mapping[str, Tensor]) -> tuple[dict, dict, dict, dict, dict]:
        others = self.opponents(self.game, self._observations)
        joint = {**{agent: others[agent] for agent in self._others}, **actions}
        observations, rewards, terminated, truncated, infos = self.game.step(joint)
        self._observations = observations
        return (self._mine(observations), self._mine(rewards), self._mine(terminated), self._mine(truncated),
                self._mine(infos))


__all__ = ["PopulationPolicy", "TrainedMember", "UniformMember", "VersusPopulation", "member_from_payload",
           "sigma_draws", "teams_of"]
