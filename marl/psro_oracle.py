"""PSRO on two-team Markov games: MADDPG best responses and simulated meta-game entries.

Lanctot et al., "A Unified Game-Theoretic Approach to Multiagent Reinforcement Learning"
(NeurIPS 2017), with deep reinforcement-learning oracles as in its experiments;
:class:`MarkovPopulations` is the policy space that ``solvers.psro.PSRO`` runs on (the
loop, the meta-solvers and saving stay there). The two players of the meta-game are the
game's two teams (``marl.population.teams_of``: adversaries and good agents in ``tag``).

- A population starts with uniform random play (``marl.population.UniformMember``).
- Oracle, for team ``i``: MADDPG (``marl.train.train``) on the game as team ``i`` sees it
  while the other team's agents play its sigma-mixture of frozen members, a member drawn
  per copy and episode (``marl.population.VersusPopulation``). It starts from scratch, or
  with ``warm_start`` from the actors of team ``i``'s last trained member. Its seed is a
  function of the run's seed, the team and the populations' sizes, so a resumed run trains
  the same best responses as an uninterrupted one.
- Meta-game entries: for each pair of members, ``sims_per_entry`` episodes in one batched
  game (``games.policy.team_returns``, the episode loop the tournaments' Markov arena
  plays), every pair on the same random streams (common random numbers); an entry is the
  team's mean return per agent.
- There is no exact NashConv: each iteration reports ``PSRO.estimated_nash_conv``, what
  the new best responses gain over sigma in the grown meta-game.

Shapes: the meta-game is ``(2, K_0, K_1)`` float64; a chooser's assignment ``(2, B)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from marl.errors import TrainingError
from marl.maddpg import MADDPGConfig
from marl.population import (
    PopulationPolicy,
    TrainedMember,
    UniformMember,
    VersusPopulation,
    member_from_payload,
    sigma_draws,
    teams_of,
)

Tensor = torch.Tensor


@dataclass(frozen=True)
class TeamMixture:
    """A team's sigma-mixture: its members and their weights ``(K,)``."""

    members: tuple
    weights: Tensor


class MarkovPopulations:
    """The policy space of PSRO on a two-team Markov game (see the module docstring).

    Args:
        game_name: a scenario (``tag``) or ``pettingzoo:MODULE``, as ``gamelab train`` takes.
        settings: the scenario's settings.
        oracle: the MADDPG settings of every best response (``env_steps``, ``num_envs``...);
            its ``seed`` is replaced per best response.
        sims_per_entry: episodes per meta-game entry.
        seed: the run's seed (games, draws and the oracles' seeds derive from it).
        warm_start: start each best response from the team's last trained member.
        device: where games and networks live.
        progress: called as ``progress(team, stats)`` during each best response's training.
    """

    exact = False

    def __init__(self, game_name: str, settings: dict[str, Any] | None = None, *,
                 oracle: MADDPGConfig | None = None, sims_per_entry: int = 64, seed: int = 0,
                 warm_start: bool = False, device: torch.device | str = "cpu",
                 progress: Callable[[int, dict[str, float]], None] | None = None) -> None:
        from marl.envs import make_game, resolved_settings

        if isinstance(sims_per_entry, bool) or not isinstance(sims_per_entry, int) or sims_per_entry < 1:
            raise TrainingError(f"sims_per_entry must be a positive integer, got {sims_per_entry!r}")
        self.game_name = game_name
        self.settings = dict(settings or {})
        self.device = torch.device(device)
        self.probe = make_game(game_name, 1, device=self.device, seed=seed, settings=self.settings)
        self.teams = teams_of(self.probe)
        if len(self.teams) != 2:
            raise TrainingError(f"{game_name}: PSRO plays a game of two teams; its agents form {len(self.teams)}")
        self.num_players = 2
        self.oracle = oracle or MADDPGConfig()
        self.sims_per_entry = sims_per_entry
        self.seed = int(seed)
        self.warm_start = warm_start
        self.progress = progress
        self.recorded_settings = resolved_settings(game_name, self.settings)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for Ray workers without the progress callback (it draws in this process's terminal)."""
        return {**self.__dict__, "progress": None}

    # ----------------------------------------------------------------------------------
    # Members and mixtures

    def uniform(self, player: int) -> UniformMember:
        return UniformMember(self.teams[player], self.seed * 2 + player)

    def mixture(self, members: list[Any], weights: Tensor, player: int) -> TeamMixture:
        return TeamMixture(tuple(members), weights.detach().to("cpu", torch.float64))

    def profile(self, mixtures: list[TeamMixture]) -> PopulationPolicy:
        """Both mixtures as one policy of the whole game (members drawn per copy and episode)."""
        return PopulationPolicy(self.teams, [list(mixture.members) for mixture in mixtures],
                                sigma_draws([mixture.weights for mixture in mixtures], self.seed + 17))

    def same(self, first: Any, second: Any, player: int) -> bool:
        return first is second

    # ----------------------------------------------------------------------------------
    # The oracle

    def oracle_seed(self, player: int, mixtures: list[Any]) -> int:
        """The best response's seed: the run's seed, the team and the sizes of what it answers."""
        sizes = [len(m.members) if isinstance(m, TeamMixture) else 0 for m in mixtures]
        return (self.seed * 1_000_003 + 10_007 * sizes[1 - player] + 101 * sizes[player] + player) % (2**31 - 1)

    def best_response(self, mixtures: list[Any], player: int) -> TrainedMember:
        """MADDPG for team ``player`` against the other team's sigma-mixture (members frozen)."""
        from marl.envs import make_game
        from marl.train import policy_payload, train

        opponent = 1 - player
        mixture = mixtures[opponent]
        populations: list[Any] = [None, None]
        populations[opponent] = list(mixture.members)
        weights: list[Any] = [None, None]
        weights[opponent] = mixture.weights
        seed = self.oracle_seed(player, mixtures)
        config = dataclasses.replace(self.oracle, seed=seed)
        game = make_game(self.game_name, config.num_envs, device=self.device, seed=seed, settings=self.settings)
        versus = VersusPopulation(game, self.teams[player], PopulationPolicy(self.teams, populations,
                                                                            sigma_draws(weights, seed + 1)))
        start = self._warm_start(mixtures[player])
        callback = None if self.progress is None else (lambda stats, learner: self.progress(player, stats))
        result = train(versus, config, device=self.device, callback=callback, initial_actors=start)
        return TrainedMember(policy_payload(result.learner, self.game_name, self.recorded_settings), self.device,
                             f"team {player}'s best response")

    def _warm_start(self, own: Any) -> dict[str, Tensor] | None:
        """The actors of the team's last trained member, when warm-starting."""
        if not self.warm_start:
            return None
        members = own.members if isinstance(own, TeamMixture) else (own,)
        trained = [member for member in members if isinstance(member, TrainedMember)]
        return trained[-1].policy.learner.actors.state_dict() if trained else None

    # ----------------------------------------------------------------------------------
    # Meta-game entries

    def features(self, members: list[Any], player: int) -> list[Any]:
        return list(members)

    def block(self, features: list[list[Any]]) -> Tensor:
        """``(2, k_0, k_1)``: each team's mean return per agent for every pair of the given members."""
        from games.policy import team_returns
        from marl.envs import make_game

        first, second = features
        sims = self.sims_per_entry
        pairs = len(first) * len(second)
        game = make_game(self.game_name, pairs * sims, device=self.device, seed=self.seed, settings=self.settings)
        pair = torch.arange(pairs * sims, device=self.device) // sims
        assignment = torch.stack([pair // len(second), pair % len(second)])
        policy = PopulationPolicy(self.teams, [first, second], lambda _game: assignment)
        episodes = torch.arange(sims, device=self.device).repeat(pairs)  # every pair plays the same streams
        returns = team_returns(policy, game, self.seed + 1, self.teams, options={"streams": episodes})
        return returns.reshape(2, len(first), len(second), sims).mean(-1).to("cpu", torch.float64)

    # ----------------------------------------------------------------------------------
    # Saving

    def record(self) -> dict[str, Any]:
        """What a run folder keeps of this policy space, so that a resumed run or a tournament rebuilds it."""
        return {"settings": self.settings, "oracle": dataclasses.asdict(self.oracle),
                "sims_per_entry": self.sims_per_entry, "seed": self.seed, "warm_start": self.warm_start}

    @classmethod
    def from_record(cls, game_name: str, record: Any, device: torch.device | str = "cpu",
                    source: str = "the saved run") -> MarkovPopulations:
        """:meth:`record`'s output back as a policy space; raises ``TrainingError`` naming ``source``."""
        fields = {"settings", "oracle", "sims_per_entry", "seed", "warm_start"}
        if not isinstance(record, dict) or set(record) != fields or not isinstance(record["oracle"], dict) \
                or not isinstance(record["settings"], dict) or not isinstance(record["warm_start"], bool) \
                or isinstance(record["seed"], bool) or not isinstance(record["seed"], int):
            raise TrainingError(f"{source}: not a PSRO run of a Markov game (its oracle record is missing or malformed)")
        return cls(game_name, record["settings"], oracle=MADDPGConfig.from_dict(record["oracle"]),
                   sims_per_entry=record["sims_per_entry"], seed=record["seed"], warm_start=record["warm_start"],
                   device=device)

    def pack(self, population: list[Any], player: int) -> list[dict[str, Any]]:
        return [member.payload() for member in population]

    def unpack(self, saved: Any, player: int) -> list[Any]:
        if not isinstance(saved, list) or not saved:
            raise ValueError(f"team {player}'s population is not a list of saved policies")
        members = [member_from_payload(payload, self.teams[player], self.device, f"team {player}'s member {index}")
                   for index, payload in enumerate(saved)]
        for index, member in enumerate(members):
            if isinstance(member, TrainedMember) and member.game_name != self.game_name:
                raise ValueError(f"team {player}'s member {index} was trained on {member.game_name!r}, "
                                 f"not {self.game_name!r}")
        return members


__all__ = ["MarkovPopulations", "TeamMixture"]
