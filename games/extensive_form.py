"""Extensive-form (imperfect-information tree) games compiled once into flat tensors.

A game tree is walked once at compile time, by a builder (OpenSpiel in
``games/adapters/openspiel.py``, hand-written trees in tests) that reports each node
through :class:`TreeCompiler`. After that nothing walks the tree node by node: solvers
work on the **sequence form** (Romanovskii 1962; Koller, Megiddo and von Stengel 1996).

Conventions (OpenSpiel's): players are numbered from 0; chance is player ``CHANCE = -1``;
an infoset's actions are stored in *slots* ``0..max_actions-1`` in the order the builder
reports them, with their original action ids in ``infoset_action_ids``.

The compiled arrays:

- infosets ``(num_infosets,)``: ``infoset_player``; ``infoset_parent`` and
  ``infoset_parent_slot``, the owner's previous sequence (``-1``: the empty sequence);
  ``infoset_level``, the depth in its owner's infoset tree (perfect recall makes that a
  tree). Compiled games number infosets by (level, player), so each level of each
  player is a contiguous block of ids; ``legal_mask`` and ``infoset_action_ids`` ``(num_infosets, max_actions)``;
  ``infoset_keys``, the builder's names (OpenSpiel information-state strings).
- terminals ``(num_terminals,)``: ``terminal_utilities`` ``(num_terminals, N)``,
  ``terminal_chance`` (the product of chance probabilities on the path), and for every
  player its last sequence on the path, ``terminal_last_infoset`` and
  ``terminal_last_slot`` ``(N, num_terminals)`` (``-1``: the empty sequence).
- nodes ``(num_nodes,)``, numbered in depth-first order from the root ``0``:
  ``node_parent``, ``node_player`` (``CHANCE``, ``TERMINAL`` or a player),
  ``node_infoset`` (``-1`` for chance and terminal nodes), ``node_slot`` (the incoming
  action's slot), ``node_depth`` and ``node_probability`` (the incoming chance outcome's
  probability; 1 below decision nodes). The sequence-form solvers never read them; the
  sampling ones (Monte Carlo CFR) and the ``.efg`` writer walk the tree with them.
- ``action_labels``: the builder's names of each infoset's actions (Gambit labels,
  OpenSpiel's ``action_to_string``), or ``None``.

A *behavioural strategy* is a ``(num_infosets, max_actions)`` tensor whose rows are
distributions over the legal slots (illegal slots exactly 0); every player's infosets
are rows of the same tensor. Payoffs at non-terminal nodes (Gambit's outcomes attached
to inner nodes) are moved to the terminals below them by the builder.

Memory: the compiled arrays take about ``8 * (num_nodes * 6 + num_terminals * (3N + 1) +
num_infosets * 3 * max_actions)`` bytes, but the compiler's own bookkeeping while it
walks the tree dominates: about ``BYTES_PER_NODE`` per node at its peak.
``TreeCompiler`` refuses a tree as soon as it passes ``max_nodes`` (by default, what the
memory gamelab may use holds: ``games.memory``), naming the estimate, instead of running
out of memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from games.errors import GameError

Tensor = torch.Tensor

CHANCE = -1
TERMINAL = -4
# Peak bytes per node while compiling (measured: liars_dice's 294,883 nodes peak at 0.38 GB).
BYTES_PER_NODE = 1400


def default_max_nodes() -> int:
    """The most nodes whose compilation fits in the memory gamelab may use (``games.memory``:
    80% of the available memory, or ``--max-memory``)."""
    from games.memory import limit_bytes

    return max(1, int(limit_bytes()[0] / BYTES_PER_NODE))


@dataclass
class ExtensiveFormGame:
    """A compiled extensive-form game. See the module docstring for every field."""

    num_players: int
    max_actions: int
    infoset_player: Tensor
    infoset_parent: Tensor
    infoset_parent_slot: Tensor
    infoset_level: Tensor
    legal_mask: Tensor
    infoset_action_ids: Tensor
    infoset_keys: list[str]
    terminal_utilities: Tensor
    terminal_chance: Tensor
    terminal_last_infoset: Tensor
    terminal_last_slot: Tensor
    node_parent: Tensor
    node_player: Tensor
    node_infoset: Tensor
    node_slot: Tensor
    node_depth: Tensor
    node_probability: Tensor
    title: str = ""
    action_labels: list[list[str]] | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_infosets(self) -> int:
        return int(self.infoset_player.shape[0])

    @property
    def num_terminals(self) -> int:
        return int(self.terminal_chance.shape[0])

    @property
    def num_nodes(self) -> int:
        return int(self.node_parent.shape[0])

    @property
    def device(self) -> torch.device:
        return self.terminal_utilities.device

    @property
    def dtype(self) -> torch.dtype:
        return self.terminal_utilities.dtype

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> ExtensiveFormGame:
        """The same game with its tensors on ``device``; ``dtype`` applies to the real-valued ones."""
        fields = {}
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, Tensor):
                real = value.is_floating_point()
                fields[name] = value.to(device=device, dtype=dtype if real else None)
            else:
                fields[name] = value
        return ExtensiveFormGame(**fields)

    def levels(self, player: int | None = None) -> list[Tensor]:
        """Infoset ids grouped by ``infoset_level`` (of one player, or all), shallowest first.

        Computed once per player and cached in ``_cache`` (which also holds the
        sequence-form layout of ``solvers.sequence_form``): solvers call this every iteration.
        """
        if player not in self._cache:
            self._cache[player] = self._compute_levels(player)
        return self._cache[player]

    def _compute_levels(self, player: int | None) -> list[Tensor]:
        mask = torch.ones_like(self.infoset_player, dtype=torch.bool) if player is None else self.infoset_player == player
        out = []
        for level in range(int(self.infoset_level.max()) + 1 if self.num_infosets else 0):
            ids = torch.nonzero(mask & (self.infoset_level == level)).flatten()
            if len(ids):
                out.append(ids)
        return out

    def is_constant_sum(self, atol: float = 1e-9) -> bool:
        """Whether the players' payoffs add to the same constant at every terminal."""
        totals = self.terminal_utilities.sum(-1)
        return not totals.numel() or bool((totals - totals[0]).abs().max() <= atol)

    def uniform_strategy(self) -> Tensor:
        """Every infoset mixes uniformly over its legal actions. Shape ``(num_infosets, max_actions)``."""
        mask = self.legal_mask.to(self.dtype)
        return mask / mask.sum(-1, keepdim=True)

    def check_strategy(self, strategy: Tensor, atol: float = 1e-6) -> Tensor:
        """Validates a behavioural strategy; raises GameError naming the first bad infoset."""
        strategy = torch.as_tensor(strategy, device=self.device).to(self.dtype)
        expected = (self.num_infosets, self.max_actions)
        if tuple(strategy.shape) != expected:
            raise GameError(f"a strategy needs shape {expected}, got {tuple(strategy.shape)}")
        bad = (~torch.isfinite(strategy)).any(-1) | (strategy < -atol).any(-1)
        bad |= ((strategy.sum(-1) - 1).abs() > atol) | ((strategy.abs() > atol) & ~self.legal_mask).any(-1)
        if bool(bad.any()):
            index = int(torch.nonzero(bad)[0])
            raise GameError(
                f"strategy row {index} (infoset {self.infoset_keys[index]!r}) is not a distribution over its legal actions"
            )
        return strategy

    def __repr__(self) -> str:
        return (
            f"ExtensiveFormGame({self.title!r}, num_players={self.num_players}, num_nodes={self.num_nodes}, "
            f"num_terminals={self.num_terminals}, num_infosets={self.num_infosets}, max_actions={self.max_actions})"
        )


class TreeCompiler:
    """Collects a game tree from a builder's depth-first walk and compiles it.

    A builder calls :meth:`decision`, :meth:`chance` and :meth:`terminal` for each node
    in depth-first order, passing the id of the parent node and the incoming action's
    slot; each call returns the new node's id. The compiler tracks every player's last
    sequence along the path, checks perfect recall, and produces an
    :class:`ExtensiveFormGame`.
    """

    def __init__(self, num_players: int, *, max_nodes: int | None = None, title: str = "") -> None:
        self.num_players = num_players
        self.max_nodes = default_max_nodes() if max_nodes is None else max_nodes
        self.title = title
        self.node_parent: list[int] = []
        self.node_player: list[int] = []
        self.node_infoset: list[int] = []
        self.node_slot: list[int] = []
        self.node_depth: list[int] = []
        self.node_chance: list[float] = []
        self.node_probability: list[float] = []
        # The last sequence of every player at each node: (infoset, slot) per player.
        self.node_last: list[tuple[tuple[int, int], ...]] = []
        self.node_num_actions: list[int] = []
        self.node_probabilities: list[Sequence[float] | None] = []
        self.infoset_ids: dict[Any, int] = {}
        self.infoset_player: list[int] = []
        self.infoset_parent: list[tuple[int, int]] = []
        self.infoset_actions: list[tuple[int, ...]] = []
        self.infoset_keys: list[str] = []
        self.action_labels: list[list[str]] = []
        self.has_labels = False
        self.terminal_nodes: list[int] = []
        self.terminal_utilities: list[Sequence[float]] = []

    def _add_node(self, parent: int, slot: int, player: int, infoset: int) -> int:
        if len(self.node_parent) >= self.max_nodes:
            from games.memory import format_bytes, limit_bytes

            limit, source = limit_bytes()
            raise GameError(
                f"the game tree has more than {self.max_nodes:,} nodes; compiling it would need over "
                f"{format_bytes(self.max_nodes * BYTES_PER_NODE)} (gamelab may use {format_bytes(limit)}: "
                f"{source}); pass a larger max_nodes, or --max-memory, to try anyway"
            )
        probability = 1.0
        if parent < 0:
            chance, last, depth = 1.0, tuple((-1, -1) for _ in range(self.num_players)), 0
        else:
            chance, last, depth = self.node_chance[parent], list(self.node_last[parent]), self.node_depth[parent] + 1
            parent_player = self.node_player[parent]
            if parent_player == CHANCE:
                probability = self.node_probabilities[parent][slot]
                chance *= probability
            elif parent_player >= 0:
                last[parent_player] = (self.node_infoset[parent], slot)
            last = tuple(last)
        self.node_parent.append(parent)
        self.node_slot.append(slot)
        self.node_player.append(player)
        self.node_infoset.append(infoset)
        self.node_depth.append(depth)
        self.node_chance.append(chance)
        self.node_probability.append(probability)
        self.node_last.append(last)
        self.node_num_actions.append(0)
        self.node_probabilities.append(None)
        return len(self.node_parent) - 1

    def decision(
        self, parent: int, slot: int, player: int, key: Any, actions: Sequence[int],
        labels: Sequence[str] | None = None,
    ) -> int:
        """A decision node of ``player`` in the infoset named ``key`` with legal action ids
        ``actions`` (named ``labels``, if given, the first time the infoset is seen)."""
        if not 0 <= player < self.num_players:
            raise GameError(f"decision node of player {player}, but the game has {self.num_players} players")
        if not actions:
            raise GameError(f"infoset {key!r} has no legal actions")
        infoset = self.infoset_ids.get((player, key))
        node = self._add_node(parent, slot, player, -1 if infoset is None else infoset)
        own_last = self.node_last[node][player]
        if infoset is None:
            infoset = len(self.infoset_player)
            self.infoset_ids[(player, key)] = infoset
            self.infoset_player.append(player)
            self.infoset_parent.append(own_last)
            self.infoset_actions.append(tuple(actions))
            self.infoset_keys.append(str(key))
            self.action_labels.append([str(a) for a in actions] if labels is None else list(map(str, labels)))
            self.has_labels |= labels is not None
            self.node_infoset[node] = infoset
        else:
            if self.infoset_actions[infoset] != tuple(actions):
                raise GameError(f"infoset {key!r} has different legal actions at different nodes")
            if self.infoset_parent[infoset] != own_last:
                raise GameError(
                    f"the game does not have perfect recall: infoset {key!r} is reached after different "
                    "sequences of its owner's own actions"
                )
        self.node_num_actions[node] = len(actions)
        return node

    def chance(self, parent: int, slot: int, probabilities: Sequence[float], where: str = "") -> int:
        """A chance node whose outcome slots have ``probabilities`` (they must sum to 1)."""
        total = float(sum(probabilities))
        if any(p < 0 for p in probabilities) or abs(total - 1.0) > 1e-9:
            raise GameError(f"chance probabilities {list(probabilities)} {where}do not form a distribution (sum {total})")
        node = self._add_node(parent, slot, CHANCE, -1)
        self.node_probabilities[node] = list(probabilities)
        self.node_num_actions[node] = len(probabilities)
        return node

    def terminal(self, parent: int, slot: int, utilities: Sequence[float]) -> int:
        """A terminal node paying ``utilities`` (one per player)."""
        if len(utilities) != self.num_players:
            raise GameError(f"a terminal pays {len(utilities)} utilities to {self.num_players} players")
        if not all(map(lambda u: u == u and abs(u) != float("inf"), utilities)):
            raise GameError(f"terminal utilities {list(utilities)} are not finite")
        node = self._add_node(parent, slot, TERMINAL, -1)
        self.terminal_nodes.append(node)
        self.terminal_utilities.append(list(map(float, utilities)))
        return node

    def compile(self, *, dtype: torch.dtype = torch.float64, device: Any = None) -> ExtensiveFormGame:
        """The :class:`ExtensiveFormGame` of everything reported so far."""
        if not self.terminal_nodes:
            raise GameError("the game tree has no terminal node")
        num_infosets = len(self.infoset_player)
        max_actions = max((len(a) for a in self.infoset_actions), default=1)
        found_level = [0] * num_infosets
        for infoset in range(num_infosets):  # parents are always created before children
            parent = self.infoset_parent[infoset][0]
            found_level[infoset] = 0 if parent < 0 else found_level[parent] + 1
        # Infosets are numbered by (level, player), in order of discovery within each group,
        # so that every level of every player is a contiguous block of rows: solvers then
        # read and write a level through slices instead of gathers.
        order = sorted(range(num_infosets), key=lambda i: (found_level[i], self.infoset_player[i]))
        new_id = [0] * num_infosets
        for position, infoset in enumerate(order):
            new_id[infoset] = position
        renumber = lambda infoset: new_id[infoset] if infoset >= 0 else infoset
        level = [found_level[i] for i in order]
        infoset_actions = [self.infoset_actions[i] for i in order]
        legal = torch.zeros(num_infosets, max_actions, dtype=torch.bool)
        action_ids = torch.full((num_infosets, max_actions), -1, dtype=torch.long)
        for infoset, actions in enumerate(infoset_actions):
            legal[infoset, : len(actions)] = True
            action_ids[infoset, : len(actions)] = torch.tensor(actions)
        parents = [(renumber(self.infoset_parent[i][0]), self.infoset_parent[i][1]) for i in order]
        lasts = [[(renumber(i), a) for i, a in self.node_last[node]] for node in self.terminal_nodes]
        long = lambda values: torch.tensor(values, dtype=torch.long, device=device)
        real = lambda values: torch.tensor(values, dtype=dtype, device=device)
        return ExtensiveFormGame(
            num_players=self.num_players,
            max_actions=max_actions,
            infoset_player=long([self.infoset_player[i] for i in order]),
            infoset_parent=long([p for p, _ in parents]),
            infoset_parent_slot=long([s for _, s in parents]),
            infoset_level=long(level),
            legal_mask=legal.to(device),
            infoset_action_ids=action_ids.to(device),
            infoset_keys=[self.infoset_keys[i] for i in order],
            terminal_utilities=real(self.terminal_utilities),
            terminal_chance=real([self.node_chance[node] for node in self.terminal_nodes]),
            terminal_last_infoset=long([[last[p][0] for last in lasts] for p in range(self.num_players)]),
            terminal_last_slot=long([[last[p][1] for last in lasts] for p in range(self.num_players)]),
            node_parent=long(self.node_parent),
            node_player=long(self.node_player),
            node_infoset=long([renumber(i) for i in self.node_infoset]),
            node_slot=long(self.node_slot),
            node_depth=long(self.node_depth),
            node_probability=real(self.node_probability),
            title=self.title,
            action_labels=[list(self.action_labels[i]) for i in order] if self.has_labels else None,
        )


def tree_from_normal_form(game: Any, *, dtype: torch.dtype | None = None) -> ExtensiveFormGame:
    """A normal-form game as a game tree: player 0 moves, then player 1 without seeing it, and so on.

    Each player has one infoset (key ``"player p"``, actions labelled with the game's action
    names), so a behavioural strategy's row p is player p's mixed strategy and every
    sequence-form computation (realization plans, best responses, NashConv) gives the
    normal-form game's values. ``game``: an unbatched :class:`games.normal_form.NormalFormGame`.
    """
    if game.batched:
        raise GameError("a batch of normal-form games has no single game tree; pass one game")
    compiler = TreeCompiler(game.num_players, title=game.title)
    payoffs = game.payoffs.detach().cpu().tolist()

    def descend(parent: int, slot: int, player: int, prefix: tuple[int, ...]) -> None:
        if player == game.num_players:
            compiler.terminal(parent, slot, [_index(payoffs[p], prefix) for p in range(game.num_players)])
            return
        node = compiler.decision(parent, slot, player, f"player {player}", list(range(game.num_actions[player])),
                                 game.action_names[player])
        for action in range(game.num_actions[player]):
            descend(node, action, player + 1, (*prefix, action))

    descend(-1, -1, 0, ())
    return compiler.compile(dtype=dtype or game.dtype, device=game.device)


def _index(nested: Any, profile: tuple[int, ...]) -> float:
    for action in profile:
        nested = nested[action]
    return float(nested)


def strategy_to_dict(game: ExtensiveFormGame, strategy: Tensor) -> dict[str, dict[str, float]]:
    """A behavioural strategy as ``{infoset key: {action id: probability}}`` (legal actions only).

    For OpenSpiel games the keys are information-state strings and the ids OpenSpiel's
    action ids, so the mapping reads like a ``TabularPolicy``; it is what
    ``gamelab solve --out`` writes.
    """
    values = strategy.detach().cpu().tolist()
    action_ids = game.infoset_action_ids.cpu().tolist()
    legal = game.legal_mask.cpu().tolist()
    return {
        key: {str(action): values[infoset][slot] for slot, action in enumerate(action_ids[infoset]) if legal[infoset][slot]}
        for infoset, key in enumerate(game.infoset_keys)
    }


def strategy_from_dict(game: ExtensiveFormGame, mapping: dict[str, dict[str, float]], where: str = "") -> Tensor:
    """The inverse of :func:`strategy_to_dict`, validated.

    Raises:
        GameError: naming the first infoset that is missing, unknown, has an unknown
            action, or is not a distribution over its legal actions.
    """
    if not isinstance(mapping, dict):
        raise GameError(f"{where}a strategy must be a JSON object mapping infosets to action probabilities")
    unknown = set(mapping) - set(game.infoset_keys)
    if unknown:
        raise GameError(f"{where}infoset {sorted(unknown)[0]!r} is not in this game")
    strategy = torch.zeros(game.num_infosets, game.max_actions, dtype=game.dtype)
    action_ids = game.infoset_action_ids.cpu().tolist()
    for infoset, key in enumerate(game.infoset_keys):
        if key not in mapping:
            raise GameError(f"{where}infoset {key!r} is missing")
        row = mapping[key]
        if not isinstance(row, dict):
            raise GameError(f"{where}infoset {key!r}: expected an object of action probabilities")
        slots = {str(action): slot for slot, action in enumerate(action_ids[infoset]) if action >= 0}
        for action, probability in row.items():
            if action not in slots:
                raise GameError(f"{where}infoset {key!r} has no legal action {action!r}")
            if not isinstance(probability, (int, float)) or isinstance(probability, bool):
                raise GameError(f"{where}infoset {key!r}, action {action!r}: {probability!r} is not a number")
            strategy[infoset, slots[action]] = float(probability)
    return game.check_strategy(strategy.to(game.device))


def read_strategy(game: ExtensiveFormGame, path: Any) -> Tensor:
    """Reads a strategy written by ``gamelab solve --out`` (the :func:`strategy_to_dict` JSON).

    Raises:
        GameFileError: for unreadable or malformed JSON, naming the file (and line).
        GameError: for a strategy of another game, naming the infoset.
    """
    import json
    import os

    from games.errors import GameFileError
    from games.io import read_text_file

    try:
        mapping = json.loads(read_text_file(path))
    except json.JSONDecodeError as error:
        raise GameFileError(path, error.lineno, error.colno, f"not valid JSON: {error.msg}") from None
    return strategy_from_dict(game, mapping, where=f"{os.fspath(path)}: ")
