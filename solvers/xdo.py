"""XDO, the extensive-form double oracle, on compiled trees.

McAleer, Lanier, Wang, Baldi and Fox, "XDO: A Double Oracle Algorithm for Extensive-Form
Games", NeurIPS 2021. Where PSRO mixes whole policies at the root, XDO keeps the
population's *actions* at every information set: the restricted game is the full game
with each infoset's actions cut down to those that some best response chose there, and
its equilibrium may combine them differently at every infoset. One iteration:

1) build the restricted game (:func:`restrict`: a new compiled tree holding only the
   allowed actions) and solve it with CFR+ until its NashConv is at most
   ``restricted_nash_conv`` (or ``max_cfr_iterations``);
2) map the restricted equilibrium back to the full game (disallowed actions get 0) and
   measure its NashConv there;
3) each player's best response in the full game to it adds its action at every one of
   the player's infosets to the allowed sets. When nothing is added, the restricted
   equilibrium is an equilibrium of the full game (up to the restricted solve's NashConv)
   and the run stops.

NOTE: the initial allowed sets are each player's best response to uniform play, and the
restricted solve warm-starts nothing (each restricted game is solved from scratch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from games.errors import SolverError
from games.extensive_form import CHANCE, TERMINAL, ExtensiveFormGame, TreeCompiler

Tensor = torch.Tensor


def restrict(game: ExtensiveFormGame, allowed: Tensor) -> ExtensiveFormGame:
    """The game with infoset ``I``'s actions cut down to the slots where ``allowed[I]`` holds.

    Infoset keys and action ids are kept, so strategies map between the two games by key
    and id (:func:`to_full`). Nodes below a disallowed action are left out.

    Shapes: ``allowed`` ``(num_infosets, max_actions)`` bool, within ``legal_mask`` and with at
    least one slot per infoset.
    """
    allowed = allowed.cpu() & game.legal_mask.cpu()
    if bool((allowed.sum(-1) == 0).any()):
        raise SolverError("every infoset needs at least one allowed action")
    parents = game.node_parent.tolist()
    players = game.node_player.tolist()
    infosets = game.node_infoset.tolist()
    slots = game.node_slot.tolist()
    probabilities = game.node_probability.tolist()
    children: list[list[int]] = [[] for _ in parents]
    for node in range(1, len(parents)):
        children[parents[node]].append(node)
    terminal_index = {node: k for k, node in enumerate(n for n, p in enumerate(players) if p == TERMINAL)}
    utilities = game.terminal_utilities.tolist()
    ids = game.infoset_action_ids.cpu().tolist()
    keep = allowed.tolist()
    labels = game.action_labels
    compiler = TreeCompiler(game.num_players, title=f"{game.title} (restricted)", max_nodes=len(parents))
    stack = [(0, -1, -1)]  # (full node, restricted parent, slot in the restricted parent)
    while stack:
        node, parent, slot = stack.pop()
        player = players[node]
        if player == TERMINAL:
            compiler.terminal(parent, slot, utilities[terminal_index[node]])
            continue
        below = sorted(children[node], key=lambda child: slots[child])
        if player == CHANCE:
            made = compiler.chance(parent, slot, [probabilities[child] for child in below])
            stack.extend((child, made, index) for index, child in reversed(list(enumerate(below))))
            continue
        infoset = infosets[node]
        kept = [child for child in below if keep[infoset][slots[child]]]
        actions = [ids[infoset][slots[child]] for child in kept]
        names = None if labels is None else [labels[infoset][slots[child]] for child in kept]
        made = compiler.decision(parent, slot, player, game.infoset_keys[infoset], actions, names)
        stack.extend((child, made, index) for index, child in reversed(list(enumerate(kept))))
    return compiler.compile(dtype=game.dtype, device=game.device)


def to_full(game: ExtensiveFormGame, restricted: ExtensiveFormGame, strategy: Tensor) -> Tensor:
    """A strategy of the restricted game as one of the full game (0 on the left-out actions).

    Infosets the restricted game does not have play uniformly over their legal slots: the
    mapped strategy never reaches them (their paths go through left-out actions), so this
    does not change its value, and it keeps every row a distribution.
    """
    full = game.uniform_strategy().clone()
    row_of = {key: row for row, key in enumerate(game.infoset_keys)}
    ids = game.infoset_action_ids.cpu().tolist()
    small_ids = restricted.infoset_action_ids.cpu().tolist()
    values = strategy.cpu().tolist()
    rows, columns, entries, touched = [], [], [], []
    for small, key in enumerate(restricted.infoset_keys):
        row = row_of[key]
        touched.append(row)
        slot_of = {action: slot for slot, action in enumerate(ids[row]) if action >= 0}
        for small_slot, action in enumerate(small_ids[small]):
            if action >= 0:
                rows.append(row)
                columns.append(slot_of[action])
                entries.append(values[small][small_slot])
    full[touched] = 0.0
    full[rows, columns] = torch.tensor(entries, dtype=full.dtype, device=full.device)
    return full


@dataclass
class XDOIterate:
    """What one XDO iteration did and measured."""

    iteration: int
    nash_conv: float
    """NashConv in the full game of the restricted equilibrium."""
    restricted_nash_conv: float
    cfr_iterations: int
    allowed_actions: int
    """Allowed (infoset, action) pairs after this iteration's best responses."""
    added: int
    seconds: float


def xdo(game: ExtensiveFormGame, *, iterations: int = 50, target_nash_conv: float | None = None,
        restricted_nash_conv: float = 1e-3, max_cfr_iterations: int = 5000,
        callback=None) -> tuple[Tensor, list[XDOIterate]]:
    """Runs XDO (see the module docstring); returns the last restricted equilibrium, in the full game, and the history.

    Args:
        restricted_nash_conv: the restricted solve's precision (CFR+ is checked every 10 iterations).
        target_nash_conv: stop once the full game's NashConv is at most this.
    """
    from solvers.cfr import CFRPlusSolver
    from solvers.sequence_form import best_response, nash_conv

    started = time.perf_counter()
    allowed = torch.zeros_like(game.legal_mask, device="cpu")
    uniform = game.uniform_strategy()
    mine = [(game.infoset_player == player).cpu() for player in range(game.num_players)]
    for player in range(game.num_players):
        allowed |= (best_response(game, uniform, player).cpu() > 0) & mine[player][:, None]
    history: list[XDOIterate] = []
    strategy = uniform
    for iteration in range(1, iterations + 1):
        restricted = restrict(game, allowed)
        solver = CFRPlusSolver(restricted)
        gap = float("inf")
        while solver.iteration < max_cfr_iterations:
            for _ in range(10):
                solver.step()
            gap = float(nash_conv(restricted, solver.average_policy()))
            if gap <= restricted_nash_conv:
                break
        strategy = to_full(game, restricted, solver.average_policy())
        full_gap = float(nash_conv(game, strategy))
        before = int(allowed.sum())
        for player in range(game.num_players):
            allowed |= (best_response(game, strategy, player).cpu() > 0) & mine[player][:, None]
        after = int(allowed.sum())
        record = XDOIterate(iteration, full_gap, gap, solver.iteration, after, after - before,
                            time.perf_counter() - started)
        history.append(record)
        if callback is not None:
            callback(record)
        if after == before or (target_nash_conv is not None and full_gap <= target_nash_conv):
            break
    return strategy, history


__all__ = ["XDOIterate", "restrict", "to_full", "xdo"]
