"""Gambit ``.efg`` files: reading them into compiled :class:`ExtensiveFormGame` objects, and writing them.

The format is specified in Gambit's documentation (doc/formats.efg.rst). After the header
``EFG 2 R "title" { "Player 1" "Player 2" } "optional comment"`` the tree follows in
prefix order, one node per entry; a node's children follow it, one per action:

- ``p "node" player infoset "infoset" { "a1" "a2" } outcome ...``: a decision node of
  ``player`` (1-based) in its ``infoset`` (numbered per player);
- ``c "node" infoset "infoset" { "a1" 1/2 "a2" 1/2 } outcome ...``: a chance node whose
  actions carry probabilities;
- ``t "node" outcome ...``: a terminal node.

``outcome`` is a number, 0 for none; where an outcome first appears it is followed by its
name and payoffs ``"name" { u_1, u_2 }``. The infoset's name and action list may be left
out at later nodes of the same infoset. A player receives the *sum* of the outcomes on
the path to a terminal, so payoffs attached to inner nodes are added to every terminal
below them. Infoset keys are ``"P<player>:<infoset number>"`` (``"C:<n>"`` for chance);
the infoset's label, when given, follows after a space.

Malformed input raises :class:`GameFileError` with file, line and column; games without
perfect recall, and chance probabilities that do not sum to 1, raise :class:`GameError`.

:func:`write_efg` writes any compiled game (an OpenSpiel game, say) in this format,
atomically. Each terminal gets its own outcome; infosets keep their Gambit numbers and
labels when they came from a ``.efg`` file, and are otherwise numbered in order of first
appearance and labelled with their keys (OpenSpiel information-state strings); chance
outcomes are named by their slot, as the compiled game does not keep their names.
"""

from __future__ import annotations

import math
import os
from typing import Any

from games.errors import GameError, GameFileError
from games.extensive_form import CHANCE, TERMINAL, ExtensiveFormGame, TreeCompiler
from games.io import atomic_write_text, read_text_file
from games.nfg import TokenStream, _quote, _read_header, format_number


class _Reader:
    def __init__(self, stream: TokenStream, num_players: int, compiler: TreeCompiler) -> None:
        self.stream = stream
        self.num_players = num_players
        self.compiler = compiler
        self.infosets: dict[tuple[int, int], tuple[str, list[str], list[float] | None]] = {}
        self.outcomes: dict[int, list[float]] = {}

    def _outcome(self) -> list[float]:
        """Reads ``outcome [ "name" { payoffs } ]`` and returns the outcome's payoffs."""
        token = self.stream.peek()
        number = self.stream.integer("an outcome number (0 for none)")
        if number < 0:
            raise GameFileError(self.stream.path, token.line, token.column, f"outcome number {number} is negative")
        if self.stream.peek().kind == "string":
            self.stream.next()
            self.stream.expect("{", f"'{{' opening the payoffs of outcome {number}")
            payoffs = [self.stream.real(f"payoff {p + 1} of outcome {number}") for p in range(self.num_players)]
            self.stream.expect("}", f"'}}' closing outcome {number} after {self.num_players} payoffs")
            if number == 0:
                raise GameFileError(self.stream.path, token.line, token.column, "outcome 0 cannot have payoffs")
            self.outcomes[number] = payoffs
        if number == 0:
            return [0.0] * self.num_players
        if number not in self.outcomes:
            raise GameFileError(self.stream.path, token.line, token.column,
                                f"outcome {number} is used before its payoffs are given")
        return self.outcomes[number]

    def _infoset(self, owner: int, chance: bool) -> tuple[int, str, list[str], list[float] | None]:
        token = self.stream.peek()
        number = self.stream.integer("an information set number")
        label = self.stream.next().text if self.stream.peek().kind == "string" else None
        key = (owner, number)
        if self.stream.peek().kind == "{":
            self.stream.next()
            actions, probabilities = [], []
            while self.stream.peek().kind == "string":
                actions.append(self.stream.next().text)
                if chance:
                    probabilities.append(self.stream.real(f"the probability of chance action {actions[-1]!r}"))
            self.stream.expect("}", "a quoted action name or '}' closing the actions")
            if not actions:
                raise GameFileError(self.stream.path, token.line, token.column, f"information set {number} has no actions")
            known = self.infosets.get(key)
            if known is not None and (known[1] != actions or (chance and known[2] != probabilities)):
                raise GameFileError(self.stream.path, token.line, token.column,
                                    f"information set {number} is given different actions at different nodes")
            self.infosets[key] = (label or (known[0] if known else ""), actions, probabilities if chance else None)
        elif key not in self.infosets:
            raise GameFileError(self.stream.path, token.line, token.column,
                                f"information set {number} appears without its actions")
        name, actions, probabilities = self.infosets[key]
        return number, name, actions, probabilities

    def node(self, parent: int, slot: int, accumulated: list[float]) -> None:
        stack = [(parent, slot, accumulated)]
        while stack:
            parent, slot, accumulated = stack.pop()
            token = self.stream.next()
            if token.kind != "word" or token.text not in ("p", "c", "t"):
                raise self.stream.error(token, "expected a node: 'p', 'c' or 't'")
            self.stream.expect("string", "the quoted name of the node")
            if token.text == "t":
                payoffs = [a + b for a, b in zip(accumulated, self._outcome())]
                if not all(math.isfinite(value) for value in payoffs):
                    raise GameFileError(self.stream.path, token.line, token.column,
                                        "the payoffs along this path add up to a number too large for a float")
                self.compiler.terminal(parent, slot, payoffs)
                continue
            if token.text == "c":
                number, name, actions, probabilities = self._infoset(-1, chance=True)
                payoffs = [a + b for a, b in zip(accumulated, self._outcome())]
                try:
                    node = self.compiler.chance(parent, slot, probabilities,
                                                where=f"of chance information set {number} ")
                except GameError as error:
                    raise GameFileError(self.stream.path, token.line, token.column, str(error)) from None
            else:
                player_token = self.stream.peek()
                player = self.stream.integer("the player number")
                if not 1 <= player <= self.num_players:
                    raise GameFileError(self.stream.path, player_token.line, player_token.column,
                                        f"player {player} does not exist (the game has {self.num_players})")
                number, name, actions, _ = self._infoset(player, chance=False)
                payoffs = [a + b for a, b in zip(accumulated, self._outcome())]
                key = f"P{player}:{number}" + (f" {name}" if name else "")
                try:
                    node = self.compiler.decision(parent, slot, player - 1, key, list(range(len(actions))), actions)
                except GameError as error:
                    raise GameFileError(self.stream.path, token.line, token.column, str(error)) from None
            stack.extend((node, s, payoffs) for s in reversed(range(len(actions))))


def parse_efg(text: str, path: str | os.PathLike | None = None, **compile_kwargs: Any) -> ExtensiveFormGame:
    """Parses the text of a ``.efg`` file into a compiled game (float64 by default)."""
    path = None if path is None else os.fspath(path)
    stream = TokenStream(text, path)
    title, players = _read_header(stream, "EFG")
    if stream.peek().kind == "string":  # the optional comment
        stream.next()
    compiler = TreeCompiler(len(players), title=title)
    reader = _Reader(stream, len(players), compiler)
    reader.node(-1, -1, [0.0] * len(players))
    if not stream.at_end():
        raise stream.error(stream.peek(), "expected the end of the file after the last node")
    game = compiler.compile(**compile_kwargs)
    if not all(math.isfinite(v) for v in game.terminal_utilities.flatten().tolist()):
        raise GameFileError(path, None, None, "payoffs add up to a number too large for a float")
    return game


def read_efg(path: str | os.PathLike, **compile_kwargs: Any) -> ExtensiveFormGame:
    """Reads a Gambit ``.efg`` file; ``compile_kwargs`` (``dtype``, ``device``) place the tensors."""
    text = read_text_file(path)
    return parse_efg(text, path, **compile_kwargs)


def _probability(value: float) -> str:
    """A chance probability as a small fraction when it is one (1/3), else as a decimal."""
    from fractions import Fraction

    fraction = Fraction(value).limit_denominator(10_000)
    if abs(float(fraction) - value) <= 1e-15 and fraction.denominator > 1:
        return f"{fraction.numerator}/{fraction.denominator}"
    return format_number(value)


def _infoset_names(game: ExtensiveFormGame) -> list[tuple[int, str]]:
    """Each infoset's Gambit number (per player) and label."""
    import re

    pattern = re.compile(r"^P(\d+):(\d+)(?: (.*))?$")
    owners = game.infoset_player.tolist()
    names: list[tuple[int, str]] = [(0, "")] * game.num_infosets
    for player in range(game.num_players):
        ids = [i for i, owner in enumerate(owners) if owner == player]
        parsed = [pattern.match(game.infoset_keys[i]) for i in ids]
        reuse = all(m is not None and int(m.group(1)) == player + 1 for m in parsed)
        reuse = reuse and len({int(m.group(2)) for m in parsed}) == len(ids)
        for number, (infoset, match) in enumerate(zip(ids, parsed), start=1):
            names[infoset] = (int(match.group(2)), match.group(3) or "") if reuse else (number, game.infoset_keys[infoset])
    return names


def format_efg(game: ExtensiveFormGame, player_names: list[str] | None = None) -> str:
    """The text of a ``.efg`` file for ``game`` (see the module docstring)."""
    players = player_names or [f"Player {p + 1}" for p in range(game.num_players)]
    if len(players) != game.num_players:
        raise GameError(f"{len(players)} player names for a game of {game.num_players} players")
    parent = game.node_parent.tolist()
    slots = game.node_slot.tolist()
    owner = game.node_player.tolist()
    infoset_of = game.node_infoset.tolist()
    probability = game.node_probability.tolist()
    utilities = game.terminal_utilities.tolist()
    action_ids = game.infoset_action_ids.tolist()
    legal = game.legal_mask.tolist()
    labels = game.action_labels
    names = _infoset_names(game)
    children: list[list[tuple[int, int]]] = [[] for _ in parent]
    for node, (up, slot) in enumerate(zip(parent, slots)):
        if up >= 0:
            children[up].append((slot, node))
    lines = [f"EFG 2 R {_quote(game.title)} {{ {' '.join(map(_quote, players))} }}", '""', ""]
    terminal_of = {node: k for k, node in enumerate(n for n, kind in enumerate(owner) if kind == TERMINAL)}
    outcome = chance_infoset = 0
    stack = [0]
    while stack:
        node = stack.pop()
        kind = owner[node]
        below = [child for _, child in sorted(children[node])]
        if kind == TERMINAL:
            outcome += 1
            payoffs = ", ".join(format_number(u) for u in utilities[terminal_of[node]])
            lines.append(f't "" {outcome} "" {{ {payoffs} }}')
        elif kind == CHANCE:
            chance_infoset += 1
            outcomes = " ".join(f'"{k + 1}" {_probability(probability[child])}' for k, child in enumerate(below))
            lines.append(f'c "" {chance_infoset} "" {{ {outcomes} }} 0')
        else:
            infoset = infoset_of[node]
            number, label = names[infoset]
            slots_here = [slot for slot, ok in enumerate(legal[infoset]) if ok]
            actions = [labels[infoset][slot] if labels else str(action_ids[infoset][slot]) for slot in slots_here]
            lines.append(f'p "" {kind + 1} {number} {_quote(label)} {{ {" ".join(map(_quote, actions))} }} 0')
        stack.extend(reversed(below))
    return "\n".join(lines) + "\n"


def write_efg(game: ExtensiveFormGame, path: str | os.PathLike, player_names: list[str] | None = None) -> None:
    """Writes ``game`` as a Gambit ``.efg`` file, atomically (a temporary file, then a rename)."""
    atomic_write_text(path, format_efg(game, player_names))
