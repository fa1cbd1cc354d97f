"""Sequence-form computations on a compiled :class:`ExtensiveFormGame`, level by level.

Koller, Megiddo and von Stengel, "Efficient computation of equilibria for extensive
two-person games", Games Econ. Behav. 1996; the counterfactual values are those of
Zinkevich, Johanson, Bowling and Piccione, "Regret minimization in games with incomplete
information", NeurIPS 2007.

Each player's sequence form is a :class:`Treeplex`: its legal sequences ``(I, a)``
packed into one vector with no padding (liars_dice: 49,140 legal sequences among
24,576 infosets of up to 12 actions, where a padded ``(num_infosets, max_actions)``
tensor has 294,912 entries), infoset by infoset and level by level, with the empty
sequence last. For a behavioural strategy ``s``:

1) the *realization plan* ``R[I, a]`` of a player is the product of its own
   probabilities along its sequence ending in ``(I, a)``; it is built top-down over the
   player's infoset tree, one gather and one multiply per level;
2) at terminal z, player j's own reach is ``R_j`` at j's last sequence (1 for the empty
   one), so the probability of z is ``chance(z) * prod_j own_j(z)``, and the reach of
   everyone but player i is ``chance(z) * prod_{j != i} own_j(z)``;
3) the *counterfactual value* of player i's sequence ``(I, a)`` sums
   ``reach_{-i}(z) * u_i(z)`` over the terminals whose last i-sequence it is (a
   scatter-add), plus the values of the infosets that follow it; it is folded bottom-up
   over player i's infoset tree, where an infoset's value is ``sum_a s(a|I) Q[I, a]``
   (on-policy) or ``max_a Q[I, a]`` (a best response), a segment sum (or maximum) over
   the infoset's run of sequences.

Nothing here walks nodes; each level is a gather, a multiply and a scatter. The
functions taking and returning ``(num_infosets, max_actions)`` tensors wrap the packed
ones through the padded flat layout of :class:`_Layout` (sequence ``(I, a)`` at
``I * max_actions + a``), which is also where each treeplex learns its parent and
terminal sequences.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import torch

from games.extensive_form import ExtensiveFormGame

Tensor = torch.Tensor


class _Layout:
    """The padded flat layout, computed once per game: sequences live in one flat vector
    of ``num_infosets * max_actions + 1`` entries, sequence ``(I, a)`` at
    ``I * max_actions + a`` and the empty sequence at the last index (``empty``). In a
    realization plan that entry holds 1."""

    def __init__(self, game: ExtensiveFormGame) -> None:
        self.size = game.num_infosets * game.max_actions + 1
        self.empty = self.size - 1
        self.parent_flat = torch.where(
            game.infoset_parent >= 0, game.infoset_parent * game.max_actions + game.infoset_parent_slot,
            torch.full_like(game.infoset_parent, self.empty),
        )
        self.terminal_last_flat = torch.where(
            game.terminal_last_infoset >= 0, game.terminal_last_infoset * game.max_actions + game.terminal_last_slot,
            torch.full_like(game.terminal_last_infoset, self.empty),
        )


def segment_sum(values: Tensor, segment: Tensor, count: int) -> Tensor:
    """Sums of ``values`` ``(n, ...)`` per segment id in ``segment`` ``(n,)``. Shape ``(count, ...)``."""
    zeros = values.new_zeros(count) if values.dim() == 1 else values.new_zeros((count, *values.shape[1:]))
    return zeros.index_add_(0, segment, values)


def segment_max(values: Tensor, segment: Tensor, count: int) -> Tensor:
    """Maxima of ``values`` ``(n,)`` per segment id in ``segment`` ``(n,)`` (-inf where empty). Shape ``(count,)``."""
    return values.new_full((count,), -torch.inf).scatter_reduce_(0, segment, values, "amax")


class _Level(NamedTuple):
    """One level of a player's infoset tree in its :class:`Treeplex`.

    ``infosets`` and ``sequences`` are the level's ranges of packed infosets and
    sequences; ``segment`` ``(sequences,)`` numbers each sequence's infoset from 0 within
    the level; ``parents`` ``(infosets,)`` is each infoset's parent sequence (packed,
    ``size`` for the empty one); ``sequence_parents`` ``(sequences,)`` is each sequence's
    parent sequence counted from the start of the level above (None on level 0), and
    ``folds_into`` ``(sequences,)`` the same parent sequence as a packed index (``size`` on level 0)."""

    infosets: slice
    sequences: slice
    segment: Tensor
    parents: Tensor
    sequence_parents: Tensor | None
    folds_into: Tensor

    @property
    def num_infosets(self) -> int:
        return self.infosets.stop - self.infosets.start


class Treeplex:
    """One player's sequence form, packed: its legal sequences only, and no padding.

    The player's infosets are ``infosets`` (game ids, level by level, shallowest first);
    its sequences are numbered ``0..size-1`` infoset by infoset in that order, each
    infoset's legal slots in increasing order, and ``size`` stands for the empty sequence.
    So each level, and each infoset, is a contiguous run of sequences.

    Tensors: ``sequence_infoset`` ``(size,)`` (packed infoset of each sequence);
    ``sequence_index`` ``(size,)`` (its place ``I * max_actions + a`` in the padded
    layout); ``terminal_last`` ``(num_terminals,)`` (the player's last sequence before each
    terminal, ``size`` if none); ``uniform`` ``(size,)`` (the uniform strategy).
    """

    def __init__(self, game: ExtensiveFormGame, player: int) -> None:
        device = game.device
        levels = game.levels(player)
        self.infosets = torch.cat(levels) if levels else torch.zeros(0, dtype=torch.long, device=device)
        self.num_infosets = len(self.infosets)
        legal = game.legal_mask[self.infosets]
        rows, slots = legal.nonzero(as_tuple=True)
        self.size = len(rows)
        self.sequence_infoset = rows
        self.sequence_index = self.infosets[rows] * game.max_actions + slots
        counts = legal.sum(-1)
        self.uniform = (1 / counts.to(game.dtype))[rows]
        # Padded flat index -> packed sequence; the padded empty sequence maps to ``size``.
        padded = layout(game)
        packed = torch.full((padded.size,), -1, dtype=torch.long, device=device)
        packed[self.sequence_index] = torch.arange(self.size, device=device)
        packed[padded.empty] = self.size
        self.infoset_parent = packed[padded.parent_flat[self.infosets]]
        self.terminal_last = packed[padded.terminal_last_flat[player]]
        if bool((self.infoset_parent < 0).any()) or bool((self.terminal_last < 0).any()):
            raise ValueError(f"player {player}'s parent or last sequences are not its own legal sequences")
        infoset_bounds = [0, *itertools.accumulate(len(ids) for ids in levels)]
        sequence_starts = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).tolist()
        sequence_bounds = [sequence_starts[b] for b in infoset_bounds]
        self.levels: list[_Level] = []
        for k in range(len(levels)):
            (a, b), (sa, sb) = infoset_bounds[k : k + 2], sequence_bounds[k : k + 2]
            parents = self.infoset_parent[a:b]
            segment = rows[sa:sb] - a
            if k == 0:
                if bool((parents != self.size).any()):
                    raise ValueError(f"an infoset of player {player}'s first level has a parent sequence")
                sequence_parents = None
            else:
                above = sequence_bounds[k - 1]
                sequence_parents = parents[segment] - above
                if bool((sequence_parents < 0).any() | (sequence_parents >= sa - above).any()):
                    raise ValueError(f"a parent sequence of player {player}'s level {k} is not in the level above")
            self.levels.append(_Level(slice(a, b), slice(sa, sb), segment, parents, sequence_parents, parents[segment]))
        self.level_sizes = [b - a for a, b in itertools.pairwise(sequence_bounds)]

    def pack(self, rows: Tensor) -> Tensor:
        """This player's legal entries of a ``(num_infosets, max_actions)`` tensor. Shape ``(size,)``."""
        return rows.reshape(-1).index_select(0, self.sequence_index)

    def unpack_into(self, rows: Tensor, packed: Tensor) -> Tensor:
        """Writes ``packed`` ``(size,)`` into this player's legal entries of ``rows``
        ``(num_infosets, max_actions)`` (contiguous), in place; returns ``rows``."""
        rows.view(-1).index_copy_(0, self.sequence_index, packed)
        return rows

    def segment_sums(self, values: Tensor) -> Tensor:
        """Per-infoset sums of per-sequence ``values`` ``(size,)``. Shape ``(num_infosets,)``."""
        return segment_sum(values, self.sequence_infoset, self.num_infosets)

    def terminal_sums(self, weights: Tensor) -> Tensor:
        """Per-sequence sums of per-terminal ``weights`` ``(num_terminals,)``, each terminal
        counted at the player's last sequence before it. Shape ``(size + 1,)``, the
        terminals the player never acts before last. Trailing dimensions of ``weights`` are a batch."""
        return segment_sum(weights, self.terminal_last, self.size + 1)

    def realization_plan(self, strategy: Tensor) -> Tensor:
        """The realization plan of the packed ``strategy`` ``(size,)``, 1 at the empty
        sequence (step 1). Shape ``(size + 1,)``; trailing dimensions are a batch of
        strategies: ``(size, K)`` gives ``(size + 1, K)``. Differentiable.

        Each level is its own tensor, concatenated at the end: under torch.compile that is
        one short loop per level, where writing levels into one vector was a pass over the
        whole vector per level (measured on Leduc)."""
        pieces: list[Tensor] = []
        for level, piece in zip(self.levels, strategy.split_with_sizes(self.level_sizes)):
            if level.sequence_parents is not None:
                piece = pieces[-1].index_select(0, level.sequence_parents) * piece
            pieces.append(piece)
        return torch.cat([*pieces, strategy.new_ones((1, *strategy.shape[1:]))])

    def fold(self, values: Tensor, strategy: Tensor | None, root: bool = True) -> tuple[Tensor, Tensor]:
        """Folds the sequence gradient ``values`` ``(size + 1,)`` bottom-up (step 3), in place.

        ``strategy`` (packed) weighs each infoset's sequences; None takes their maximum (a
        best response). Returns ``(values, infoset_values (num_infosets,))``: the first now
        holds each sequence's counterfactual value and, last, the root's value. With a
        ``strategy``, trailing dimensions of both are a batch: ``(size + 1, K)`` and ``(size, K)``.

        On-policy, each level adds ``s(a|I) Q[I, a]`` straight into the parent sequence of
        ``I`` (one multiply and one scatter a level), and the infoset values are one segment
        sum at the end: an iteration of CFR on Leduc is a few dozen small tensor operations,
        so each one saved is measurable. With ``root=False`` (on-policy only) the first level
        is not folded into the root, whose entry then holds only the terminals reached before
        the player acts: for a caller that needs the sequences' values and not the root's."""
        if strategy is None:
            pieces: list[Tensor] = []
            for level in reversed(self.levels):
                folded = segment_max(values[level.sequences], level.segment, level.num_infosets)
                pieces.append(folded)
                values.index_add_(0, level.parents, folded)
            return values, torch.cat(pieces[::-1]) if pieces else values.new_zeros(0)
        sequences = values[:-1]
        # split_with_sizes: Tensor.split is a Python wrapper that costs more than the split.
        levels = zip(self.levels, sequences.split_with_sizes(self.level_sizes), strategy.split_with_sizes(self.level_sizes))
        for depth, (level, here, weights) in reversed(list(enumerate(levels))):
            if depth or root:
                values.index_add_(0, level.folds_into, weights * here)
        return values, self.segment_sums(strategy * sequences)


def treeplexes(game: ExtensiveFormGame) -> list[Treeplex]:
    """Every player's :class:`Treeplex`, built on first use and cached on the game."""
    if "treeplexes" not in game._cache:
        game._cache["treeplexes"] = [Treeplex(game, player) for player in range(game.num_players)]
    return game._cache["treeplexes"]


# Below this many entries (terminals plus padded sequences) a CPU iteration is a few
# hundred tiny tensor operations, and splitting each across threads costs more than it
# saves (measured on 2 cores: compiled CFR+ on Leduc, 8,300 entries, runs 2.4x faster on
# one thread, eager CFR+ as fast; on liars_dice, 442,000 entries, eager CFR+ runs 1.35x
# slower on one thread).
SINGLE_THREAD_BELOW = 32_768


def intra_op_threads(game: ExtensiveFormGame) -> int | None:
    """The thread count iterative solvers should use on ``game``: 1 for small CPU games, else None (torch's)."""
    entries = game.num_terminals + game.num_infosets * game.max_actions
    return 1 if game.device.type == "cpu" and entries < SINGLE_THREAD_BELOW else None


def layout(game: ExtensiveFormGame) -> _Layout:
    """The game's :class:`_Layout`, built on first use and cached on the game."""
    if "sequence_layout" not in game._cache:
        game._cache["sequence_layout"] = _Layout(game)
    return game._cache["sequence_layout"]


def player_plans(game: ExtensiveFormGame, strategy: Tensor) -> list[Tensor]:
    """Each player's realization plan on its packed sequences, 1 last (step 1).

    Shapes: ``strategy`` ``(num_infosets, max_actions)``; player p's plan ``(treeplexes(game)[p].size + 1,)``.
    """
    return [treeplex.realization_plan(treeplex.pack(strategy)) for treeplex in treeplexes(game)]


def flat_realization_plans(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """Every player's realization plan in the padded flat layout, 1 at the empty sequence (step 1).

    Shapes: ``strategy`` ``(num_infosets, max_actions)``; returns ``(num_infosets * max_actions + 1,)``.
    """
    plans = strategy.new_zeros(game.num_infosets, game.max_actions)
    for treeplex, plan in zip(treeplexes(game), player_plans(game, strategy)):
        treeplex.unpack_into(plans, plan[:-1])
    return torch.cat([plans.view(-1), strategy.new_ones(1)])


def realization_plans(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """Every player's realization plan in one tensor. Shapes: ``(num_infosets, max_actions)`` both."""
    return flat_realization_plans(game, strategy)[:-1].view(game.num_infosets, game.max_actions)


def terminal_own_reach(game: ExtensiveFormGame, flat_plans: Tensor) -> Tensor:
    """Each player's own reach probability of each terminal (step 2). Shape ``(N, num_terminals)``.

    ``flat_plans`` is :func:`flat_realization_plans`' vector.
    """
    return flat_plans[layout(game).terminal_last_flat]


def reach_of_others(game: ExtensiveFormGame, own_reach: Tensor, player: int) -> Tensor:
    """Chance times every other player's own reach, per terminal. Shape ``(num_terminals,)``."""
    reach = game.terminal_chance
    for j in range(game.num_players):
        if j != player:
            reach = reach * own_reach[j]
    return reach


def terminal_weights(game: ExtensiveFormGame) -> list[Tensor]:
    """``chance(z) * u_i(z)`` ``(num_terminals,)`` for each player i, and last their sum over
    players; contiguous, built on first use and cached on the game."""
    if "terminal_weights" not in game._cache:
        weighted = game.terminal_chance[:, None] * game.terminal_utilities
        game._cache["terminal_weights"] = [*(weighted[:, p].contiguous() for p in range(game.num_players)),
                                           weighted.sum(-1)]
    return game._cache["terminal_weights"]


def sequence_gradient(game: ExtensiveFormGame, plans: list[Tensor], player: int) -> Tensor:
    """The gradient of ``player``'s expected payoff with respect to its realization plan.

    Sequence ``(I, a)`` gets ``sum_z chance(z) u_i(z) prod_{j != i} R_j(z)`` over the
    terminals whose last ``player``-sequence it is; the payoff is linear in the plan, so
    this is also its payoff per unit of plan there (the start of step 3).

    Args:
        plans: every player's packed realization plan (:func:`player_plans`); ``player``'s
            own is not read.

    Returns:
        ``(size + 1,)`` on ``player``'s packed sequences; the last entry collects the
        terminals that ``player`` never acts before.
    """
    forms = treeplexes(game)
    weights = terminal_weights(game)[player]
    for j, plan in enumerate(plans):
        if j != player:
            weights = weights * plan.index_select(0, forms[j].terminal_last)
    return forms[player].terminal_sums(weights)


def counterfactual_values(
    game: ExtensiveFormGame,
    strategy: Tensor,
    player: int,
    own_reach: Tensor,
    best_response: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Counterfactual values of player ``player``'s sequences and infosets (step 3).

    Args:
        own_reach: :func:`terminal_own_reach` of the profile the others play.
        best_response: fold with ``max`` (player's best response) instead of its strategy.

    Returns:
        ``(sequence_values (num_infosets, max_actions), infoset_values (num_infosets,),
        root_value ())``. Rows of other players' infosets are 0. ``root_value`` is the
        player's expected payoff (or best-response payoff) against the others.
    """
    treeplex = treeplexes(game)[player]
    weights = reach_of_others(game, own_reach, player) * game.terminal_utilities[:, player]
    values, packed_infoset_values = treeplex.fold(treeplex.terminal_sums(weights), None if best_response else treeplex.pack(strategy))
    sequence_values = treeplex.unpack_into(strategy.new_zeros(game.num_infosets, game.max_actions), values[:-1])
    infoset_values = strategy.new_zeros(game.num_infosets).index_copy_(0, treeplex.infosets, packed_infoset_values)
    return sequence_values, infoset_values, values[-1]


def terminal_probabilities(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """The probability of each terminal when everyone plays ``strategy``: chance times
    every player's own reach (step 2). Shape ``(num_terminals,)``."""
    probability = game.terminal_chance
    for treeplex, plan in zip(treeplexes(game), player_plans(game, strategy)):
        probability = probability * plan.index_select(0, treeplex.terminal_last)
    return probability


def expected_values(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """Every player's expected payoff when all play ``strategy``. Shape ``(N,)``."""
    return terminal_probabilities(game, strategy) @ game.terminal_utilities


def best_response_values(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """What each player gets by best-responding to the others' parts of ``strategy``. Shape ``(N,)``."""
    own_reach = terminal_own_reach(game, flat_realization_plans(game, strategy))
    return torch.stack([_best_response_fold(game, player, reach_of_others(game, own_reach, player))[-1]
                        for player in range(game.num_players)])


def best_response(game: ExtensiveFormGame, strategy: Tensor, player: int) -> Tensor:
    """A pure best response of ``player``: its rows one-hot on a maximising slot, the others' rows kept.

    Shape ``(num_infosets, max_actions)``. NOTE: at infosets that the others' strategy
    never reaches every action is worth 0 and the first legal one is chosen.
    """
    own_reach = terminal_own_reach(game, flat_realization_plans(game, strategy))
    return best_response_to_reach(game, player, reach_of_others(game, own_reach, player), strategy)[0]


def behaviour_from_plan(game: ExtensiveFormGame, player: int, plan: Tensor, into: Tensor) -> Tensor:
    """The behavioural strategy of ``player`` whose realization plan is ``plan``, written into its rows.

    ``s(a|I) = R[I, a] / R[parent(I)]``, where the parent's value is the sum of ``R`` over
    ``I``'s sequences; at infosets the plan never reaches, uniform play. A mixture of
    behavioural strategies (a population's meta-strategy) has the weighted sum of their
    plans as its plan, so this is the reach-weighted aggregate that OpenSpiel's
    ``PolicyAggregator`` builds.

    Shapes: ``plan`` ``(treeplexes(game)[player].size + 1,)``; ``into`` and the result
    ``(num_infosets, max_actions)`` (a copy; the other players' rows are kept).
    """
    treeplex = treeplexes(game)[player]
    sequences = plan[:-1]
    mass = treeplex.segment_sums(sequences).index_select(0, treeplex.sequence_infoset)
    behaviour = torch.where(mass > 0, sequences / torch.where(mass > 0, mass, torch.ones_like(mass)), treeplex.uniform)
    return treeplex.unpack_into(into.clone(), behaviour)


def _best_response_fold(game: ExtensiveFormGame, player: int, reach_of_others: Tensor) -> Tensor:
    """``(size + 1,)``: the best-response value of each of ``player``'s packed sequences, the root's last."""
    treeplex = treeplexes(game)[player]
    return treeplex.fold(treeplex.terminal_sums(reach_of_others * game.terminal_utilities[:, player]), None)[0]


def best_response_to_reach(game: ExtensiveFormGame, player: int, reach_of_others: Tensor,
                           strategy: Tensor) -> tuple[Tensor, Tensor]:
    """A pure best response of ``player`` to opponents given by their reach of each terminal.

    ``reach_of_others`` ``(num_terminals,)`` is chance times the others' reach probability
    of each terminal; it need not come from independent opponents (a correlated
    distribution over opponent policies sums their products), and need not sum to 1.
    Returns ``(response (num_infosets, max_actions), value ())``: ``strategy``'s rows with
    ``player``'s one-hot on a maximising slot (the first legal one where every action is
    worth 0), and the best response's payoff ``sum_z reach(z) own(z) u_player(z)``.
    """
    treeplex = treeplexes(game)[player]
    values = _best_response_fold(game, player, reach_of_others)
    sequence_values = treeplex.unpack_into(strategy.new_zeros(game.num_infosets, game.max_actions), values[:-1])
    mine = game.infoset_player == player
    choice = sequence_values.masked_fill(~game.legal_mask, -torch.inf).argmax(-1)
    onehot = torch.nn.functional.one_hot(choice, game.max_actions).to(strategy.dtype)
    return torch.where(mine[:, None], onehot, strategy), values[-1]


def nash_conv(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """``sum_i [best-response value_i - value_i]``, OpenSpiel's NashConv. Shape ``()``.

    ``strategy`` is ``(num_infosets, max_actions)``; see :func:`nash_conv_of_plans`.
    """
    return nash_conv_of_plans(game, player_plans(game, strategy))


def nash_conv_of_plans(game: ExtensiveFormGame, plans: list[Tensor]) -> Tensor:
    """NashConv of the profile whose packed realization plans are ``plans`` (``(size + 1,)``
    each, 1 last, as :func:`player_plans` gives them). Shape ``()``.

    One pass of realization plans serves both terms: the terminals' own reaches give the
    profile's values (chance times their product, against the players' summed payoffs) and
    each player's best-response fold. A solver that keeps its average as a sum of
    realization plans (CFR) measures it here without building the behavioural strategy.
    """
    forms, weights = treeplexes(game), terminal_weights(game)
    own_reach = [plan.index_select(0, form.terminal_last) for form, plan in zip(forms, plans)]
    best = []
    for player, form in enumerate(forms):
        others = [reach for j, reach in enumerate(own_reach) if j != player]
        best.append(form.fold(form.terminal_sums(functools.reduce(torch.mul, others, weights[player])), None)[0][-1])
    values = torch.dot(functools.reduce(torch.mul, own_reach), weights[-1])
    return sum(best) - values
