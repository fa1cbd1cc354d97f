"""Policy-Space Response Oracles (PSRO) with exact best responses.

Lanctot, Zambaldi, Gruslys, Lazaridou, Tuyls, Perolat, Silver and Graepel, "A Unified
Game-Theoretic Approach to Multiagent Reinforcement Learning", NeurIPS 2017. With the
``nash`` meta-solver and exact best responses on a normal-form game this is the double
oracle of McMahan, Gordon and Blum (ICML 2003).

Each player ``i`` keeps a population ``P_i`` of policies, starting from uniform random
play. The empirical meta-game ``U`` ``(N, |P_1|, ..., |P_N|)`` holds every player's
expected payoff for every profile of population members. One iteration (:meth:`PSRO.step`)
consists of:

1) ``update_meta_strategies``: the meta-solver maps ``U`` to a mixture ``sigma_i`` over
   each population;
2) ``update_agents``: each player's oracle returns a best response to the others'
   ``sigma``-mixtures, and it joins the population (with ``nash``, unless an equal policy is
   there already: then the mixture is an equilibrium and the run stops);
3) ``update_empirical_gamestate``: the entries of ``U`` that involve a new member are
   computed; the others are kept.

Then the ``sigma``-mixture of each population, as one policy, is measured in the full
game (its NashConv).

Policies and the meta-game are exact:

- normal-form games (:class:`NormalFormGame`): a policy is a mixed strategy ``(A_i,)``;
  a mixture is the ``sigma``-weighted sum; a best response is pure (one-hot).
- extensive-form games (:class:`ExtensiveFormGame`): a policy is a behavioural strategy
  ``(num_infosets, max_actions)`` of which player ``i``'s rows count. A ``sigma``-mixture
  is the policy whose realization plan is the ``sigma``-weighted sum of the members'
  plans (the reach-weighted average that OpenSpiel's ``PolicyAggregator`` builds), and a
  best response to it comes from the tree (``solvers.sequence_form.best_response``).
  ``U``'s entries are multilinear in the members' own reach probabilities of each
  terminal, so a block of new entries is one ``einsum`` over the terminals.

Any other game comes with its own policy space (``PSRO(game, ..., policy_space=...)``):
``marl.psro_oracle.MarkovPopulations`` trains MADDPG best responses on two-team Markov
games and plays episodes for the meta-game's entries. Without an exact NashConv, its
iterations report :meth:`PSRO.estimated_nash_conv`.

Meta-solvers, by name (:data:`META_SOLVERS`): ``uniform`` (fictitious play over the
population), ``nash`` (the solver table's ``auto``: the zero-sum interior point on
2-player constant-sum meta-games, Lemke-Howson on other 2-player ones, Nash-SGD beyond),
``prd`` (projected replicator dynamics, as OpenSpiel's PSRO uses), ``rm`` (the solver
table's RM+ for 1,000 iterations), ``alpharank`` (the populations' marginals of
multi-population alpha-rank, alpha 100 and 50 agents: alpha-PSRO, Muller et al., ICLR 2020),
``rectified`` (PSRO-rN, Balduzzi et al., ICML 2019), and ``cce``/``ce``: JPSRO (Marris et
al., ICML 2021), whose meta-strategy is a joint distribution over the populations (the
solver table's (coarse) correlated equilibrium of maximum welfare), each player best
responding to the others' joint marginal (CCE) or to each recommendation's conditional
(CE); its runs measure the (C)CE gap in the full game instead of NashConv.

NOTE: JPSRO's paper prefers maximum-Gini (C)CEs; the solver table's LPs give maximum
welfare ones. The CE LP has a constraint per (player, recommended, deviation) over all
joint profiles, so ``ce`` suits small populations (3-player Kuhn outgrows it in about 15
iterations).

NOTE: ``prd`` runs 10,000 steps of size 0.01 (OpenSpiel: 100,000 of size 0.001, the same
time horizon) and averages all iterates, with OpenSpiel's floor of ``1e-6`` on every
probability.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from games.errors import SolverError, did_you_mean
from games.extensive_form import ExtensiveFormGame
from games.normal_form import NormalFormGame

Tensor = torch.Tensor

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
RECTIFIED_SUPPORT = 1e-9  # sigma above this is in the support (OpenSpiel's EPSILON_MIN_POSITIVE_PROBA)
STATE_FORMAT = "gamelab.psro"
STATE_VERSION = 1


# --------------------------------------------------------------------------------------
# Meta-solvers: U (N, K_1, ..., K_N) -> one mixture (K_i,) per player


def _uniform(meta_game: Tensor) -> list[Tensor]:
    return [meta_game.new_full((size,), 1.0 / size) for size in meta_game.shape[1:]]


def table_meta_solver(solver: str, **options: Any) -> Callable[[Tensor], list[Tensor]]:
    """The meta-solver that solves ``U`` with the solver table's ``solver`` (``options`` passed on)."""
    def solve(meta_game: Tensor) -> list[Tensor]:
        from solvers import registry

        result = registry.solve(NormalFormGame(meta_game), solver, **options)
        return [strategy.to(meta_game.dtype) for strategy in result.strategies]

    return solve


def projected_replicator_dynamics(meta_game: Tensor, iterations: int = 10_000, step: float = 0.01,
                                  floor: float = 1e-6) -> list[Tensor]:
    """Projected replicator dynamics (Lanctot et al. 2017), the average of all iterates.

    Each step moves ``x_i`` by ``step * x_i * (u_i - x_i . u_i)``, where ``u_i`` is the
    payoff of each of ``i``'s members against the others' current mixtures, then projects
    it back on the simplex with every probability at least ``floor``.

    Shapes: ``meta_game`` ``(N, K_1, ..., K_N)``; returns N tensors ``(K_i,)``.
    """
    import numpy as np

    # NOTE: a loop of many tiny steps: numpy's per-call cost is a fraction of torch's here.
    table = meta_game.detach().cpu().numpy().astype(np.float64)
    num_players = table.shape[0]
    strategies = [np.full(size, 1.0 / size) for size in table.shape[1:]]
    totals = [np.zeros(size) for size in table.shape[1:]]
    if num_players == 2:
        row, column = table[0], table[1].T.copy()

        def payoff_vectors(x: list) -> list:
            return [row @ x[1], column @ x[0]]
    else:
        letters = _LETTERS[:num_players]
        subscripts = [f"{letters}," + ",".join(letters[j] for j in range(num_players) if j != i) + f"->{letters[i]}"
                      for i in range(num_players)]

        def payoff_vectors(x: list) -> list:
            return [np.einsum(subscripts[i], table[i], *(x[j] for j in range(num_players) if j != i), optimize=False)
                    for i in range(num_players)]
    for _ in range(iterations):
        payoffs = payoff_vectors(strategies)
        for i in range(num_players):
            moved = strategies[i] + step * strategies[i] * (payoffs[i] - strategies[i] @ payoffs[i])
            np.maximum(moved, floor, out=moved)
            strategies[i] = moved / moved.sum()
            totals[i] += strategies[i]
    return [torch.from_numpy(total / iterations).to(meta_game.device, meta_game.dtype) for total in totals]


def _alpha_rank(meta_game: Tensor) -> list[Tensor]:
    from solvers.ratings import multi_population_alpha_rank

    _, marginals = multi_population_alpha_rank(meta_game.detach().cpu().numpy())
    return [torch.as_tensor(marginal, dtype=meta_game.dtype, device=meta_game.device) for marginal in marginals]


META_SOLVERS: dict[str, tuple[str, Callable[[Tensor], list[Tensor]]]] = {
    "uniform": ("uniform over the population (fictitious play)", _uniform),
    "nash": ("a Nash equilibrium of the meta-game (the solver table's auto: zero-sum, Lemke-Howson, Nash-SGD)",
             table_meta_solver("auto")),
    "prd": ("projected replicator dynamics (OpenSpiel PSRO's default)", projected_replicator_dynamics),
    "rm": ("RM+ on the meta-game for 1,000 iterations", table_meta_solver("rm+", iterations=1000, eval_every=1000)),
    "alpharank": ("the marginals of multi-population alpha-rank (alpha-PSRO, Muller et al. 2020)", _alpha_rank),
    "rectified": ("rectified Nash (PSRO-rN, Balduzzi et al. 2019): Nash, and a best response per member of its "
                  "support to the opponents it beats or ties", table_meta_solver("auto")),
    "cce": ("JPSRO (Marris et al. 2021): a coarse correlated equilibrium of maximum welfare, best responses to "
            "the others' joint marginal", table_meta_solver("cce")),
    "ce": ("JPSRO (Marris et al. 2021): a correlated equilibrium of maximum welfare, a best response per "
           "recommendation", table_meta_solver("ce")),
}


def meta_solver(name: str) -> Callable[[Tensor], list[Tensor]]:
    """The meta-solver ``name``; raises ``SolverError`` with the closest name for an unknown one."""
    if name not in META_SOLVERS:
        raise SolverError(f"unknown meta-solver {name!r}{did_you_mean(name, META_SOLVERS)}; "
                          f"the meta-solvers are {', '.join(META_SOLVERS)}")
    return META_SOLVERS[name][1]


# --------------------------------------------------------------------------------------
# The two kinds of game: policies, mixtures, best responses, meta-game features
#
# A policy space (what PSRO knows of a game's policies) has ``num_players``, ``exact``
# and the methods ``uniform``, ``mixture``, ``profile``, ``best_response``, ``same``,
# ``features``, ``block``, ``nash_conv`` (exact spaces), ``pack`` and ``unpack``.
# ``marl.psro_oracle.MarkovPopulations`` is one more, with reinforcement-learning oracles.


class _TensorPolicies:
    """Saving populations whose members are tensors of one shape per player."""

    exact = True
    """Best responses and NashConv are exact (the meta-game's entries too)."""

    def pack(self, population: list[Tensor], player: int) -> Tensor:
        """``(K, *policy_shape)``: the population as one tensor, for ``torch.save``."""
        return torch.stack(population)

    def unpack(self, saved: Any, player: int) -> list[Tensor]:
        """:meth:`pack`'s output back as members; raises ``ValueError`` saying what does not fit."""
        shape = tuple(self.uniform(player).shape)
        if not isinstance(saved, Tensor) or saved.dim() != len(shape) + 1 or saved.shape[0] < 1:
            raise ValueError(f"player {player}'s population is not a stack of policies")
        if tuple(saved.shape[1:]) != shape:
            raise ValueError(f"player {player}'s policies have shape {tuple(saved.shape[1:])}, this game's {shape}: "
                             "the run is of another game")
        reference = self.uniform(player)
        return list(saved.to(reference.device, reference.dtype).unbind(0))


class _MatrixPopulations(_TensorPolicies):
    """Normal-form games: a policy is a mixed strategy ``(A_i,)``."""

    def __init__(self, game: NormalFormGame) -> None:
        if game.batched:
            raise SolverError("PSRO takes one game, not a batch")
        self.game = game
        self.num_players = game.num_players

    def uniform(self, player: int) -> Tensor:
        size = int(self.game.num_actions[player])
        return self.game.payoffs.new_full((size,), 1.0 / size)

    def mixture(self, members: list[Tensor], weights: Tensor, player: int) -> Tensor:
        return weights.to(members[0].dtype) @ torch.stack(members)

    def profile(self, mixtures: list[Tensor]) -> list[Tensor]:
        return mixtures

    def best_response(self, mixtures: list[Tensor], player: int) -> Tensor:
        values = self.game.player_action_values(mixtures, player)
        return torch.nn.functional.one_hot(values.argmax(), values.numel()).to(values.dtype)

    def same(self, first: Tensor, second: Tensor, player: int) -> bool:
        return bool(torch.equal(first, second))

    def best_response_to_joint(self, weights: Tensor, features: list[Tensor], player: int) -> tuple[Tensor, float]:
        """A pure best response to a (correlated, unnormalized) distribution ``weights`` over the
        others' members, ``(K_j, ...)`` for every ``j != player`` in order; and its payoff."""
        others = [j for j in range(self.num_players) if j != player]
        n = self.num_players
        actions, members = _LETTERS[:n], _LETTERS[n: 2 * n]
        subscripts = (f"{actions},{''.join(members[j] for j in others)},"
                      + ",".join(f"{members[j]}{actions[j]}" for j in others) + f"->{actions[player]}")
        values = torch.einsum(subscripts, self.game.payoffs[player], weights, *[features[j] for j in others])
        return torch.nn.functional.one_hot(values.argmax(), values.numel()).to(values.dtype), float(values.max())

    def features(self, members: list[Tensor], player: int) -> Tensor:
        """``(K, A_player)``: the members' action probabilities."""
        return torch.stack(members)

    def block(self, features: list[Tensor]) -> Tensor:
        """``(N, k_1, ..., k_N)``: every player's payoff for every profile of the given members."""
        n = self.num_players
        letters = _LETTERS[:n]
        members = _LETTERS[n: 2 * n]
        subscripts = f"p{letters}," + ",".join(f"{members[i]}{letters[i]}" for i in range(n)) + f"->p{members}"
        return torch.einsum(subscripts, self.game.payoffs, *features)

    def nash_conv(self, mixtures: list[Tensor]) -> float:
        from solvers.exploitability import nash_conv

        return float(nash_conv(self.game, mixtures))


class _TreePopulations(_TensorPolicies):
    """Extensive-form games: a policy is a behavioural strategy ``(num_infosets, max_actions)``."""

    def __init__(self, game: ExtensiveFormGame) -> None:
        from solvers import sequence_form

        self.game = game
        self.num_players = game.num_players
        self.forms = sequence_form.treeplexes(game)
        self.mine = [(game.infoset_player == player)[:, None] for player in range(game.num_players)]

    def uniform(self, player: int) -> Tensor:
        return self.game.uniform_strategy()

    def plan(self, member: Tensor, player: int) -> Tensor:
        form = self.forms[player]
        return form.realization_plan(form.pack(member))

    def mixture(self, members: list[Tensor], weights: Tensor, player: int) -> Tensor:
        from solvers.sequence_form import behaviour_from_plan

        plan = weights.to(members[0].dtype) @ torch.stack([self.plan(member, player) for member in members])
        return behaviour_from_plan(self.game, player, plan, members[0])

    def profile(self, mixtures: list[Tensor]) -> Tensor:
        """One ``(num_infosets, max_actions)`` strategy: each player's rows from its own mixture."""
        profile = mixtures[0]
        for player in range(1, self.num_players):
            profile = torch.where(self.mine[player], mixtures[player], profile)
        return profile

    def best_response(self, mixtures: list[Tensor], player: int) -> Tensor:
        from solvers.sequence_form import best_response

        return best_response(self.game, self.profile(mixtures), player)

    def same(self, first: Tensor, second: Tensor, player: int) -> bool:
        return bool(torch.equal(first[self.mine[player][:, 0]], second[self.mine[player][:, 0]]))

    def best_response_to_joint(self, weights: Tensor, features: list[Tensor], player: int) -> tuple[Tensor, float]:
        """A pure best response to a (correlated, unnormalized) distribution ``weights`` over the
        others' members, ``(K_j, ...)`` for every ``j != player`` in order; and its payoff."""
        from solvers.sequence_form import best_response_to_reach

        others = [j for j in range(self.num_players) if j != player]
        members = _LETTERS[: len(others)]
        subscripts = f"{members}," + ",".join(f"{members[k]}t" for k in range(len(others))) + "->t"
        reach = self.game.terminal_chance * torch.einsum(subscripts, weights, *[features[j] for j in others])
        response, value = best_response_to_reach(self.game, player, reach, self.game.uniform_strategy())
        return response, float(value)

    def features(self, members: list[Tensor], player: int) -> Tensor:
        """``(K, num_terminals)``: each member's own reach probability of each terminal."""
        form = self.forms[player]
        return torch.stack([self.plan(member, player).index_select(0, form.terminal_last) for member in members])

    def block(self, features: list[Tensor]) -> Tensor:
        n = self.num_players
        members = _LETTERS[:n]
        weights = self.game.terminal_chance[:, None] * self.game.terminal_utilities  # (T, N)
        subscripts = "tp," + ",".join(f"{members[i]}t" for i in range(n)) + f"->p{members}"
        return torch.einsum(subscripts, weights, *features)

    def nash_conv(self, mixtures: list[Tensor]) -> float:
        from solvers.sequence_form import nash_conv

        return float(nash_conv(self.game, self.profile(mixtures)))


# --------------------------------------------------------------------------------------
# The loop


@dataclass(frozen=True)
class OracleJob:
    """One best response to compute: ``kind.METHOD(*arguments, player)``, a pure function of the game."""

    player: int
    method: str
    """``best_response`` (to the others' mixtures) or ``best_response_to_joint`` (to a distribution over their members)."""
    arguments: tuple


def populations_of(game: NormalFormGame | ExtensiveFormGame) -> Any:
    """What PSRO knows of ``game``'s policies: mixtures, best responses, meta-game features."""
    if isinstance(game, ExtensiveFormGame):
        return _TreePopulations(game)
    if isinstance(game, NormalFormGame):
        return _MatrixPopulations(game)
    raise SolverError(f"PSRO plays normal-form and extensive-form games, not {type(game).__name__}")


def run_oracle_job(kind: Any, job: OracleJob) -> Any:
    """The best response of one job (``kind``: a policy space, such as :func:`populations_of`'s); a Ray task
    of :class:`RayOracles` too."""
    result = getattr(kind, job.method)(*job.arguments, job.player)
    return result[0] if isinstance(result, tuple) else result


@dataclass
class PSROIterate:
    """What one iteration did and measured."""

    iteration: int
    nash_conv: float
    """NashConv of the sigma-mixtures (before this iteration's best responses), in the full game; for
    policy spaces without an exact one, :meth:`PSRO.estimated_nash_conv`."""
    meta_nash_conv: float
    """NashConv of sigma in the meta-game U."""
    population_sizes: list[int]
    meta_strategies: list[list[float]]
    """sigma of every player, the one this iteration's best responses answered."""
    added: list[bool]
    """Whether each player's best response was new."""
    seconds: float
    """Seconds since the run started."""


@dataclass
class PSRO:
    """PSRO on one normal-form or extensive-form game (see the module docstring).

    Args:
        game: a :class:`NormalFormGame` (unbatched) or an :class:`ExtensiveFormGame`; any game
            when ``policy_space`` is given.
        meta_solver: a name from :data:`META_SOLVERS`.
    """

    game: Any
    meta_solver: str = "nash"
    oracle_backend: Callable[[Any, list[OracleJob]], list[Any]] | None = None
    """Runs a list of best-response jobs: ``backend(policy_space, jobs) -> responses`` (in-process when
    None; ``marl.commands.psro`` passes Ray tasks for ``--backend ray``)."""
    policy_space: Any = None
    """What PSRO knows of the game's policies (see the policy spaces above): None takes the exact
    one of a normal-form or extensive-form ``game`` (:func:`populations_of`);
    ``marl.psro_oracle.MarkovPopulations`` trains best responses on a Markov game."""
    populations: list[list[Tensor]] = field(init=False)
    meta_game: Tensor = field(init=False)
    """``(N, |P_1|, ..., |P_N|)``."""
    meta_strategies: list[Tensor] = field(init=False)
    history: list[PSROIterate] = field(init=False)

    def __post_init__(self) -> None:
        self._solve_meta = meta_solver(self.meta_solver)
        # With an exact Nash meta-solver a best response already in the population means the
        # mixture is an equilibrium (the double oracle stops); the other meta-solvers count a
        # policy once per time it is a best response, as OpenSpiel's PSRO and fictitious play do.
        self.deduplicate = self.meta_solver in ("nash", "rectified", "ce", "cce")
        self.rectified = self.meta_solver == "rectified"
        self.joint_meta_solver = self.meta_solver in ("ce", "cce")
        self.joint: Tensor | None = None
        if self.policy_space is None:
            self.policy_space = populations_of(self.game)
        kind = self.policy_space
        if self.joint_meta_solver and not hasattr(kind, "best_response_to_joint"):
            raise SolverError(f"the meta-solver {self.meta_solver!r} needs exact best responses to correlated "
                              "opponents; this game's oracle trains against mixtures: use nash, prd, rm, uniform, "
                              "alpharank or rectified")
        if self.rectified and kind.num_players != 2:
            raise SolverError(f"rectified Nash trains against opponents one population at a time: 2-player games "
                              f"only, and this game has {kind.num_players} players")
        self.populations = [[kind.uniform(player)] for player in range(kind.num_players)]
        self._features = [kind.features(population, player) for player, population in enumerate(self.populations)]
        self.meta_game = kind.block(self._features)
        self.meta_strategies = _uniform(self.meta_game)
        self.history = []
        self._started = time.perf_counter()

    @property
    def iteration(self) -> int:
        return len(self.history)

    def mixtures(self) -> list[Tensor]:
        """Each population's sigma-mixture as one policy of the full game."""
        return [self.policy_space.mixture(population, weights, player)
                for player, (population, weights) in enumerate(zip(self.populations, self.meta_strategies))]

    def policy(self) -> Any:
        """The sigma-mixtures as one profile: a list of ``(A_i,)`` (normal-form) or one
        ``(num_infosets, max_actions)`` strategy (extensive-form)."""
        return self.policy_space.profile(self.mixtures())

    def nash_conv(self) -> float:
        """NashConv of the sigma-mixtures in the full game."""
        return self.policy_space.nash_conv(self.mixtures())

    def update_meta_strategies(self) -> None:
        """Step 1: sigma from the meta-game (for ``ce``/``cce``, the joint distribution and its marginals)."""
        if self.joint_meta_solver:
            from solvers.exploitability import marginals

            self.joint = _correlated(self.meta_solver, self.meta_game)
            self.meta_strategies = marginals(self.joint, self.policy_space.num_players)
            return
        self.meta_strategies = [strategy.to(self.meta_game.dtype) for strategy in self._solve_meta(self.meta_game)]

    def correlated_gap(self) -> float:
        """The (C)CE gap in the full game of the joint meta-strategy (``ce``/``cce`` runs).

        CCE: ``max_i`` of what player ``i`` gains by ignoring its recommendation and best
        responding to the others' joint marginal. CE: ``max_i`` of the sum over ``i``'s
        recommended members of what best responding to the conditional distribution gains
        (``solvers.exploitability``'s definitions, with deviations in the full game).
        """
        gains = []
        for player in range(self.policy_space.num_players):
            table = torch.movedim(self.meta_game[player], player, 0)  # (K_player, others...)
            joint = torch.movedim(self.joint, player, 0)
            gains.append(sum(
                max(0.0, self.policy_space.best_response_to_joint(weights, self._features, player)[1]
                    - float((joint[rows] * table[rows]).sum()))
                for rows, weights in self._joint_targets(player)))
        return max(gains)

    def _joint_targets(self, player: int) -> list[tuple[Any, Tensor]]:
        """What ``player`` deviates from under the joint meta-strategy, as ``(rows, weights)``: ``rows``
        picks ``player``'s recommended members (all of them for CCE, one per recommendation for CE)
        and ``weights`` is the distribution over the others' members there."""
        joint = torch.movedim(self.joint, player, 0)
        if self.meta_solver == "cce":
            return [(slice(None), joint.sum(0))]
        return [(member, joint[member]) for member in torch.nonzero(joint.flatten(1).sum(1) > 0).flatten().tolist()]

    def update_agents(self) -> list[bool]:
        """Step 2: best responses to the others' sigma-mixtures; returns which players gained a member.

        With ``rectified``, each member in the support of sigma gets its own best response, to
        the others' mixture restricted to the opponents it does at least as well against as
        sigma does (all of sigma when none is left).
        """
        kind = self.policy_space
        # Every job is made from the populations as they were: members added for one player
        # do not change what the next player answers.
        jobs = [job for player in range(kind.num_players) for job in self._oracle_jobs(player)]
        responses = self.oracle_backend(kind, jobs) if self.oracle_backend is not None else \
            [run_oracle_job(kind, job) for job in jobs]
        added = [False] * kind.num_players
        for job, response in zip(jobs, responses):
            player = job.player
            if self.deduplicate and any(kind.same(response, member, player) for member in self.populations[player]):
                continue
            self.populations[player].append(response)
            added[player] = True
        return added

    def _oracle_jobs(self, player: int) -> list[OracleJob]:
        """The best responses ``player`` needs this iteration, as jobs any backend can run.

        A mixture of the others (PSRO; with ``rectified``, one per member of sigma's support),
        or for JPSRO a distribution over the others' members: their joint marginal (CCE) or
        each recommended member's conditional (CE).
        """
        if self.joint_meta_solver:
            return [OracleJob(player, "best_response_to_joint", (weights, self._features))
                    for _, weights in self._joint_targets(player)]
        targets = self._rectified_targets(player) if self.rectified else [self.mixtures()]
        return [OracleJob(player, "best_response", (target,)) for target in targets]

    def _rectified_targets(self, player: int) -> list[list[Tensor]]:
        """For each of ``player``'s members in sigma's support, the others' rectified mixtures (2 players)."""
        opponent = 1 - player
        table = self.meta_game[player] if player == 0 else self.meta_game[player].T  # [mine, theirs]
        sigma, theirs = self.meta_strategies[player], self.meta_strategies[opponent]
        average = sigma @ table  # sigma's payoff against each opponent member
        targets = []
        for member in torch.nonzero(sigma > RECTIFIED_SUPPORT).flatten().tolist():
            weights = theirs * (table[member] >= average - 1e-12)
            weights = weights / weights.sum() if float(weights.sum()) > RECTIFIED_SUPPORT else theirs
            mixtures = [None, None]
            mixtures[opponent] = self.policy_space.mixture(self.populations[opponent], weights, opponent)
            mixtures[player] = self.populations[player][member]
            targets.append(mixtures)
        return targets

    def update_empirical_gamestate(self) -> None:
        """Step 3: the meta-game's entries that involve a new member; the others are kept."""
        kind = self.policy_space
        old = [len(features) for features in self._features]
        for player, population in enumerate(self.populations):
            if len(population) > old[player]:
                fresh = kind.features(population[old[player]:], player)
                known = self._features[player]
                self._features[player] = torch.cat([known, fresh]) if isinstance(fresh, Tensor) else known + fresh
        sizes = [len(features) for features in self._features]
        table = self.meta_game.new_zeros((kind.num_players, *sizes))
        table[(slice(None), *[slice(0, k) for k in old])] = self.meta_game
        # New entries, in blocks that partition them: the first player whose member is new
        # is p; players before p take old members only, players after p any member.
        for p in range(kind.num_players):
            if sizes[p] == old[p]:
                continue
            ranges = [slice(0, old[j]) if j < p else (slice(old[p], sizes[p]) if j == p else slice(0, sizes[j]))
                      for j in range(kind.num_players)]
            table[(slice(None), *ranges)] = kind.block([self._features[j][ranges[j]] for j in range(kind.num_players)])
        self.meta_game = table

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: the populations, the meta-game and the history.

        Tensors, numbers and strings only, so it saves with ``torch.save`` and loads with
        ``weights_only=True``. Populations are packed per player by the policy space:
        ``(K_i, A_i)`` or ``(K_i, num_infosets, max_actions)`` stacks for exact ones.
        """
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "meta_solver": self.meta_solver,
            "populations": [self.policy_space.pack(population, player) for player, population in enumerate(self.populations)],
            "meta_game": self.meta_game,
            "history": [dataclasses.asdict(record) for record in self.history],
        }

    def load_state_dict(self, state: Any, source: str = "the saved run") -> None:
        """Continues from :meth:`state_dict`'s output; the meta-game is read, not recomputed.

        Raises:
            SolverError: naming ``source``, for a state of another game, meta-solver or
                format, or one whose entries have the wrong types or shapes.
        """
        def fail(message: str) -> SolverError:
            return SolverError(f"{source}: {message}")

        from games.io import saved_format_problem

        problem = saved_format_problem(state, STATE_FORMAT, STATE_VERSION, "PSRO run")
        if problem is not None:
            raise fail(problem)
        if state.get("meta_solver") != self.meta_solver:
            raise fail(f"the run used the meta-solver {state.get('meta_solver')!r}, not {self.meta_solver!r}")
        populations, meta_game, history = state.get("populations"), state.get("meta_game"), state.get("history")
        kind = self.policy_space
        if not isinstance(populations, list) or len(populations) != kind.num_players:
            raise fail(f"its populations are not {kind.num_players} populations of policies")
        try:
            members = [kind.unpack(saved, player) for player, saved in enumerate(populations)]
        except ValueError as error:
            raise fail(str(error)) from None
        sizes = tuple(len(population) for population in members)
        if not isinstance(meta_game, Tensor) or tuple(meta_game.shape) != (kind.num_players, *sizes):
            raise fail(f"its meta-game does not have the shape {(kind.num_players, *sizes)} of its populations")
        fields = {item.name for item in dataclasses.fields(PSROIterate)}
        if not isinstance(history, list) or not all(isinstance(row, dict) and set(row) == fields for row in history):
            raise fail("its history is malformed")
        self.populations = members
        self._features = [kind.features(population, player) for player, population in enumerate(self.populations)]
        self.meta_game = meta_game.to(self.meta_game.device, self.meta_game.dtype)
        self.history = [PSROIterate(**row) for row in history]
        self.meta_strategies = _uniform(self.meta_game)
        self._started = time.perf_counter() - (self.history[-1].seconds if self.history else 0.0)

    def estimated_nash_conv(self) -> float:
        """NashConv of sigma (this iteration's, zero on the new members) in the meta-game grown by this
        iteration's best responses: what the oracles gained over sigma, a lower bound on the true
        NashConv that policy spaces without an exact one report (``exact = False``)."""
        padded = [torch.cat([strategy, strategy.new_zeros(size - strategy.numel())])
                  for strategy, size in zip(self.meta_strategies, self.meta_game.shape[1:])]
        return _meta_nash_conv(self.meta_game, padded)

    def gap(self) -> float:
        """What the run measures in the full game: NashConv of the mixtures, or the (C)CE gap for ``ce``/``cce``
        (policy spaces without an exact NashConv: the last iteration's :meth:`estimated_nash_conv`)."""
        if not self.policy_space.exact:
            return self.history[-1].nash_conv if self.history else float("nan")
        return self.correlated_gap() if self.joint_meta_solver else self.nash_conv()

    def step(self) -> PSROIterate:
        """One iteration: meta-strategies, best responses, new meta-game entries."""
        self.update_meta_strategies()
        exact = self.policy_space.exact
        nash_conv = self.gap() if exact else float("nan")
        meta = _meta_correlated_gap(self.meta_solver, self.meta_game, self.joint) if self.joint_meta_solver else \
            _meta_nash_conv(self.meta_game, self.meta_strategies)
        added = self.update_agents()
        self.update_empirical_gamestate()
        if not exact:
            nash_conv = self.estimated_nash_conv()
        record = PSROIterate(self.iteration + 1, nash_conv, meta, [len(p) for p in self.populations],
                             [strategy.tolist() for strategy in self.meta_strategies], added,
                             time.perf_counter() - self._started)
        self.history.append(record)
        return record


def _correlated(solver: str, meta_game: Tensor) -> Tensor:
    """The joint (coarse) correlated equilibrium of maximum welfare of the meta-game (the solver table's ce/cce)."""
    from solvers import registry

    return registry.solve(NormalFormGame(meta_game), solver).joint.to(meta_game.dtype)


def _meta_correlated_gap(solver: str, meta_game: Tensor, joint: Tensor) -> float:
    from solvers.exploitability import cce_gap, ce_gap

    return float((cce_gap if solver == "cce" else ce_gap)(NormalFormGame(meta_game), joint))


def _meta_nash_conv(meta_game: Tensor, strategies: list[Tensor]) -> float:
    """NashConv of ``strategies`` in the meta-game ``(N, K_1, ..., K_N)``."""
    from solvers.exploitability import nash_conv

    return float(nash_conv(NormalFormGame(meta_game), strategies))


def run(game: NormalFormGame | ExtensiveFormGame, meta_solver: str = "nash", *, iterations: int = 100,
        target_nash_conv: float | None = None,
        callback: Callable[[PSROIterate], None] | None = None, start: PSRO | None = None,
        oracle_backend: Callable[[Any, list[OracleJob]], list[Tensor]] | None = None) -> PSRO:
    """Runs PSRO until ``iterations`` in all, ``target_nash_conv``, or no player has a new best response.

    ``start``: a run to continue (one restored with :meth:`PSRO.load_state_dict`);
    ``callback`` sees every iteration's record (progress bars, saving the run). The final
    meta-strategies are solved after the last iteration.
    """
    psro = PSRO(game, meta_solver, oracle_backend) if start is None else start
    while psro.iteration < iterations:
        if psro.history and not _goes_on(psro.history[-1], target_nash_conv):
            break
        record = psro.step()
        if callback is not None:
            callback(record)
        if not _goes_on(record, target_nash_conv):
            break
    psro.update_meta_strategies()
    return psro


def _goes_on(record: PSROIterate, target_nash_conv: float | None) -> bool:
    """Whether a run goes on after ``record``: the target is not met and a best response was new."""
    return (target_nash_conv is None or record.nash_conv > target_nash_conv) and any(record.added)


class RayOracles:
    """Best responses as Ray tasks, one per job: ``with RayOracles() as backend: run(..., oracle_backend=backend)``.

    The policy space (the game, and for Markov games the oracle's settings) is put in Ray's
    object store once per iteration and every job is a task, on one CPU; each result is a pure
    function of the space and the job, so a run on Ray equals one in-process.
    Joins a running Ray (``address``, or one already initialized in this process), else
    starts a local one with ``num_cpus`` and shuts it down on exit.
    """

    def __init__(self, num_cpus: int | None = None, address: str | None = None) -> None:
        from games.distributed import start_ray

        self.ray, self.started_here = start_ray(num_cpus, address)
        self.task = self.ray.remote(num_cpus=1, max_retries=3)(run_oracle_job)

    def __call__(self, space: Any, jobs: list[OracleJob]) -> list[Any]:
        space_ref = self.ray.put(space)
        return self.ray.get([self.task.remote(space_ref, job) for job in jobs])

    def __enter__(self) -> RayOracles:
        return self

    def __exit__(self, *exception: Any) -> None:
        if self.started_here:
            self.ray.shutdown()


__all__ = ["META_SOLVERS", "PSRO", "OracleJob", "PSROIterate", "RayOracles", "meta_solver", "populations_of",
           "projected_replicator_dynamics", "run", "run_oracle_job"]
