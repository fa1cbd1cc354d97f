"""NeuPL on two-team Markov games: one conditional MADDPG learner for a whole population.

Liu, Marris, Hennes, Merel, Heess and Graepel, "NeuPL: Neural Population Learning", ICLR
2022 (Algorithm 1), on batched Markov games (``tag``) with MADDPG (``marl.maddpg``) as the
learner; Simplex-NeuPL's mixtures (Liu et al., ICML 2022) as an option. The meta-graph
solvers, unique rows and the meta-Nash mixture are ``marl.neupl``'s, which runs the same
algorithm on game trees with exact payoffs.

The symmetrized game. A policy plays either team (``marl.population.teams_of``: adversaries
or good agents in ``tag``). Policy i is the learner's actors conditioned on ``sigma_i``,
row i of the interaction graph ``Sigma`` ``(N, N)``: every agent's observation is extended
by the ``(N,)`` mixture its team's policy is conditioned on. A zero row is uniform random
play (the first population of PSRO on Markov games, ``marl.psro_oracle``). A copy's payoff is
zero-sum, ``z = (R_0 - R_1) / 2``, half team 0's return per agent minus team 1's (in
``tag`` the rewards are zero-sum but for the good agents' boundary penalty), and
``U[i, j] = (Z[i, j] - Z[j, i]) / 2`` where ``Z[a, b]`` is the mean ``z`` with policy a as
team 0 and policy b as team 1: the seats alternate, and ``U`` is antisymmetric.

One iteration (:meth:`MarkovNeuPL.step`):

1) train, ``steps_per_iteration`` transitions from the ``B`` copies of one batched game, reset
   at the start of the iteration. At the start of each of its episodes a copy draws a learner
   ``l`` (uniform over the unique non-zero rows of Sigma), the learner's team (a fair coin)
   and an opponent ``j ~ sigma_l``. With ``simplex = p`` a copy instead conditions its
   learner, with probability p, on a mixture from the flat Dirichlet over the unique
   policies and draws its opponent from that mixture (Simplex-NeuPL). The learner's agents
   explore (MADDPG's exploration); the opponent's agents act greedily from the same actors
   conditioned on ``sigma_j`` (or uniformly at random for a zero row). Every
   ``transitions_per_update`` transitions, one MADDPG update trains on the learner's rows
   only (the replay buffer records who acted: ``marl.replay``), so the opponents are fixed
   within the update, as in NeuPL;
2) evaluate: ``U`` ``(N, N)`` from ``sims_per_entry`` greedy episodes of every ordered pair of
   unique policies, in one batched game whose pairs all play the same random streams (common
   random numbers);
3) ``Sigma <- F(U)``. The population the run reports (``population_sigma``, the meta-Nash
   mixture, tournament players) is the one ``U`` measured: the actors conditioned on the
   rows they were trained with.

There is no exact NashConv. Each iteration records ``estimated_nash_conv``, as PSRO on
Markov games does: what the last policy gains over the mixture it answers, both seats,
``2 U[N-1] . sigma_{N-1}`` (the mixture's own value is 0 in the antisymmetric meta-game). With
``psro-n`` that mixture is the Nash equilibrium of the other policies, as PSRO's newest best
responses answer its meta-Nash (a maximum over every learner would be dominated by the first
policy's gain over random play).

Shapes: ``conditions`` ``(2, B, N)`` (team, copy, mixture); joint observations ``(B,
sum_k (o_k + N))`` in the game's agent order; joint actions ``(B, sum_k a_k)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from marl.maddpg import MADDPG, GameSpec, MADDPGConfig
from marl.neupl import (
    NeuPLError,
    NeuPLIterate,
    PopulationSettings,
    dirichlet_mixtures,
    interaction_graph,
    learner_rows,
    saved_history,
    symmetric_meta_solver,
    unique_rows,
)
from marl.population import UniformMember, sigma_draws, teams_of
from marl.replay import ReplayBuffer

Tensor = torch.Tensor

STATE_FORMAT = "gamelab.neupl-markov"
STATE_VERSION = 1


def default_learner() -> MADDPGConfig:
    """MADDPG's settings for NeuPL: openai/maddpg's, on 64 copies, with a buffer a checkpoint can hold."""
    return MADDPGConfig(num_envs=64, buffer_size=200_000, learning_starts=6_400, checkpoint_minutes=0)


@dataclass(frozen=True)
class MarkovNeuPLConfig(PopulationSettings):
    """The settings of a NeuPL run on a Markov game (every field is recorded in its state)."""

    steps_per_iteration: int = 50_000
    """Transitions collected (summed over copies) between meta-graph updates."""
    sims_per_entry: int = 16
    """Episodes per ordered pair of policies when U is measured."""
    seed: int = 0
    learner: MADDPGConfig = field(default_factory=default_learner)
    """MADDPG's settings (its ``env_steps`` is unused: iterations set the budget)."""

    def check(self) -> None:
        """Raises :class:`NeuPLError` naming the first setting that does not fit."""
        self.check_population()
        for name in ("steps_per_iteration", "sims_per_entry"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NeuPLError(f"{name} {value!r}: must be a positive integer")
        if self.learner.ensemble_size != 1:
            raise NeuPLError("NeuPL conditions one set of actors on Sigma's rows; its learner takes no ensembles")

    def record(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["learner"] = {**values["learner"], "hidden_sizes": list(self.learner.hidden_sizes)}
        return values

    @classmethod
    def from_record(cls, record: Any, source: str = "the saved run") -> MarkovNeuPLConfig:
        from games.errors import GamelabError

        names = {item.name for item in dataclasses.fields(cls)}
        if not isinstance(record, dict) or set(record) != names or not isinstance(record["learner"], dict):
            raise NeuPLError(f"{source}: its settings are malformed")
        try:
            config = cls(**{**record, "learner": MADDPGConfig.from_dict(record["learner"])})
            config.check()
        except (TypeError, ValueError, GamelabError) as error:
            raise NeuPLError(f"{source}: its settings are malformed ({error})") from None
        return config


class MarkovNeuPL:
    """A NeuPL run on a two-team Markov game; see the module docstring.

    Args:
        game_name: a scenario (``tag``) or ``pettingzoo:MODULE``, as ``gamelab train`` takes.
        settings: the scenario's settings.
        config: the run's settings.
        device: where the games, the actors and the replay buffer live.
        start: measure U of the untrained actors and set Sigma from it (False: a run about to be
            loaded with :meth:`load_state_dict`).
    """

    def __init__(self, game_name: str, settings: dict[str, Any] | None = None,
                 config: MarkovNeuPLConfig | None = None, device: torch.device | str = "cpu",
                 start: bool = True) -> None:
        from marl.envs import make_game, resolved_settings

        self.config = config = config or MarkovNeuPLConfig()
        config.check()
        self.game_name = game_name
        self.settings = dict(settings or {})
        self.recorded_settings = resolved_settings(game_name, self.settings)
        self.device = torch.device(device)
        learner_config = dataclasses.replace(config.learner, seed=config.seed)
        self.game = make_game(game_name, learner_config.num_envs, device=self.device, seed=config.seed,
                              settings=self.settings)
        self.teams = teams_of(self.game)
        if len(self.teams) != 2:
            raise NeuPLError(f"{game_name} has {len(self.teams)} team{'' if len(self.teams) == 1 else 's'} ({', '.join(t[0] for t in self.teams)}); "
                             "NeuPL on a Markov game needs two, one per seat")
        size = config.population
        base = GameSpec.of(self.game)
        self.spec = dataclasses.replace(base, observation_sizes=tuple(s + size for s in base.observation_sizes))
        self.team_of = torch.tensor([0 if agent in self.teams[0] else 1 for agent in self.spec.agents],
                                    device=self.device)
        self.learner = MADDPG(self.spec, learner_config, self.device)
        self._buffer: ReplayBuffer | None = None
        self.uniform = [UniformMember(team, config.seed * 2 + index) for index, team in enumerate(self.teams)]
        self.draws = torch.Generator().manual_seed(config.seed + 2)
        self.transitions = 0
        self.updates = 0
        self.history: list[NeuPLIterate] = []
        self._seconds = 0.0
        zero = torch.zeros(size, size, dtype=torch.float64)
        self.sigma = interaction_graph(config.graph, zero, config.meta_solver)
        self.population_sigma = self.sigma
        self.payoffs = zero
        if start:
            self.payoffs = self.evaluate()
            self.sigma = interaction_graph(config.graph, self.payoffs, config.meta_solver)

    @property
    def iteration(self) -> int:
        return len(self.history)

    @property
    def buffer(self) -> ReplayBuffer:
        """The learner's replay buffer, allocated when first needed (a run loaded to play has none)."""
        if self._buffer is None:
            self._buffer = ReplayBuffer(self.learner.config.buffer_size, self.learner.joint_observation_size,
                                        self.learner.joint_action_size, self.spec.num_agents, device=self.device,
                                        controllers=True)
        return self._buffer

    # ------------------------------------------------------------------ acting
    def _augmented(self, observations: Mapping[str, Tensor], conditions: Tensor) -> Tensor:
        """``(B, joint_obs)``: every agent's observation, then the mixture its team's policy reads."""
        rows = conditions.to(self.device, torch.float32)
        parts = []
        for agent, team in zip(self.spec.agents, self.team_of.tolist()):
            seen = observations[agent]
            parts += [seen.reshape(seen.shape[0], -1).to(self.device, torch.float32), rows[team]]
        return torch.cat(parts, dim=1)

    def _uniform_joint(self, game: Any, observations: Mapping[str, Tensor]) -> Tensor:
        """``(B, joint_actions)`` of both teams' uniform random members (counter-based, per copy)."""
        acted = {**self.uniform[0](game, observations), **self.uniform[1](game, observations)}
        parts = []
        for agent, size in zip(self.spec.agents, self.spec.action_sizes):
            action = acted[agent].to(self.device)
            parts.append(action.float() if self.spec.continuous
                         else torch.nn.functional.one_hot(action, size).float())
        return torch.cat(parts, dim=1)

    def act(self, game: Any, observations: Mapping[str, Tensor], conditions: Tensor, random: Tensor,
            learning: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Both teams' actions in every copy.

        Args:
            conditions: ``(2, B, N)`` the mixture each team's policy is conditioned on.
            random: ``(2, B)`` bool, teams that play uniformly at random (zero rows).
            learning: ``(2, B)`` bool, teams that explore (the learners); None: all greedy.

        Returns:
            joint observations ``(B, joint_obs)``, joint actions ``(B, joint_actions)`` and who
            acted for each agent ``(B, num_agents)`` int8 (1 learner, 0 fixed, -1 random).
        """
        joint = self._augmented(observations, conditions)
        members = torch.zeros(joint.shape[0], self.spec.num_agents, dtype=torch.int64, device=self.device)
        controllers = torch.zeros(joint.shape[0], self.spec.num_agents, dtype=torch.int8, device=self.device)
        if learning is None:
            actions = self.learner.act(joint, members, explore=False)
        else:
            flags = learning.to(self.device)[self.team_of].T  # (B, num_agents)
            actions, explored = self.learner.act_both(joint, members)
            actions = torch.where(self.learner.agent_columns(flags), explored, actions)
            controllers[flags] = 1
        flags = random.to(self.device)[self.team_of].T
        if bool(flags.any()):
            actions = torch.where(self.learner.agent_columns(flags), self._uniform_joint(game, observations), actions)
            controllers[flags] = -1
        return joint, actions, controllers

    def policy(self, choose: Callable[[Any], Tensor], sigma: Tensor | None = None) -> Callable:
        """The population as one greedy policy of the whole game (the policy protocol).

        ``choose(game) -> (2, B)`` int64 is the policy index of each team in each copy; a
        policy is the actors conditioned on its row of ``sigma`` (``population_sigma`` by default).
        """
        rows = (self.population_sigma if sigma is None else sigma).to(self.device)

        def play(game: Any, observations: Mapping[str, Tensor]) -> dict[str, Tensor]:
            conditions = rows[choose(game).to(self.device)]  # (2, B, N)
            _, actions, _ = self.act(game, observations, conditions, conditions.sum(-1) == 0)
            return self.learner.game_actions(actions, game.device)

        return play

    def mixture_policy(self, weights: Tensor, seed: int = 0) -> Callable:
        """The ``weights``-mixture ``(N,)`` of the population: a policy drawn per copy and episode."""
        return self.policy(sigma_draws([weights, weights], seed))

    # ------------------------------------------------------------------ training
    def learners(self) -> list[int]:
        """The rows trained: one per unique non-zero row of Sigma."""
        return learner_rows(self.sigma)

    def effective_population(self) -> int:
        return len(unique_rows(self.sigma))

    def _assign(self, count: int) -> tuple[Tensor, Tensor, Tensor]:
        """Pairings for ``count`` copies: conditions ``(2, count, N)``, random and learning ``(2, count)``."""
        size = self.config.population
        sigma = self.sigma.to(torch.float64)
        learners = torch.tensor(self.learners(), dtype=torch.int64)
        mixtures = torch.zeros(count, size, dtype=torch.float64)
        if len(learners):
            mixtures = sigma[learners[torch.randint(len(learners), (count,), generator=self.draws)]]
        if self.config.simplex > 0:
            drawn = dirichlet_mixtures(self.sigma, count, self.draws)
            chosen = torch.rand(count, generator=self.draws, dtype=torch.float64) < self.config.simplex
            if not len(learners):
                chosen[:] = True
            mixtures = torch.where(chosen[:, None], drawn, mixtures)
        cumulative = torch.cumsum(mixtures, 1)
        opponents = torch.searchsorted(cumulative, torch.rand(count, 1, generator=self.draws, dtype=torch.float64)
                                       * cumulative[:, -1:], right=True).clamp_(max=size - 1)[:, 0]
        seat = torch.rand(count, generator=self.draws) < 0.5  # True: the learner is team 1
        opposing = sigma[opponents]
        conditions = torch.stack([torch.where(seat[:, None], opposing, mixtures),
                                  torch.where(seat[:, None], mixtures, opposing)])
        learning = torch.stack([~seat, seat])
        random = ~learning & (conditions.sum(-1) == 0)
        return conditions.to(self.device), random.to(self.device), learning.to(self.device)

    def train(self, transitions: int) -> None:
        """Collects ``transitions`` (rounded up to whole steps of the batch) and updates the learner."""
        if not self.learners() and self.config.simplex == 0:
            return
        game, config = self.game, self.learner.config
        agents = self.spec.agents
        observations, _ = game.reset(seed=self.config.seed * 100_003 + self.iteration)
        conditions, random, learning = self._assign(game.num_envs)
        collected = 0
        while collected < transitions:
            joint, actions, controllers = self.act(game, observations, conditions, random, learning)
            observations, rewards, terminated, truncated, infos = game.step(
                self.learner.game_actions(actions, game.device))
            final = self._augmented({agent: infos[agent]["final_observation"] for agent in agents}, conditions)
            ended = torch.stack([terminated[agent] for agent in agents], dim=1).to(self.device)
            cut = torch.stack([truncated[agent] for agent in agents], dim=1).to(self.device)
            self.buffer.add(observations=joint, actions=actions,
                            rewards=torch.stack([rewards[agent] for agent in agents], 1).to(self.device, torch.float32),
                            next_observations=final, terminated=ended.float(),
                            members=torch.zeros_like(controllers, dtype=torch.int64), controllers=controllers)
            collected += game.num_envs
            self.transitions += game.num_envs
            if self.transitions >= config.learning_starts:
                due = (self.transitions - config.learning_starts) // config.transitions_per_update + 1
                while self.updates < due:
                    self.learner.update(self.buffer.sample(config.batch_size, self.learner.generator))
                    self.updates += 1
            done = (ended | cut).any(1)
            if bool(done.any()):
                fresh = self._assign(game.num_envs)
                keep = done[None, :]
                conditions = torch.where(keep[..., None], fresh[0], conditions)
                random = torch.where(keep, fresh[1], random)
                learning = torch.where(keep, fresh[2], learning)

    # ------------------------------------------------------------------ evaluating
    def evaluate(self) -> Tensor:
        """U ``(N, N)`` float64 of the population the rows of Sigma define (see the module docstring)."""
        from games import memory
        from games.policy import team_returns
        from marl.envs import make_game

        unique, inverse = unique_rows(self.sigma, inverse=True)
        count, sims = len(unique), self.config.sims_per_entry
        copies = count * count * sims
        memory.check(f"U of {count} unique policies ({copies:,} episodes in one batch)", copies * 4096,
                     "lower sims_per_entry", self.device)
        pair = torch.arange(copies, device=self.device) // sims
        index = torch.tensor(unique, dtype=torch.int64, device=self.device)
        assignment = torch.stack([index[pair // count], index[pair % count]])
        game = make_game(self.game_name, copies, device=self.device, seed=self.config.seed, settings=self.settings)
        episodes = torch.arange(sims, device=self.device).repeat(count * count)
        returns = team_returns(self.policy(lambda _game: assignment, self.sigma), game, self.config.seed + 1,
                               self.teams, options={"streams": episodes})  # (2, copies)
        z = ((returns[0] - returns[1]) / 2).reshape(count, count, sims).mean(-1).to("cpu", torch.float64)
        table = (z - z.T) / 2
        self.population_sigma = self.sigma.clone()
        return table[inverse][:, inverse]

    def meta_nash(self, payoffs: Tensor | None = None) -> Tensor:
        """``(N,)``: the meta-solver's equilibrium of the symmetric meta-game U (this run's, by default)."""
        table = self.payoffs if payoffs is None else payoffs
        return symmetric_meta_solver(self.config.meta_solver)(torch.stack([table, table.T]))[0].to(torch.float64)

    def estimated_nash_conv(self) -> float | None:
        """``2 U[N-1] . sigma_{N-1}`` of the population U measured (None: the last row is zero)."""
        last = self.population_sigma[-1].to(torch.float64)
        if float(last.sum()) == 0:
            return None
        return 2 * float(self.payoffs[-1] @ last)

    def step(self) -> NeuPLIterate:
        """One iteration: train against Sigma, measure U, Sigma <- F(U)."""
        started = time.perf_counter()
        effective = self.effective_population()
        self.train(self.config.steps_per_iteration)
        self.payoffs = self.evaluate()
        estimate = self.estimated_nash_conv()
        self.sigma = interaction_graph(self.config.graph, self.payoffs, self.config.meta_solver)
        weights = self.meta_nash()
        self._seconds += time.perf_counter() - started
        record = NeuPLIterate(self.iteration + 1, self._seconds, float("nan") if estimate is None else estimate,
                              effective, weights.tolist(), self.sigma.tolist(), self.payoffs.tolist())
        self.history.append(record)
        return record

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (tensors, numbers, strings: loads with ``weights_only=True``)."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "game": self.game_name,
            "settings": self.settings,
            "config": self.config.record(),
            "learner": self.learner.state_dict(),
            "replay": self.buffer.state_dict(),
            "draws": self.draws.get_state(),
            "sigma": self.sigma.cpu(),
            "population_sigma": self.population_sigma.cpu(),
            "payoffs": self.payoffs.cpu(),
            "transitions": self.transitions,
            "updates": self.updates,
            "seconds": self._seconds,
            "history": [dataclasses.asdict(record) for record in self.history],
        }

    def load_state_dict(self, state: Any, source: str = "the saved run", replay: bool = True) -> None:
        """Continues from :meth:`state_dict`'s output (``replay=False``: without the replay buffer, to play, not
        train); raises :class:`NeuPLError` naming ``source``."""
        from games.io import saved_format_problem
        from marl.envs import resolved_settings

        def fail(message: str) -> NeuPLError:
            return NeuPLError(f"{source}: {message}")

        problem = saved_format_problem(state, STATE_FORMAT, STATE_VERSION, "NeuPL run of a Markov game")
        if problem is not None:
            raise fail(problem)
        if state.get("game") != self.game_name or not isinstance(state.get("settings"), dict) or \
                resolved_settings(self.game_name, state["settings"]) != self.recorded_settings:
            raise fail(f"a run of {state.get('game')!r} with settings {state.get('settings')}, not of "
                       f"{self.game_name!r} with {self.settings}")
        recorded = MarkovNeuPLConfig.from_record(state.get("config"), source)
        if recorded != self.config:
            changed = [f.name for f in dataclasses.fields(MarkovNeuPLConfig)
                       if getattr(recorded, f.name) != getattr(self.config, f.name)]
            raise fail(f"the run was made with other settings ({', '.join(changed)})")
        history = saved_history(state, ("sigma", "population_sigma", "payoffs"), self.config.population, fail)
        try:
            self.learner.load_state_dict(state["learner"])
            if replay:
                self.buffer.load_state_dict(state["replay"])
            self.draws.set_state(state["draws"])
            self.transitions, self.updates = int(state["transitions"]), int(state["updates"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as error:
            raise fail(f"its learner does not fit this game and population ({str(error).splitlines()[0]})") from None
        self.sigma = state["sigma"].to(torch.float64)
        self.population_sigma = state["population_sigma"].to(torch.float64)
        self.payoffs = state["payoffs"].to(torch.float64)
        self._seconds = float(state.get("seconds", 0.0))
        self.history = history


def from_state(state: Any, device: torch.device | str = "cpu", source: str = "the saved run",
               replay: bool = True) -> MarkovNeuPL:
    """A run back from its ``state_dict``: a resumed run, or with ``replay=False`` a population to play."""
    if not isinstance(state, dict) or not isinstance(state.get("game"), str) or \
            not isinstance(state.get("settings"), dict):
        raise NeuPLError(f"{source}: not a gamelab NeuPL run of a Markov game")
    config = MarkovNeuPLConfig.from_record(state.get("config"), source)
    run = MarkovNeuPL(state["game"], state["settings"], config, device, start=False)
    run.load_state_dict(state, source, replay=replay)
    return run


__all__ = ["MarkovNeuPL", "MarkovNeuPLConfig", "default_learner", "from_state"]
