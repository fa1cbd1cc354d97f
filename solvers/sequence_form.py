"""Sequence-form computations on a compiled :class:`ExtensiveFormGame`, level by level.

Koller, Megiddo and von Stengel, "Efficient computation of equilibria for extensive
two-person games", Games Econ. Behav. 1996; the counterfactual values are those of
Zinkevich, Johanson, Bowling and Piccione, "Regret minimization in games with incomplete
information", NeurIPS 2007.

For a behavioural strategy ``s`` (``(num_infosets, max_actions)``):

1) the *realization plan* ``R[I, a]`` is the product of the owner's own probabilities
   along its sequence ending in ``(I, a)``; it is built top-down over the owners' infoset
   trees, one tensor operation per level for all players at once;
2) at terminal z, player j's own reach is ``R`` at j's last sequence (1 for the empty
   one), so the probability of z is ``chance(z) * prod_j own_j(z)``, and the reach of
   everyone but player i is ``chance(z) * prod_{j != i} own_j(z)``;
3) the *counterfactual value* of player i's sequence ``(I, a)`` sums
   ``reach_{-i}(z) * u_i(z)`` over the terminals whose last i-sequence it is (a
   scatter-add), plus the values of the infosets that follow it; it is folded bottom-up
   over player i's infoset tree, where an infoset's value is ``sum_a s(a|I) Q[I, a]``
   (on-policy) or ``max_a Q[I, a]`` (a best response).

Nothing here walks nodes; each level is one gather, one multiply and one scatter.
"""

from __future__ import annotations

import itertools

import torch

from games.extensive_form import ExtensiveFormGame

Tensor = torch.Tensor


class _Layout:
    """Index tensors computed once per game (levels as row slices where they are
    contiguous): sequences live in one flat vector of
    ``num_infosets * max_actions + 1`` entries, sequence ``(I, a)`` at ``I * max_actions + a``
    and the empty sequence at the last index (``EMPTY``). In a realization plan that entry
    holds 1; when folding values it collects the root's value. No branch on "has a
    parent" is then needed anywhere."""

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
        self.all_levels = [(_rows(ids), self.parent_flat[ids]) for ids in game.levels()]
        self.player_levels = [
            [(_rows(ids), self.parent_flat[ids]) for ids in reversed(game.levels(p))] for p in range(game.num_players)
        ]
        self.ones = torch.ones(game.max_actions, 1, dtype=game.dtype, device=game.device)
        # Realization plans level by level, each level its own tensor, concatenated at the
        # end: infosets are numbered by level (ExtensiveFormGame.compile), so a level is a
        # row range, and the parent sequences of level k lie in level k - 1. Under
        # torch.compile this is one short loop per level, where writing levels into one
        # flat vector was a pass over the whole vector per level (measured on Leduc).
        ranges = [_range(ids) for ids in game.levels()]
        starts = [0, *(end for _, end in ranges)][:-1]  # each level begins where the one above ends
        if [start for start, _ in ranges] != starts:
            raise ValueError("infosets are not numbered level by level")
        self.level_bounds = [start for start, _ in ranges[1:]]
        self.level_parents: list[Tensor | None] = [None]  # level 0 hangs off the empty sequence
        if ranges and bool((self.parent_flat[: ranges[0][1]] != self.empty).any()):
            raise ValueError("an infoset of level 0 has a parent sequence")
        for (above, start), (_, end) in itertools.pairwise(ranges):  # the level above is [above, start)
            local = self.parent_flat[start:end] - above * game.max_actions
            if bool((local < 0).any() | (local >= (start - above) * game.max_actions).any()):
                raise ValueError(f"a parent sequence of the level starting at infoset {start} is not in the level above")
            self.level_parents.append(local)


def _range(ids: Tensor) -> tuple[int, int]:
    """``(start, end)`` of sorted, consecutive ids; the infosets of a level always are."""
    start, end = int(ids[0]), int(ids[-1]) + 1
    if end - start != len(ids):
        raise ValueError("the infosets of a level are not numbered consecutively")
    return start, end


def row_sums(rows: Tensor, ones: Tensor | None = None) -> Tensor:
    """``rows.sum(-1)`` as a product with a column of ones, ``(n, A) @ (A, 1)``.

    For the few actions of an infoset a matrix-vector product costs a quarter of a
    reduction kernel on the CPU (2 us against 8 us per call, measured), and the CFR
    family does one per level per player per iteration. Shape ``(n,)``."""
    if torch.compiler.is_compiling():  # fused into the neighbouring kernels instead
        return rows.sum(-1)
    if ones is None:
        ones = torch.ones(rows.shape[-1], 1, dtype=rows.dtype, device=rows.device)
    return (rows @ ones)[:, 0]


def _rows(ids: Tensor) -> slice | Tensor:
    """A slice when ``ids`` are consecutive (always, for compiled games), else the ids.

    Reading rows through a slice is a view and writing them a copy, where index tensors
    need a gather and a scatter."""
    start = int(ids[0])
    if torch.equal(ids.cpu(), torch.arange(start, start + len(ids))):
        return slice(start, start + len(ids))
    return ids


# Below this many entries (terminals plus sequences) a CPU iteration is a few hundred tiny
# tensor operations, and splitting each across threads costs more than it saves
# (measured on 2 cores: CFR+ on Leduc, 8,300 entries, runs 1.3-1.6x faster on one thread;
# on liars_dice, 442,000 entries, 1.6x slower).
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


def flat_realization_plans(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """Every player's realization plan in the flat layout, 1 at the empty sequence (step 1).

    Shapes: ``strategy`` ``(num_infosets, max_actions)``; returns ``(num_infosets * max_actions + 1,)``.
    """
    plan = layout(game)
    pieces: list[Tensor] = []
    for level, parents in zip(strategy.tensor_split(plan.level_bounds), plan.level_parents):
        if parents is not None:
            level = pieces[-1][parents][:, None] * level
        pieces.append(level.reshape(-1))
    return torch.cat([*pieces, torch.ones(1, dtype=strategy.dtype, device=strategy.device)])


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


def sequence_gradient(game: ExtensiveFormGame, own_reach: Tensor, player: int) -> Tensor:
    """The gradient of ``player``'s expected payoff with respect to its realization plan.

    Entry ``(I, a)`` sums ``reach_{-i}(z) * u_i(z)`` over the terminals whose last
    ``player``-sequence is ``(I, a)``; the payoff is linear in the plan, so this is also
    its payoff per unit of plan there. Flat layout, the empty sequence last (its entry
    collects the terminals ``player`` never acts before). Shape ``(num_infosets * max_actions + 1,)``.
    """
    plan = layout(game)
    weights = reach_of_others(game, own_reach, player) * game.terminal_utilities[:, player]
    flat = torch.zeros(plan.size, dtype=weights.dtype, device=weights.device)
    return flat.index_add_(0, plan.terminal_last_flat[player], weights)


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
    plan = layout(game)
    flat = sequence_gradient(game, own_reach, player)
    sequence_values = flat[:-1].view(game.num_infosets, game.max_actions)
    infoset_values = torch.zeros(game.num_infosets, dtype=strategy.dtype, device=strategy.device)
    for ids, parents in plan.player_levels[player]:
        values = sequence_values[ids]
        if best_response:
            folded = values.masked_fill(~game.legal_mask[ids], -torch.inf).amax(-1)
        else:
            folded = row_sums(strategy[ids] * values, plan.ones.to(values.dtype))
        infoset_values[ids] = folded
        flat.index_add_(0, parents, folded)
    return sequence_values, infoset_values, flat[-1]


def expected_values(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """Every player's expected payoff when all play ``strategy``. Shape ``(N,)``."""
    own_reach = terminal_own_reach(game, flat_realization_plans(game, strategy))
    probability = game.terminal_chance * own_reach.prod(0)
    return probability @ game.terminal_utilities


def best_response_values(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """What each player gets by best-responding to the others' parts of ``strategy``. Shape ``(N,)``."""
    own_reach = terminal_own_reach(game, flat_realization_plans(game, strategy))
    return torch.stack([
        counterfactual_values(game, strategy, player, own_reach, best_response=True)[2]
        for player in range(game.num_players)
    ])


def best_response(game: ExtensiveFormGame, strategy: Tensor, player: int) -> Tensor:
    """A pure best response of ``player``: its rows one-hot on a maximising slot, the others' rows kept.

    Shape ``(num_infosets, max_actions)``. NOTE: at infosets that the others' strategy
    never reaches every action is worth 0 and the first legal one is chosen.
    """
    own_reach = terminal_own_reach(game, flat_realization_plans(game, strategy))
    values, _, _ = counterfactual_values(game, strategy, player, own_reach, best_response=True)
    mine = game.infoset_player == player
    choice = values.masked_fill(~game.legal_mask, -torch.inf).argmax(-1)
    onehot = torch.nn.functional.one_hot(choice, game.max_actions).to(strategy.dtype)
    return torch.where(mine[:, None], onehot, strategy)


def nash_conv(game: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """``sum_i [best-response value_i - value_i]``, OpenSpiel's NashConv. Shape ``()``."""
    return (best_response_values(game, strategy) - expected_values(game, strategy)).sum()
