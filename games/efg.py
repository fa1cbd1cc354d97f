"""Gambit ``.efg`` files: reading them into compiled :class:`ExtensiveFormGame` objects.

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
"""

from __future__ import annotations

import math
import os
from typing import Any

from games.errors import GameError, GameFileError
from games.extensive_form import ExtensiveFormGame, TreeCompiler
from games.io import read_text_file
from games.nfg import TokenStream, _read_header


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
                self.compiler.terminal(parent, slot, payoffs)
                continue
            if token.text == "c":
                number, name, actions, probabilities = self._infoset(-1, chance=True)
                payoffs = [a + b for a, b in zip(accumulated, self._outcome())]
                node = self.compiler.chance(parent, slot, probabilities, where=f"of chance information set {number} ")
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
