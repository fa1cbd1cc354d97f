"""NeuPL and Simplex-NeuPL: one conditional network represents a whole population.

Liu, Marris, Hennes, Merel, Heess and Graepel, "NeuPL: Neural Population Learning", ICLR
2022; Liu, Lanctot, Marris and Heess, "Simplex Neural Population Learning: Any-Mixture
Bayes-Optimality in Symmetric Zero-sum Games", ICML 2022.

A population of N policies is one network ``Pi_theta(a | o, sigma)``: policy i is the
network conditioned on ``sigma_i``, its opponent mixture, row i of the interaction graph
``Sigma`` ``(N, N)``. One iteration (:meth:`NeuPL.step`, NeuPL's Algorithm 1):

1) train: every unique non-zero row ``sigma_i`` at once, ``steps_per_iteration`` Adam
   steps. Policy i best-responds to the ``sigma_i``-mixture of the population's policies
   ``Pi_theta(sigma_j)``; the opponents are the same network, held fixed within a step,
   so the gradient flows through the learner only. The objective is the mean over rows
   of policy i's expected payoff against its mixture, computed exactly on the tree, and
   its gradient (``gradient``) is one of:

   - ``exact``: the policy gradient, by autograd through the sequence form (realization
     plans are products of the network's probabilities);
   - ``counterfactual`` (the default): the all-actions policy gradient on the exact
     counterfactual values ``q(I, a)`` (Srinivasan et al., NeurIPS 2018): the exact
     gradient with each infoset's own reach left out, so an infoset the learner's own
     earlier actions have stopped reaching still learns. Measured, the two are close:
     Kuhn, N = 8, 30 iterations, seeds 0-2, final NashConv 0.091, 0.015, 0.125 with it
     and 0.293, 0.031, 0.022 with ``exact``;
   - ``sampled``: REINFORCE on ``episodes`` episodes per learner, each pairing's terminal
     drawn from its distribution on the tree (the law of playing it out); its mean is
     the exact gradient.

   A penalty on the squared centred logits (``logit_penalty``) keeps the softmax off
   saturation, where a policy could no longer turn when its row moves, and makes each
   response a soft one (:data:`LOGIT_PENALTY_PER_PAYOFF`);
2) evaluate: ``U`` ``(N, N)``, ``U[i, j]`` policy i's expected payoff against policy j,
   exact;
3) ``Sigma <- F(U)``, a meta-graph solver (:data:`GRAPHS`), and ``U`` measured again on the
   new rows, so that between iterations ``U`` is always the payoff table of the population
   the network and ``Sigma`` define. The meta-graph solvers:

   - ``psro-n``: lower-triangular; row 0 is zero and row i+1 is a Nash equilibrium of
     ``U`` restricted to policies ``0..i`` (the meta-solver picked by name from
     ``solvers.psro.META_SOLVERS``);
   - ``fictitious-play``: row 0 zero, row i uniform over policies ``0..i-1``;
   - ``self-play``: population self-play, every row uniform over all N (one unique row);
   - ``cycle``: the strategic cycle, policy i answers policy ``i+1 mod N``.

   A zero row trains nothing: that policy is NeuPL's first, untrained one. Here it is
   the greedy policy of the network as initialized, kept fixed: a pure strategy drawn
   by the seed. (Were it the trained network at ``sigma = 0``, it would move with what
   the shared parameters learn for the rows that answer it; measured on
   rock-paper-scissors, the whole population then chases it to one pure strategy. Were
   it the initialized network's own near-uniform output, the meta-Nash stays on it and
   rock-paper-scissors never gains its third strategy.) The effective population is the
   number of unique rows of ``Sigma``.

The first ``Sigma`` is ``F(U)`` of the untrained network.

Simplex-NeuPL (``simplex = p > 0``): each step also conditions the network on
``simplex_draws`` mixtures drawn from the flat Dirichlet over the population's unique
policies, each learning a best response to its own mixture; the objective weighs the
rows by ``1 - p`` and the draws by ``p`` (the paper's per-episode probability, in
expectation). With ``predict_opponent > 0`` a second head guesses, at each infoset,
which of the population's policies the opponent is; it is trained by cross-entropy
against the exact Bayes posterior (:meth:`SymmetricTree.opponent_posterior`), weighted by
the probability of reaching the infoset: the expectation of the paper's loss on the
sampled opponent's identity.

Games: 2-player constant-sum game trees, symmetrized by alternating seats (normal-form
games through ``games.extensive_form.tree_from_normal_form``). A policy is a behavioural
strategy over the infosets of both seats, ``(num_infosets, max_actions)``, and
``U[i, j] = (u_0(pi_i, pi_j) + u_1(pi_j, pi_i)) / 2``. The network reads each infoset's
observation (OpenSpiel's information-state tensor where the game has one), the seat, and
``sigma``, and adds a learned vector per infoset (:class:`ConditionalPolicy`). In a
symmetric normal-form game (rock-paper-scissors) both seats are one decision
(:func:`symmetric_decisions`), so a policy plays them alike.

The population's strength is the NashConv (OpenSpiel's) of its meta-Nash mixture: the
meta-solver's equilibrium ``w`` of ``U``, as one policy whose realization plan on each
seat is the ``w``-weighted sum of the members' (what OpenSpiel's ``PolicyAggregator``
builds).

NOTE: every row of Sigma is refreshed at every update, so a policy whose row moves starts
from what the network had learned for the old row.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from games.errors import GamelabError, did_you_mean
from games.extensive_form import ExtensiveFormGame

Tensor = torch.Tensor

LOGIT_PENALTY_PER_PAYOFF = 4e-3
"""The default logit penalty per unit of the game's payoff range.

The penalty also sets how soft each best response is, and so where NeuPL settles: with
``psro-n`` and exact best responses the population's fixed point is PSRO's own run, and
softer responses settle on a less exploitable population, up to a point. Measured on Leduc
(payoff range 26), population 16, 45 iterations, median NashConv of the last 30 iterations
(seeds 0, 1, 2): 2.37, 1.96, 2.05 at a weight of 1e-3; 1.38, 1.58, 1.53 at 1e-2; 1.63, 1.49,
1.32 at 3e-2; 1.28, 1.34, 1.20 at 0.1 (this default's 0.104); 0.90, 1.03, 1.20 at 0.26; 1.20 at
1 and 2.33 at 3 (seed 0), where the responses are too soft to answer anything. PSRO with exact
best responses ends at 2.02 when its populations hold 16 policies. Softer is not better in
every respect: PSRO's population of exact best responses beats a soft one in the population
game (relative population performance of NeuPL's against PSRO's, seed 0: +0.056 at 0.1 after
45 iterations, -0.17 at 0.26 after 300 s)."""

STATE_FORMAT = "gamelab.neupl"
STATE_VERSION = 1
GRADIENTS = ("counterfactual", "exact", "sampled")


class NeuPLError(GamelabError):
    """A NeuPL setting, game or saved run that does not fit."""


# --------------------------------------------------------------------------------------
# Meta-graph solvers: U (N, N) -> Sigma (N, N)


def _psro_n(payoffs: Tensor, meta_solver: Callable[[Tensor], list[Tensor]]) -> Tensor:
    size = payoffs.shape[0]
    graph = payoffs.new_zeros(size, size)
    for i in range(1, size):
        block = payoffs[:i, :i]
        graph[i, :i] = meta_solver(torch.stack([block, block.T]))[0].to(payoffs.dtype)
    return graph


def _fictitious_play(payoffs: Tensor, meta_solver: Any = None) -> Tensor:
    size = payoffs.shape[0]
    below = torch.ones(size, size, dtype=payoffs.dtype, device=payoffs.device).tril(-1)
    return below / below.sum(1, keepdim=True).clamp_min(1)


def _self_play(payoffs: Tensor, meta_solver: Any = None) -> Tensor:
    return torch.full_like(payoffs, 1.0 / payoffs.shape[0])


def _cycle(payoffs: Tensor, meta_solver: Any = None) -> Tensor:
    size = payoffs.shape[0]
    return torch.eye(size, dtype=payoffs.dtype, device=payoffs.device).roll(1, dims=1)


GRAPHS: dict[str, tuple[str, Callable[[Tensor, Any], Tensor]]] = {
    "psro-n": ("row i+1 a Nash equilibrium of U restricted to policies 0..i (adaptive)", _psro_n),
    "fictitious-play": ("row i uniform over policies 0..i-1 (static)", _fictitious_play),
    "self-play": ("population self-play: every row uniform over the population (static)", _self_play),
    "cycle": ("the strategic cycle: policy i answers policy i+1 (static)", _cycle),
}


def interaction_graph(name: str, payoffs: Tensor, meta_solver: str = "nash") -> Tensor:
    """``Sigma`` ``(N, N)`` of the meta-graph solver ``name`` for ``U`` ``(N, N)``."""
    if name not in GRAPHS:
        raise NeuPLError(f"unknown interaction graph {name!r}{did_you_mean(name, GRAPHS)}; "
                         f"the graphs are {', '.join(GRAPHS)}")
    return GRAPHS[name][1](payoffs, symmetric_meta_solver(meta_solver) if name == "psro-n" else None)


def symmetric_meta_solver(name: str) -> Callable[[Tensor], list[Tensor]]:
    """The meta-solver ``name`` of ``solvers.psro.META_SOLVERS`` for NeuPL's constant-sum meta-games.

    ``nash`` is the solver table's ``lp`` (HiGHS on the zero-sum LP): the table's ``auto`` also
    polishes and checks supports, which on the degenerate tables of young populations (many
    equal policies) took 0.7 s for an 8x8 game, against 3 ms for the LP (measured on Kuhn).
    """
    from solvers import psro

    if name == "nash":
        return psro.table_meta_solver("lp")
    return psro.meta_solver(name)


def unique_rows(graph: Tensor, decimals: int = 9, inverse: bool = False) -> Any:
    """The first index of each distinct row of ``graph`` ``(N, N)`` (rows equal to ``decimals`` places), in
    order; with ``inverse``, also ``(N,)``: each row's position in that list."""
    seen: dict[tuple, int] = {}
    positions = []
    for row in torch.round(graph, decimals=decimals).tolist():
        positions.append(seen.setdefault(tuple(row), len(seen)))
    first = [positions.index(k) for k in range(len(seen))]
    return (first, torch.tensor(positions, dtype=torch.long)) if inverse else first


def learner_rows(graph: Tensor) -> list[int]:
    """The rows of ``graph`` ``(N, N)`` that train: the first of each unique non-zero row."""
    return [row for row in unique_rows(graph) if float(graph[row].sum()) > 0]


def dirichlet_mixtures(graph: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``(count, N)`` float64 on the CPU: mixtures from the flat Dirichlet over ``graph``'s unique policies
    (on their first rows), Simplex-NeuPL's draws."""
    rows = unique_rows(graph)
    # Normalized Gamma(1) draws (exponentials, from the run's generator) are Dirichlet(1, ..., 1).
    gamma = -torch.log(torch.rand((count, len(rows)), generator=generator, dtype=torch.float64).clamp_min(1e-300))
    mixtures = torch.zeros(count, graph.shape[0], dtype=torch.float64)
    mixtures[:, rows] = gamma / gamma.sum(1, keepdim=True)
    return mixtures


# --------------------------------------------------------------------------------------
# The symmetrized game tree


class SymmetricTree:
    """A 2-player constant-sum game tree played by policies that take either seat.

    Shapes: a batch of policies is ``(K, num_infosets, max_actions)``; its reach is a pair
    (one per seat) of ``(K, num_terminals)``: each policy's own probability of each
    terminal when it sits in that seat; ``observations`` ``(num_infosets, d)``.
    """

    def __init__(self, game: ExtensiveFormGame, observations: Tensor | None = None,
                 decisions: Tensor | None = None) -> None:
        from solvers.sequence_form import treeplexes

        if not isinstance(game, ExtensiveFormGame):
            raise NeuPLError(f"NeuPL plays game trees (and normal-form games made trees), not {type(game).__name__}")
        if game.num_players != 2 or not game.is_constant_sum():
            raise NeuPLError(f"NeuPL needs a 2-player zero-sum (or constant-sum) game; {game.title or 'this game'} "
                             f"has {game.num_players} players" + ("" if game.num_players != 2 else
                                                                  " and is not constant-sum"))
        self.game = game
        self.forms = treeplexes(game)
        self.weights = game.terminal_chance[:, None] * game.terminal_utilities  # (T, 2)
        # Infosets of one decision (both seats of a symmetric game) share the network's inputs, so
        # the policy plays them alike; otherwise every infoset is its own decision and the seat is
        # an input.
        if decisions is None:
            self.decisions = torch.arange(game.num_infosets, device=game.device)
            seat = torch.nn.functional.one_hot(game.infoset_player, 2).float()
        else:
            if tuple(decisions.shape) != (game.num_infosets,) or bool((decisions < 0).any()):
                raise NeuPLError(f"decisions of shape {tuple(decisions.shape)}: expected one id >= 0 per infoset "
                                 f"({game.num_infosets})")
            self.decisions = decisions.to(game.device, torch.long)
            seat = torch.zeros(game.num_infosets, 0, device=game.device)
        if observations is None:
            observations = seat.new_zeros(game.num_infosets, 0)
        if observations.dim() != 2 or observations.shape[0] != game.num_infosets:
            raise NeuPLError(f"observations of shape {tuple(observations.shape)} for {game.num_infosets} infosets: "
                             "expected (num_infosets, d)")
        self.observations = torch.cat([observations.to(game.device, torch.float32), seat], dim=1)
        self.legal = game.legal_mask

    @property
    def observation_size(self) -> int:
        return int(self.observations.shape[1])

    def packed(self, strategies: Tensor) -> list[Tensor]:
        """Each seat's sequences of ``strategies`` ``(K, I, A)``: 2 tensors ``(size_seat, K)``."""
        flat = strategies.reshape(strategies.shape[0], -1)
        return [flat.index_select(1, form.sequence_index).T for form in self.forms]

    def plans(self, strategies: Tensor) -> list[Tensor]:
        """Each seat's realization plans of ``strategies`` ``(K, I, A)``: 2 tensors ``(size_seat + 1, K)``,
        differentiable."""
        return [form.realization_plan(packed) for form, packed in zip(self.forms, self.packed(strategies))]

    def reach(self, strategies: Tensor) -> list[Tensor]:
        """Each seat's own reach of each terminal: 2 tensors ``(K, T)``, differentiable in ``strategies``."""
        return [plan.index_select(0, form.terminal_last).T for form, plan in zip(self.forms, self.plans(strategies))]

    def own_reach(self, strategies: Tensor) -> Tensor:
        """``(K, I)``: each strategy's own probability of its actions before each infoset (of either seat)."""
        own = strategies.new_zeros(strategies.shape[0], self.game.num_infosets)
        for form, plan in zip(self.forms, self.plans(strategies)):
            own[:, form.infosets] = plan.index_select(0, form.infoset_parent).T
        return own

    def payoffs(self, reach: list[Tensor], opponents: list[Tensor]) -> Tensor:
        """``(K, M)``: policy k's payoff against opponent m, seats averaged:
        ``(sum_t w0(t) R0[k, t] O1[m, t] + sum_t w1(t) O0[m, t] R1[k, t]) / 2``."""
        return 0.5 * ((reach[0] * self.weights[:, 0]) @ opponents[1].T
                      + (reach[1] * self.weights[:, 1]) @ opponents[0].T)

    def mixture(self, strategies: Tensor, weights: Tensor) -> Tensor:
        """``(I, A)``: the policy whose realization plan on each seat is the ``weights``-weighted sum of the
        members' ``strategies`` ``(K, I, A)`` (OpenSpiel's ``PolicyAggregator``)."""
        from solvers.sequence_form import behaviour_from_plan

        mixed = strategies[0].detach().clone()
        for player, plans in enumerate(self.plans(strategies)):
            mixed = behaviour_from_plan(self.game, player, plans @ weights.to(plans.dtype), mixed)
        return mixed

    def counterfactual_surrogate(self, strategies: Tensor, opponents: list[Tensor], targets: Tensor) -> Tensor:
        """``(K,)``: ``sum_(I, a) s_k(a | I) q_k(I, a) / 2`` over both seats, the counterfactual values ``q``
        held fixed: its gradient is the all-actions policy gradient with each infoset's own reach
        left out (Srinivasan et al., NeurIPS 2018).

        Shapes: ``strategies`` ``(K, I, A)``; ``opponents`` a pair ``(M, T)``; ``targets`` ``(K, M)``.
        """
        total = strategies.new_zeros(strategies.shape[0])
        for seat, (form, packed) in enumerate(zip(self.forms, self.packed(strategies))):
            weights = (targets @ opponents[1 - seat] * self.weights[:, seat]).T  # (T, K): chance, opponents, payoff
            with torch.no_grad():
                values, _ = form.fold(form.terminal_sums(weights), packed.detach())
            total = total + (packed * values[:-1]).sum(0)
        return 0.5 * total

    def _node_levels(self) -> list[Tensor]:
        """The node ids at each depth from 1 down, cached on the game."""
        game = self.game
        if "node_levels" not in game._cache:
            depths = game.node_depth
            game._cache["node_levels"] = [torch.nonzero(depths == d).flatten() for d in range(1, int(depths.max()) + 1)]
        return game._cache["node_levels"]

    def _chance_reach(self) -> Tensor:
        """``(num_nodes,)``: chance's own probability of reaching each node, cached on the game."""
        game = self.game
        if "chance_reach" not in game._cache:
            chance = game.node_probability.new_ones(game.num_nodes)
            for nodes in self._node_levels():
                chance[nodes] = chance[game.node_parent[nodes]] * game.node_probability[nodes]
            game._cache["chance_reach"] = chance
        return game._cache["chance_reach"]

    def node_reach(self, strategies: Tensor, player: int) -> Tensor:
        """``(K, num_nodes)``: each strategy's own probability of reaching each node as ``player``
        (the product of ``player``'s action probabilities on the way), one depth at a time."""
        game = self.game
        reach = strategies.new_ones(strategies.shape[0], game.num_nodes)
        for nodes in self._node_levels():
            parents = game.node_parent[nodes]
            mine = game.node_player[parents] == player
            # A chance parent's outcome slot may exceed max_actions: such nodes read slot 0, then are masked.
            step = strategies[:, game.node_infoset[parents].clamp_min(0), torch.where(mine, game.node_slot[nodes], 0)]
            reach[:, nodes] = reach[:, parents] * torch.where(mine, step, torch.ones_like(step))
        return reach

    def opponent_posterior(self, opponents: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The exact Bayes posterior over which opponent a learner faces, at each of its infosets.

        A learner conditioned on ``targets[k]`` ``(K, M)`` meets opponent m with probability
        ``targets[k, m]``; at an infoset I of either seat it believes
        ``P(m | I) = targets[k, m] R_m(I) / sum_m' targets[k, m'] R_m'(I)``, where ``R_m(I)``
        sums, over the histories in I, chance's probability times opponent m's own reach (its
        own reach is the same at every history of I, by perfect recall, and cancels).

        Shapes: ``opponents`` ``(M, I, A)``. Returns ``(posterior (K, I, M), evidence (K, I))``,
        ``evidence`` the probability of reaching I but for the learner's own actions (a uniform
        posterior where it is 0).
        """
        game = self.game
        decision = game.node_infoset >= 0
        infosets = game.node_infoset[decision]
        chance = self._chance_reach()
        mass = opponents.new_zeros(opponents.shape[0], game.num_infosets)  # (M, I): R_m(I)
        for seat in (0, 1):
            reach = self.node_reach(opponents, 1 - seat)[:, decision] * chance[decision]  # (M, decision nodes)
            at_seat = game.node_player[decision] == seat
            mass = mass.index_add(1, infosets[at_seat], reach[:, at_seat])
        joint = targets[:, None, :] * mass.T[None]  # (K, I, M)
        evidence = joint.sum(-1)
        posterior = torch.where(evidence[..., None] > 0, joint / evidence.clamp_min(1e-300)[..., None],
                                torch.full_like(joint, 1.0 / joint.shape[-1]))
        return posterior, evidence

    def best_response_value(self, strategies: Tensor, weights: Tensor) -> Tensor:
        """The seat-averaged value of an exact best response to the ``weights``-mixture of ``strategies``. ``()``."""
        from solvers.sequence_form import best_response_to_reach

        reach = self.reach(strategies)
        uniform = self.game.uniform_strategy()
        values = [best_response_to_reach(self.game, seat, self.game.terminal_chance * (weights @ reach[1 - seat]),
                                         uniform)[1] for seat in (0, 1)]
        return 0.5 * (values[0] + values[1])

    def sample(self, reach: list[Tensor], opponents: list[Tensor], targets: Tensor, episodes: int,
               generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Episodes of each learner k against opponents drawn from ``targets[k]`` ``(K, M)``, seats alternating.

        Returns ``(seat (E,), opponent (K, E), terminal (K, E))``; each pairing's terminal is
        drawn from ``chance(t) * own_seat(t) * own_other_seat(t)``, the law of playing it out.
        """
        num_learners, num_opponents = targets.shape
        terminals = self.game.num_terminals
        device = targets.device
        seat = torch.arange(episodes, device=device) % 2
        opponent = torch.multinomial(targets.float().cpu(), episodes, replacement=True,
                                     generator=generator).to(device)
        chance = self.game.terminal_chance
        first, second = (r.detach() for r in reach)
        probabilities = chance * torch.stack([first[:, None] * opponents[1][None], opponents[0][None] * second[:, None]],
                                             dim=2)  # (K, M, 2, T)
        cdf = probabilities.cumsum(-1)
        cdf = cdf / cdf[..., -1:]
        pairs = num_learners * num_opponents * 2
        # Row p of the flattened CDFs spans (p, p + 1]: one sorted search draws every episode.
        flat = (cdf.reshape(pairs, terminals) + torch.arange(pairs, device=device, dtype=cdf.dtype)[:, None]).reshape(-1)
        pair = (torch.arange(num_learners, device=device)[:, None] * num_opponents + opponent) * 2 + seat
        uniform = torch.rand((num_learners, episodes), generator=generator, dtype=cdf.dtype).to(device)
        position = torch.searchsorted(flat, pair + uniform.clamp(1e-12, 1 - 1e-12))
        terminal = (position - pair * terminals).clamp(0, terminals - 1)
        return seat, opponent, terminal


def symmetric_decisions(game: ExtensiveFormGame, normal_form: Any = None) -> Tensor | None:
    """The two seats of a symmetric normal-form game as one decision, for :class:`NeuPL`'s ``decisions``.

    ``game`` is ``tree_from_normal_form(normal_form)``; returns ``(0, 0)`` when
    ``normal_form`` is a 2-player game with ``u_1(a, b) = u_0(b, a)`` (rock-paper-scissors),
    else None (each seat its own decision).
    """
    if normal_form is None or normal_form.num_players != 2 or normal_form.num_actions[0] != normal_form.num_actions[1]:
        return None
    payoffs = normal_form.payoffs
    if not torch.allclose(payoffs[1], payoffs[0].T, atol=1e-12, rtol=0):
        return None
    return torch.zeros(game.num_infosets, dtype=torch.long, device=game.device)


def load_neupl_game(spec: str, device: Any = None, game: Any = None) -> tuple[ExtensiveFormGame, Tensor | None,
                                                                            Tensor | None]:
    """``(tree, observations, decisions)`` for NeuPL: the game ``spec`` as a tree, OpenSpiel's
    information-state tensors where it has them, and the seats of a symmetric normal-form game
    as one decision. ``game``: ``spec`` already loaded (``games.loading.load_game``, float64), so
    it is not compiled again. Raises :class:`NeuPLError` for a Markov game or a normal-form game
    that is not 2-player (and :class:`NeuPL` for one that is not zero-sum)."""
    import os

    from games.extensive_form import tree_from_normal_form
    from games.loading import load_game
    from marl.envs import is_markov_game

    if is_markov_game(spec):
        raise NeuPLError(f"{spec} is a Markov game; NeuPL runs on it with the MADDPG learner in "
                         "marl.neupl_markov (gamelab neupl picks it)")
    if game is None:
        game = load_game(spec, dtype=torch.float64, device=device)
    if isinstance(game, ExtensiveFormGame):
        observations = None
        if not os.path.exists(spec) and not spec.endswith(".efg"):
            from games.adapters.openspiel import information_state_tensors

            observations = information_state_tensors(game, spec)
        return game, observations, None
    if game.num_players != 2:
        raise NeuPLError(f"NeuPL needs a 2-player zero-sum game; {spec} has {game.num_players} players")
    tree = tree_from_normal_form(game)
    return tree, None, symmetric_decisions(tree, game)


# --------------------------------------------------------------------------------------
# The conditional network


class ConditionalPolicy(nn.Module):
    """``Pi_theta(a | o, sigma)``: an MLP on ``[observation, sigma]`` plus a learned vector per infoset, its
    logits masked to the legal actions.

    The first layer adds an embedding of the infoset's id to its affine map of the observation
    and sigma (a linear layer on a one-hot of the id, without the one-hot). It gives the network
    a parameter row per infoset: measured on a Leduc best response, a network reading OpenSpiel's
    information-state tensor alone stalled 0.10 to 0.15 short of the best response after 600
    steps, and 0.009 short with the infoset's own row.

    Shapes: ``observations`` ``(I, d)``, ``sigmas`` ``(K, N)``, ``legal`` ``(I, A)``, ``decisions``
    ``(I,)`` (each infoset's row of the embedding); :meth:`logits` returns ``(K, I, A)`` with ``-inf`` at illegal actions, ``forward`` the
    probabilities ``(K, I, A)``, zero there.
    """

    def __init__(self, observation_size: int, population: int, num_decisions: int, max_actions: int,
                 hidden_sizes: tuple[int, ...] = (128, 128), predict_opponent: bool = False) -> None:
        super().__init__()
        first, *rest = hidden_sizes
        self.first = nn.Linear(observation_size + population, first)
        self.infoset = nn.Embedding(num_decisions, first)
        nn.init.normal_(self.infoset.weight, std=1.0 / math.sqrt(num_decisions + observation_size + population))
        layers: list[nn.Module] = [nn.ReLU()]
        width = first
        for hidden in rest:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.actions = nn.Linear(width, max_actions)
        self.opponent = nn.Linear(width, population) if predict_opponent else None

    def _hidden(self, observations: Tensor, sigmas: Tensor, decisions: Tensor) -> Tensor:
        num, infosets = sigmas.shape[0], observations.shape[0]
        inputs = torch.cat([observations.expand(num, -1, -1),
                            sigmas.to(observations.dtype)[:, None, :].expand(-1, infosets, -1)], dim=-1)
        return self.trunk(self.first(inputs) + self.infoset(decisions))

    def logits(self, observations: Tensor, sigmas: Tensor, legal: Tensor, decisions: Tensor) -> Tensor:
        return self.actions(self._hidden(observations, sigmas, decisions)).masked_fill(~legal, -torch.inf)

    def heads(self, observations: Tensor, sigmas: Tensor, legal: Tensor, decisions: Tensor) -> tuple[Tensor, Tensor]:
        """``(action logits (K, I, A), opponent logits (K, I, N))``: the second head predicts which policy of
        the population the opponent is (networks built with ``predict_opponent``)."""
        hidden = self._hidden(observations, sigmas, decisions)
        return self.actions(hidden).masked_fill(~legal, -torch.inf), self.opponent(hidden)

    def forward(self, observations: Tensor, sigmas: Tensor, legal: Tensor, decisions: Tensor) -> Tensor:
        return torch.softmax(self.logits(observations, sigmas, legal, decisions), dim=-1)


# --------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class PopulationSettings:
    """The settings every NeuPL run has, on trees (:class:`NeuPLConfig`) and on Markov games
    (``marl.neupl_markov.MarkovNeuPLConfig``)."""

    population: int = 8
    """N, the number of policies (rows of Sigma)."""
    graph: str = "psro-n"
    meta_solver: str = "nash"
    """The meta-solver of ``psro-n``'s rows and of the meta-Nash mixture (``solvers.psro.META_SOLVERS``)."""
    simplex: float = 0.0
    """Simplex-NeuPL's share of mixtures drawn from the simplex (0: NeuPL): on trees the weight of their
    loss, on Markov games the probability that a copy's learner is conditioned on one."""

    def check_population(self) -> None:
        """Raises :class:`NeuPLError` naming the first of these settings that does not fit."""
        if self.graph not in GRAPHS:
            raise NeuPLError(f"unknown interaction graph {self.graph!r}{did_you_mean(self.graph, GRAPHS)}; "
                             f"the graphs are {', '.join(GRAPHS)}")
        from solvers.psro import META_SOLVERS

        if self.meta_solver not in META_SOLVERS or self.meta_solver in ("ce", "cce", "rectified"):
            names = [name for name in META_SOLVERS if name not in ("ce", "cce", "rectified")]
            raise NeuPLError(f"meta-solver {self.meta_solver!r}: NeuPL takes one of {', '.join(names)}")
        if not 2 <= self.population <= 1024:
            raise NeuPLError(f"population {self.population}: a population has 2 to 1024 policies")
        if not 0.0 <= self.simplex < 1.0 or math.isnan(self.simplex):
            raise NeuPLError(f"simplex {self.simplex}: the weight of simplex mixtures is in [0, 1)")


@dataclass(frozen=True)
class NeuPLConfig(PopulationSettings):
    """The settings of a NeuPL run on a tree (every field is recorded in its state)."""

    simplex_draws: int = 16
    """Mixtures drawn per step when ``simplex > 0``."""
    predict_opponent: float = 0.0
    """Weight of the opponent-prediction head's loss (0: no head): the cross-entropy of the head's guess of
    which policy the opponent is against the exact Bayes posterior, weighted by how often each infoset is
    reached (what the sampled opponent's identity trains in expectation)."""
    steps_per_iteration: int = 50
    """Gradient steps between meta-graph updates."""
    learning_rate: float = 1e-3
    logit_penalty: float | None = None
    """Weight of the mean squared centred logit per infoset, subtracted from the objective; None:
    :data:`LOGIT_PENALTY_PER_PAYOFF` times the game's payoff range (the objective is in payoffs). It
    keeps the softmax off saturation, where every policy gradient vanishes: a policy that went pure
    against one row of Sigma could not turn when the row moved (measured on Kuhn without it:
    learners stayed 1/12 short of a best response, their wrong actions at probability 1e-12)."""
    hidden_sizes: tuple[int, ...] = (128, 128)
    gradient: str = "counterfactual"
    """``counterfactual`` (the all-actions policy gradient on exact counterfactual values), ``exact``
    (the policy gradient through the sequence form) or ``sampled`` (REINFORCE on ``episodes``
    episodes)."""
    episodes: int = 256
    """Episodes per learner per step with ``gradient="sampled"``."""
    seed: int = 0

    def check(self) -> None:
        """Raises :class:`NeuPLError` naming the first setting that does not fit."""
        self.check_population()
        for name in ("simplex_draws", "steps_per_iteration", "episodes"):
            if getattr(self, name) < 1:
                raise NeuPLError(f"{name} {getattr(self, name)}: must be at least 1")
        if not self.predict_opponent >= 0:
            raise NeuPLError(f"predict_opponent {self.predict_opponent}: must be at least 0")
        if self.logit_penalty is not None and not self.logit_penalty >= 0:
            raise NeuPLError(f"logit_penalty {self.logit_penalty}: must be at least 0")
        if not self.learning_rate > 0:
            raise NeuPLError(f"learning_rate {self.learning_rate}: must be positive")
        if self.gradient not in GRADIENTS:
            raise NeuPLError(f"gradient {self.gradient!r}: one of {', '.join(GRADIENTS)}")
        if not self.hidden_sizes or any(int(h) < 1 for h in self.hidden_sizes):
            raise NeuPLError(f"hidden_sizes {self.hidden_sizes}: positive layer widths")


@dataclass
class NeuPLIterate:
    """What one iteration did and measured."""

    iteration: int
    seconds: float
    """Seconds of training and evaluation since the run started."""
    nash_conv: float
    """NashConv of the population's meta-Nash mixture in the full game, exact."""
    effective_population: int
    """Unique rows of the Sigma this iteration trained against."""
    meta_nash: list[float]
    """The meta-Nash mixture ``(N,)`` of the new U."""
    sigma: list[list[float]]
    """The interaction graph ``(N, N)`` after the update (the next iteration trains against it)."""
    payoffs: list[list[float]]
    """U ``(N, N)`` of the network on the new rows."""


@dataclass
class NeuPL:
    """A NeuPL (or Simplex-NeuPL) run on one game tree; see the module docstring.

    Args:
        game: a 2-player constant-sum :class:`ExtensiveFormGame`.
        config: the run's settings.
        observations: ``(num_infosets, d)`` what the network reads at each infoset (None: a
            one-hot of the infoset).
    """

    game: ExtensiveFormGame
    config: NeuPLConfig = field(default_factory=NeuPLConfig)
    observations: Tensor | None = None
    decisions: Tensor | None = None
    """``(num_infosets,)``: infosets with one id are one decision, played alike (the two seats of a
    symmetric game: :func:`symmetric_decisions`); None: every infoset its own."""
    history: list[NeuPLIterate] = field(init=False)

    def __post_init__(self) -> None:
        self.config.check()
        self.tree = SymmetricTree(self.game, self.observations, self.decisions)
        config = self.config
        utilities = self.game.terminal_utilities
        self.logit_penalty = config.logit_penalty if config.logit_penalty is not None else \
            LOGIT_PENALTY_PER_PAYOFF * float(utilities.max() - utilities.min())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.network = ConditionalPolicy(self.tree.observation_size, config.population,
                                             int(self.tree.decisions.max()) + 1,
                                             self.game.max_actions, tuple(int(h) for h in config.hidden_sizes),
                                             predict_opponent=config.predict_opponent > 0).to(self.game.device)
            with torch.no_grad():
                first = self.network(self.tree.observations, torch.zeros(1, config.population, device=self.game.device),
                                     self.tree.legal, self.tree.decisions)[0]
        self.untrained = torch.nn.functional.one_hot(first.argmax(-1), self.game.max_actions).to(self.game.dtype)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.history = []
        # U of the untrained network, measured on the graph of a zero payoff table; then Sigma = F(U),
        # and U of that population. Between steps, U is always the payoffs of the network on Sigma's rows.
        size = config.population
        self.sigma = interaction_graph(config.graph, torch.zeros(size, size, dtype=self.game.dtype,
                                                                 device=self.game.device), config.meta_solver)
        self.sigma = interaction_graph(config.graph, self.evaluate(), config.meta_solver)
        self.payoffs = self.evaluate()
        self._seconds = 0.0

    @property
    def iteration(self) -> int:
        return len(self.history)

    # ------------------------------------------------------------------ policies
    def policies(self, sigmas: Tensor) -> Tensor:
        """``(K, I, A)`` in the game's dtype: the network conditioned on each row of ``sigmas`` ``(K, N)``
        (the untrained policy for zero rows)."""
        return self._forward(sigmas)[1]

    def _forward(self, sigmas: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, policies)``, both ``(K, I, A)``: the network's logits, and :meth:`policies`."""
        logits, probabilities, _ = self._heads(sigmas)
        return logits, probabilities

    def _heads(self, sigmas: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """:meth:`_forward`'s pair and the opponent head's logits ``(K, I, N)`` (None without the head)."""
        sigmas = sigmas.to(self.game.device, torch.float32)
        arguments = (self.tree.observations, sigmas, self.tree.legal, self.tree.decisions)
        guesses = None
        if self.network.opponent is not None:
            logits, guesses = self.network.heads(*arguments)
        else:
            logits = self.network.logits(*arguments)
        probabilities = torch.softmax(logits, dim=-1).to(self.game.dtype)
        untrained = sigmas.sum(1) == 0
        if bool(untrained.any()):
            probabilities = torch.where(untrained[:, None, None], self.untrained, probabilities)
        return logits, probabilities, guesses

    def prediction_loss(self, guesses: Tensor, learners: Tensor, opponents: Tensor, targets: Tensor) -> Tensor:
        """``(K,)``: the opponent head's cross-entropy against the exact posterior, weighted by each infoset's
        probability of being reached (seats averaged). Shapes: ``guesses`` ``(K, I, N)``, ``learners``
        ``(K, I, A)``, ``opponents`` ``(N, I, A)``, ``targets`` ``(K, N)``."""
        posterior, evidence = self.tree.opponent_posterior(opponents, targets)
        weight = self.tree.own_reach(learners) * evidence  # (K, I)
        cross_entropy = -(posterior * torch.log_softmax(guesses.to(posterior.dtype), -1)).sum(-1)
        return 0.5 * (weight * cross_entropy).sum(-1)

    def prediction_error(self, sigmas: Tensor) -> float:
        """The opponent head's mean total-variation distance from the exact posterior, over the infosets of
        policies conditioned on ``sigmas`` ``(K, N)``, weighted by how often each is reached."""
        if self.network.opponent is None:
            raise NeuPLError("this run's network has no opponent-prediction head (predict_opponent is 0)")
        with torch.no_grad():
            _, learners, guesses = self._heads(sigmas)
            posterior, evidence = self.tree.opponent_posterior(self.strategies(), sigmas.to(self.game.dtype))
            weight = self.tree.own_reach(learners) * evidence
            distance = 0.5 * (torch.softmax(guesses.to(posterior.dtype), -1) - posterior).abs().sum(-1)
            return float((weight * distance).sum() / weight.sum())

    def strategies(self) -> Tensor:
        """``(N, I, A)``: the population's policies, one per row of Sigma (no gradient)."""
        with torch.no_grad():
            return self.policies(self.sigma)

    def evaluate(self) -> Tensor:
        """U ``(N, N)``, exact: each policy's payoff against each, seats averaged."""
        with torch.no_grad():
            reach = self.tree.reach(self.policies(self.sigma))
            return self.tree.payoffs(reach, reach)

    def meta_nash(self, payoffs: Tensor | None = None) -> Tensor:
        """``(N,)``: the meta-solver's equilibrium of the symmetric meta-game U (this run's, by default)."""
        table = self.payoffs if payoffs is None else payoffs
        return symmetric_meta_solver(self.config.meta_solver)(torch.stack([table, table.T]))[0].to(self.game.dtype)

    def mixture_strategy(self, weights: Tensor) -> Tensor:
        """``(I, A)``: the ``weights``-mixture ``(N,)`` of the population as one behavioural strategy."""
        return self.tree.mixture(self.strategies(), weights)

    def nash_conv(self, weights: Tensor | None = None) -> float:
        """NashConv of a mixture of the population (the meta-Nash mixture by default), exact."""
        from solvers.sequence_form import nash_conv

        weights = self.meta_nash() if weights is None else weights
        return float(nash_conv(self.game, self.mixture_strategy(weights)))

    def effective_population(self) -> int:
        return len(unique_rows(self.sigma))

    # ------------------------------------------------------------------ training
    def learners(self) -> list[int]:
        """The rows trained: one per unique non-zero row of Sigma."""
        return learner_rows(self.sigma)

    def simplex_mixtures(self, count: int) -> Tensor:
        """``(count, N)``: mixtures from the flat Dirichlet over the unique policies (on their first rows)."""
        return dirichlet_mixtures(self.sigma, count, self.generator).to(self.game.device, self.game.dtype)

    def objective(self, learners: list[int], mixtures: Tensor | None = None, *,
                  gradient: str | None = None) -> Tensor:
        """The step's objective ``()`` (to maximize): ``(1 - p)`` times the mean over ``learners`` (rows of Sigma)
        of each one's payoff against its row's mixture, plus ``p`` times the mean over ``mixtures`` ``(D, N)``
        (Simplex-NeuPL) of the network's response to each against that mixture.

        Opponents are the population's policies with no gradient; ``gradient`` (the run's by
        default) chooses the surrogate that is differentiated: the exact payoff, the
        counterfactual surrogate, or REINFORCE's (whose gradient has the exact one as its
        expectation). The logit penalty is subtracted from every learner's term.
        """
        config = self.config
        # The network runs once per distinct row of Sigma (equal rows are one policy), then per mixture.
        distinct, inverse = unique_rows(self.sigma, inverse=True)
        device = self.sigma.device
        inverse = inverse.to(device)
        conditions = self.sigma[distinct] if mixtures is None else torch.cat([self.sigma[distinct], mixtures])
        logits, strategies, guesses = self._heads(conditions)
        opponents = [reach.detach().index_select(0, inverse) for reach in self.tree.reach(strategies[:len(distinct)])]
        draws = 0 if mixtures is None else mixtures.shape[0]
        picked = torch.cat([inverse[torch.tensor(learners, dtype=torch.long, device=device)],
                            torch.arange(len(distinct), len(distinct) + draws, device=device)])
        targets = self.sigma[learners] if mixtures is None else torch.cat([self.sigma[learners], mixtures])
        learning = strategies.index_select(0, picked)
        share = 1.0 - config.simplex if mixtures is not None else 1.0
        coefficients = torch.cat([torch.full((len(learners),), share / max(len(learners), 1)),
                                  torch.full((len(picked) - len(learners),), config.simplex / max(
                                      len(picked) - len(learners), 1))]).to(targets)
        legal = self.tree.legal
        mine = logits.index_select(0, picked).masked_fill(~legal, 0.0)
        centred = (mine - mine.sum(-1, keepdim=True) / legal.sum(-1, keepdim=True)).masked_fill(~legal, 0.0)
        penalty = (centred ** 2).sum(-1).mean(-1).to(self.game.dtype)  # (K,)
        mode = gradient or config.gradient
        if mode == "exact":
            values = (targets * self.tree.payoffs(self.tree.reach(learning), opponents)).sum(1)
        elif mode == "counterfactual":
            values = self.tree.counterfactual_surrogate(learning, opponents, targets)
        else:
            reach = self.tree.reach(learning)
            seat, _, terminal = self.tree.sample(reach, opponents, targets, config.episodes, self.generator)
            utilities = self.game.terminal_utilities[terminal, seat]  # (K, E): the learner's payoff
            own = torch.where(seat == 0, reach[0].gather(1, terminal), reach[1].gather(1, terminal))
            values = (utilities * torch.log(own)).mean(1)
        values = values - self.logit_penalty * penalty
        if guesses is not None:
            values = values - config.predict_opponent * self.prediction_loss(
                guesses.index_select(0, picked), learning.detach(),
                strategies[:len(distinct)].detach().index_select(0, inverse), targets)
        return (coefficients * values).sum()

    def train(self, steps: int) -> None:
        """``steps`` gradient steps of every learner (and simplex draw) against the current Sigma."""
        learners = self.learners()
        for _ in range(steps):
            mixtures = self.simplex_mixtures(self.config.simplex_draws) if self.config.simplex > 0 else None
            if not learners and mixtures is None:
                return
            loss = -self.objective(learners, mixtures)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()

    def step(self) -> NeuPLIterate:
        """One iteration: train against Sigma, measure U, Sigma <- F(U); then U of the new population
        (the network on the new rows) and NashConv of its meta-Nash mixture."""
        started = time.perf_counter()
        effective = self.effective_population()
        self.train(self.config.steps_per_iteration)
        trained = self.evaluate()
        graph = interaction_graph(self.config.graph, trained, self.config.meta_solver)
        self.payoffs = trained if torch.equal(graph, self.sigma) else None
        self.sigma = graph
        if self.payoffs is None:  # new rows: the population changed with them
            self.payoffs = self.evaluate()
        weights = self.meta_nash()
        nash_conv = self.nash_conv(weights)
        self._seconds += time.perf_counter() - started
        record = NeuPLIterate(self.iteration + 1, self._seconds, nash_conv, effective, weights.tolist(),
                              self.sigma.tolist(), self.payoffs.tolist())
        self.history.append(record)
        return record

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (tensors, numbers, strings: loads with ``weights_only=True``)."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": {**dataclasses.asdict(self.config), "hidden_sizes": list(self.config.hidden_sizes)},
            "network": self.network.state_dict(),
            "untrained": self.untrained.cpu(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "sigma": self.sigma.cpu(),
            "payoffs": self.payoffs.cpu(),
            "seconds": self._seconds,
            "history": [dataclasses.asdict(record) for record in self.history],
        }

    def load_state_dict(self, state: Any, source: str = "the saved run") -> None:
        """Continues from :meth:`state_dict`'s output.

        Raises:
            NeuPLError: naming ``source``, for a state of another format, game or setting.
        """
        def fail(message: str) -> NeuPLError:
            return NeuPLError(f"{source}: {message}")

        from games.io import saved_format_problem

        problem = saved_format_problem(state, STATE_FORMAT, STATE_VERSION, "NeuPL run")
        if problem is not None:
            raise fail(problem)
        recorded = config_from_record(state.get("config"), source)
        if recorded != self.config:
            changed = [f.name for f in dataclasses.fields(NeuPLConfig)
                       if getattr(recorded, f.name) != getattr(self.config, f.name)]
            raise fail(f"the run was made with other settings ({', '.join(changed)})")
        history = saved_history(state, ("sigma", "payoffs"), self.config.population, fail)
        try:
            self.network.load_state_dict(state["network"])
            untrained = state["untrained"]
            if not isinstance(untrained, Tensor) or untrained.shape != self.untrained.shape:
                raise ValueError("its untrained policy has another shape")
            self.untrained = untrained.to(self.game.device, self.game.dtype)
            self.optimizer.load_state_dict(state["optimizer"])
            self.generator.set_state(state["generator"])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise fail(f"its network does not fit this game and population ({str(error).splitlines()[0]})") from None
        self.sigma = state["sigma"].to(self.game.device, self.game.dtype)
        self.payoffs = state["payoffs"].to(self.game.device, self.game.dtype)
        self._seconds = float(state.get("seconds", 0.0))
        self.history = history


def saved_history(state: dict, tables: tuple[str, ...], size: int,
                  fail: Callable[[str], Exception]) -> list[NeuPLIterate]:
    """A saved run's history, after checking that each of its ``tables`` is ``(size, size)``; raises
    ``fail(message)`` otherwise (shared by the runs on trees and on Markov games)."""
    for name in tables:
        value = state.get(name)
        if not isinstance(value, Tensor) or tuple(value.shape) != (size, size):
            raise fail(f"its {name} is not a ({size}, {size}) table")
    fields = {item.name for item in dataclasses.fields(NeuPLIterate)}
    history = state.get("history")
    if not isinstance(history, list) or not all(isinstance(r, dict) and set(r) == fields for r in history):
        raise fail("its history is malformed")
    return [NeuPLIterate(**row) for row in history]


def config_from_record(record: Any, source: str = "the saved run") -> NeuPLConfig:
    """The :class:`NeuPLConfig` a state recorded; raises :class:`NeuPLError` for a malformed one."""
    names = {item.name for item in dataclasses.fields(NeuPLConfig)}
    if not isinstance(record, dict) or set(record) != names:
        raise NeuPLError(f"{source}: its settings are malformed")
    try:
        config = NeuPLConfig(**{**record, "hidden_sizes": tuple(int(h) for h in record["hidden_sizes"])})
        config.check()
    except (TypeError, ValueError, NeuPLError) as error:
        raise NeuPLError(f"{source}: its settings are malformed ({error})") from None
    return config


def run(neupl: NeuPL, *, iterations: int | None = None, seconds: float | None = None,
        callback: Callable[[NeuPLIterate], None] | None = None) -> NeuPL:
    """Steps ``neupl`` until it has ``iterations`` in all, or ``seconds`` of its own time have passed."""
    if iterations is None and seconds is None:
        raise NeuPLError("a NeuPL run needs a number of iterations or a time budget")
    while (iterations is None or neupl.iteration < iterations) and (seconds is None or neupl._seconds < seconds):
        record = neupl.step()
        if callback is not None:
            callback(record)
    return neupl


__all__ = ["GRAPHS", "LOGIT_PENALTY_PER_PAYOFF", "ConditionalPolicy", "NeuPL", "NeuPLConfig", "NeuPLError",
           "NeuPLIterate", "SymmetricTree", "config_from_record", "dirichlet_mixtures", "interaction_graph",
           "learner_rows", "load_neupl_game", "run", "saved_history", "symmetric_decisions", "unique_rows"]
