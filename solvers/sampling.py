"""Sampling trajectories and expanding sampled subtrees of a compiled game, batched.

The Monte Carlo solvers (:mod:`solvers.mccfr`, Balanced FTRL in :mod:`solvers.ftrl`)
touch only the part of the tree a sample visits. They read the node arrays of
:class:`ExtensiveFormGame` through :class:`TreeIndex`, built once per game:

- ``children`` ``(num_nodes, B)``: the child reached by each slot, ``-1`` where none
  (``B`` is the largest number of children of any node);
- ``chance`` ``(num_nodes, B)``: a chance node's outcome probabilities (0 elsewhere);
- ``node_terminal`` ``(num_nodes,)``: the terminal index of each terminal node, ``-1`` elsewhere.

:func:`sample_paths` walks ``K`` trajectories down the tree at once, one tensor operation
per depth; :func:`sample_slots` draws one slot per row of a probability table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from games.extensive_form import CHANCE, TERMINAL, ExtensiveFormGame

Tensor = torch.Tensor


class TreeIndex:
    """Child and chance tables of a game's tree (see the module docstring)."""

    def __init__(self, game: ExtensiveFormGame) -> None:
        device = game.device
        nodes = torch.arange(game.num_nodes, device=device)
        has_parent = game.node_parent >= 0
        self.width = max(game.max_actions, int(game.node_slot.max()) + 1 if game.num_nodes > 1 else 1)
        self.children = torch.full((game.num_nodes, self.width), -1, dtype=torch.long, device=device)
        self.children[game.node_parent[has_parent], game.node_slot[has_parent]] = nodes[has_parent]
        self.chance = torch.zeros(game.num_nodes, self.width, dtype=game.dtype, device=device)
        below_chance = has_parent & (game.node_player[game.node_parent.clamp_min(0)] == CHANCE)
        self.chance[game.node_parent[below_chance], game.node_slot[below_chance]] = game.node_probability[below_chance]
        is_terminal = game.node_player == TERMINAL
        self.node_terminal = torch.full((game.num_nodes,), -1, dtype=torch.long, device=device)
        self.node_terminal[is_terminal] = torch.arange(int(is_terminal.sum()), device=device)
        self.max_depth = int(game.node_depth.max())
        self.legal = torch.zeros(game.num_infosets, self.width, dtype=game.dtype, device=device)
        self.legal[:, : game.max_actions] = game.legal_mask.to(game.dtype)
        self.uniform = self.legal / self.legal.sum(-1, keepdim=True)


def tree_index(game: ExtensiveFormGame) -> TreeIndex:
    """The game's :class:`TreeIndex`, built on first use and cached on the game."""
    if "tree_index" not in game._cache:
        game._cache["tree_index"] = TreeIndex(game)
    return game._cache["tree_index"]


def sample_slots(probabilities: Tensor, generator: torch.Generator | None) -> Tensor:
    """One slot per row, drawn from the row's (not necessarily normalized) weights.

    Shapes: ``probabilities`` ``(K, B)``; returns ``(K,)``. Zero-weight slots are never drawn.
    """
    cumulative = probabilities.cumsum(-1)
    threshold = torch.rand(
        probabilities.shape[0], 1, generator=generator, device=probabilities.device, dtype=probabilities.dtype
    ) * cumulative[:, -1:]
    return (cumulative <= threshold).sum(-1).clamp_max(probabilities.shape[-1] - 1)


def padded_policy(index: TreeIndex, policy: Tensor) -> Tensor:
    """A ``(num_infosets, max_actions)`` policy widened to the tree's ``B`` slots."""
    if policy.shape[1] == index.width:
        return policy
    return torch.nn.functional.pad(policy, (0, index.width - policy.shape[1]))


@dataclass
class Paths:
    """``K`` sampled trajectories, step by step from the root (``D`` = the tree's depth).

    ``node``, ``infoset``, ``player``, ``slot`` ``(D, K)``: the node at each step, its
    infoset (``0`` where none: mask with ``decision``), its player and the sampled slot;
    ``decision`` ``(D, K)``: the step is at a decision node; ``policy_probability`` and
    ``sample_probability`` ``(D, K)``: the sampled slot's probability under the policy and
    under the sampling policy; ``own_reach`` ``(D, K)``: the acting player's own reach of
    the node under the policy; ``sample_reach`` ``(D, K)``: the product of the sampling
    probabilities of the decisions above the node (chance excluded); ``terminal`` ``(K,)``;
    ``reach`` ``(K, N)``: each player's own reach of the terminal; ``sample`` ``(K,)``:
    the sampling probability of the decisions on the path (chance excluded).
    """

    node: Tensor
    infoset: Tensor
    player: Tensor
    slot: Tensor
    decision: Tensor
    policy_probability: Tensor
    sample_probability: Tensor
    own_reach: Tensor
    sample_reach: Tensor
    terminal: Tensor
    reach: Tensor
    sample: Tensor


def sample_paths(
    game: ExtensiveFormGame,
    policy: Tensor,
    count: int,
    generator: torch.Generator | None = None,
    *,
    explore_player: int | None = None,
    epsilon: float = 0.0,
) -> Paths:
    """Samples ``count`` trajectories: chance by its probabilities, players by ``policy``.

    ``explore_player`` samples from ``epsilon * uniform + (1 - epsilon) * policy`` instead
    (outcome-sampling MCCFR's exploration). Shapes: ``policy`` ``(num_infosets, max_actions)``.
    """
    index = tree_index(game)
    policy = padded_policy(index, policy)
    device, dtype = game.device, game.dtype
    current = torch.zeros(count, dtype=torch.long, device=device)
    reach = torch.ones(count, game.num_players, dtype=dtype, device=device)
    sample = torch.ones(count, dtype=dtype, device=device)
    rows = torch.arange(count, device=device)
    steps: dict[str, list[Tensor]] = {name: [] for name in (
        "node", "infoset", "player", "slot", "decision", "policy_probability", "sample_probability", "own_reach",
        "sample_reach")}
    for _ in range(index.max_depth):
        player = game.node_player[current]
        decision = player >= 0
        infoset = game.node_infoset[current].clamp_min(0)
        acting = player.clamp_min(0)
        on_policy = policy[infoset]
        sampling = on_policy
        if explore_player is not None and epsilon > 0:
            explored = epsilon * index.uniform[infoset] + (1 - epsilon) * on_policy
            sampling = torch.where((player == explore_player)[:, None], explored, on_policy)
        weights = torch.where(decision[:, None], sampling, index.chance[current])
        weights = torch.where((player == TERMINAL)[:, None], torch.ones_like(weights), weights)
        slot = sample_slots(weights, generator)
        policy_probability = torch.where(decision, on_policy[rows, slot], torch.ones_like(sample))
        sample_probability = torch.where(decision, sampling[rows, slot], torch.ones_like(sample))
        own = reach[rows, acting]
        for name, value in (("node", current), ("infoset", infoset), ("player", player), ("slot", slot),
                            ("decision", decision), ("policy_probability", policy_probability),
                            ("sample_probability", sample_probability), ("own_reach", own), ("sample_reach", sample)):
            steps[name].append(value)
        reach = torch.where(decision[:, None] & (torch.arange(game.num_players, device=device) == acting[:, None]),
                            reach * policy_probability[:, None], reach)
        sample = sample * sample_probability
        current = torch.where(player == TERMINAL, current, index.children[current, slot])
    terminal = index.node_terminal[current]
    return Paths(**{name: torch.stack(values) for name, values in steps.items()},
                 terminal=terminal, reach=reach, sample=sample)
