"""Monte Carlo CFR: external sampling and outcome sampling, batched on tensors.

Lanctot, Waugh, Zinkevich and Bowling, "Monte Carlo sampling for regret minimization in
extensive games", NeurIPS 2009. Each iteration updates every player in turn (the
*traverser* ``i``) from sampled parts of the tree instead of the whole tree, with the
sampled counterfactual values ``u_i(z) * pi_{-i}(z) / q(z)`` (``q``: the sampling
probability of terminal ``z``), which are unbiased for the counterfactual values.

External sampling (:class:`ExternalSamplingMCCFR`), per traverser ``i``:

1) expand the tree from the root one depth at a time: at ``i``'s nodes every legal
   action, at chance nodes one outcome drawn by its probability, at other players' nodes
   one action drawn from their current strategy (``K`` independent traversals at once);
2) fold values bottom-up: a terminal is worth ``u_i(z)``, one of ``i``'s nodes
   ``sum_a s(a|I) v(ha)``, any other node its sampled child's value;
3) add ``v(ha) - v(h)`` to the regret of ``(I, a)`` at each of ``i``'s expanded nodes;
4) the average strategy of player ``i + 1`` (mod N) gains its current strategy at each
   of its expanded nodes ("simple" averaging, as in OpenSpiel: its expected weight is the
   player's own reach times a factor that is constant over iterations);
5) regret matching gives ``i``'s next strategy.

Outcome sampling (:class:`OutcomeSamplingMCCFR`), per traverser ``i``:

1) sample ``K`` trajectories, ``i`` acting by ``epsilon * uniform + (1 - epsilon) * s``
   and everyone else by ``s``, chance by its probabilities;
2) with ``W = u_i(z) pi_{-i}(z) / q(z)`` and ``t`` the traverser's own probability of
   the rest of the path after ``(I, a)``, add ``W t (1[a' = a] - s(a|I))`` to the regret of
   every action ``a'`` at each of ``i``'s infosets on the path;
3) at the other players' infosets on the path, the average strategy gains
   ``s(I) * pi_j(h) / q(h)`` (stochastically weighted averaging);
4) regret matching gives ``i``'s next strategy.

Shapes: strategies, regrets and average sums are ``(num_infosets, max_actions)``.
"""

from __future__ import annotations

import torch

from games.errors import SolverError
from games.extensive_form import TERMINAL, ExtensiveFormGame
from solvers.cfr import TreeLearner, regret_matching
from solvers.sampling import padded_policy, sample_paths, sample_slots, tree_index
from solvers.sequence_form import treeplexes

Tensor = torch.Tensor


class _MonteCarloCFR(TreeLearner):
    """State shared by both samplers: current strategy, regrets, average sums, generator."""

    def __init__(self, game: ExtensiveFormGame, *, samples: int, seed: int) -> None:
        if samples < 1:
            raise SolverError(f"samples per iteration must be positive, got {samples}")
        super().__init__(game)
        self.samples = samples
        self._index = tree_index(game)
        self._legal = game.legal_mask.to(game.dtype)
        self._regrets = torch.zeros_like(self._strategy)
        self._generator = torch.Generator(device=game.device)
        self._generator.manual_seed(seed)

    def _match(self, player: int) -> None:
        """Step 5 / 4: regret matching on ``player``'s rows."""
        treeplex = treeplexes(self.game)[player]
        matched = regret_matching(treeplex, treeplex.pack(self._regrets))
        self._strategy = treeplex.unpack_into(self._strategy.clone(), matched)

    def step(self) -> None:
        """One iteration: each player traverses in turn."""
        self.iteration += 1
        for player in range(self.game.num_players):
            self._traverse(player)
            self._match(player)

    def _traverse(self, player: int) -> None:
        raise NotImplementedError


class ExternalSamplingMCCFR(_MonteCarloCFR):
    """External-sampling MCCFR (steps in the module docstring).

    Args:
        game: a compiled game, any number of players, on any device.
        samples: traversals per player per iteration (their regrets are summed).
        seed: seeds the solver's own ``torch.Generator``.
    """

    def __init__(self, game: ExtensiveFormGame, *, samples: int = 1, seed: int = 0) -> None:
        super().__init__(game, samples=samples, seed=seed)

    def _traverse(self, player: int) -> None:
        game, index = self.game, self._index
        width = index.width
        policy = padded_policy(index, self._strategy)
        averaged = (player + 1) % game.num_players
        frontier = torch.zeros(self.samples, dtype=torch.long, device=game.device)
        levels = []
        # Step 1: expand level by level.
        while frontier.numel():
            owner = game.node_player[frontier]
            infoset = game.node_infoset[frontier].clamp_min(0)
            children = index.children[frontier]
            mine = owner == player
            rows = policy[infoset]
            weights = torch.where((owner >= 0)[:, None], rows, index.chance[frontier])
            sampled = sample_slots(torch.where((owner == TERMINAL)[:, None], torch.ones_like(weights), weights),
                                   self._generator)
            expand = torch.where(mine[:, None], children >= 0,
                                 torch.nn.functional.one_hot(sampled, width).bool() & (owner != TERMINAL)[:, None])
            parent_row, slot = torch.nonzero(expand, as_tuple=True)
            levels.append((frontier, owner, infoset, rows, parent_row, slot))
            # Step 4: simple averaging at the next player's expanded nodes.
            at = (owner == averaged).to(game.dtype)[:, None]
            self._average_sum.index_add_(0, infoset, at * rows[:, : game.max_actions])
            frontier = children[parent_row, slot]
        # Steps 2-3: fold values bottom-up and collect regrets.
        utilities = game.terminal_utilities[:, player]
        below = None
        for frontier, owner, infoset, rows, parent_row, slot in reversed(levels):
            child_values = torch.zeros(frontier.numel(), width, dtype=game.dtype, device=game.device)
            if below is not None:
                child_values[parent_row, slot] = below
            mine = (owner == player)[:, None]
            values = torch.where(mine, rows * child_values, child_values).sum(-1)
            values = torch.where(owner == TERMINAL, utilities[index.node_terminal[frontier].clamp_min(0)], values)
            regrets = (child_values - values[:, None]) * index.legal[infoset] * mine
            self._regrets.index_add_(0, infoset, regrets[:, : game.max_actions])
            below = values


class OutcomeSamplingMCCFR(_MonteCarloCFR):
    """Outcome-sampling MCCFR (steps in the module docstring).

    Args:
        game: a compiled game, any number of players, on any device.
        epsilon: the traverser's exploration (OpenSpiel's default, 0.6).
        samples: trajectories per player per iteration.
        seed: seeds the solver's own ``torch.Generator``.
    """

    def __init__(self, game: ExtensiveFormGame, *, epsilon: float = 0.6, samples: int = 1, seed: int = 0) -> None:
        if not 0 < epsilon <= 1:
            raise SolverError(f"exploration epsilon must be in (0, 1], got {epsilon}")
        super().__init__(game, samples=samples, seed=seed)
        self.epsilon = epsilon

    def _traverse(self, player: int) -> None:
        game = self.game
        paths = sample_paths(game, self._strategy, self.samples, self._generator,
                             explore_player=player, epsilon=self.epsilon)
        others = torch.cat([paths.reach[:, :player], paths.reach[:, player + 1:]], 1).prod(1)
        weight = game.terminal_utilities[paths.terminal, player] * others / paths.sample
        tail = torch.ones_like(weight)
        legal = self._legal
        for step in reversed(range(paths.node.shape[0])):
            infoset, slot = paths.infoset[step], paths.slot[step]
            mine = paths.decision[step] & (paths.player[step] == player)
            probability = paths.policy_probability[step]
            onehot = torch.nn.functional.one_hot(slot.clamp_max(game.max_actions - 1), game.max_actions).to(game.dtype)
            # Step 2: sampled regrets at the traverser's infosets.
            delta = (weight * tail)[:, None] * (onehot - probability[:, None]) * legal[infoset]
            self._regrets.index_add_(0, infoset, delta * mine[:, None].to(game.dtype))
            tail = torch.where(mine, tail * probability, tail)
            # Step 3: stochastically weighted averaging at the other players' infosets.
            theirs = paths.decision[step] & (paths.player[step] != player)
            scale = torch.where(theirs, paths.own_reach[step] / paths.sample_reach[step], torch.zeros_like(weight))
            self._average_sum.index_add_(0, infoset, scale[:, None] * self._strategy[infoset])
