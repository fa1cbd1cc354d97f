"""Gambit ``.nfg`` files: reading both versions of the format, and writing.

The format is specified in Gambit's documentation (doc/formats.nfgpay.rst and
doc/formats.nfgout.rst). A file starts with a header::

    NFG 1 R "title" { "Player 1" "Player 2" } <strategies>
    "optional comment"

``R`` (rational) and ``D`` (decimal) are both accepted. ``<strategies>`` is either
``{ 3 2 }`` (the number of strategies of each player) or
``{ { "s1" "s2" "s3" } { "t1" "t2" } }`` (strategy labels). The body is then either

- the *payoff version*: for each pure profile, the payoff of every player in turn; or
- the *outcome version*: a list of outcomes ``{ "name" u_1, u_2 }`` followed by one
  outcome number per profile (1-based; 0 is the null outcome, paying 0 to everyone).

The body's first token decides which (``{`` opens the outcome list): real files, such as
Gambit's ``coord2.nfg``, combine strategy labels with the payoff version.

Profiles are enumerated with player 1's strategy changing fastest. Numbers may be
integers, decimals (``.80``, ``1e-3``) or rationals (``99/100``). Whitespace is not
significant, commas between payoffs are optional, and ``\\"`` escapes a quote in a label.

Malformed input raises :class:`games.errors.GameFileError` naming the file, line, column
and what was expected. :func:`write_nfg` writes the outcome version, atomically.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from games.errors import GameError, GameFileError
from games.io import atomic_write_text, read_text_file
from games.normal_form import NormalFormGame

# The largest number of pure profiles a file may describe; beyond it the payoff tensor
# would not fit in memory, and reading is refused up front.
MAX_PROFILES = 50_000_000
# Numbers are read exactly (as fractions) before they become floats, so their size is
# bounded first: a 68-byte `1e999999999` would otherwise take minutes and gigabytes.
MAX_NUMBER_CHARACTERS = 100
# Players a game file may have: a normal-form game gives each player an einsum letter
# (games.normal_form), and real files have a handful.
MAX_PLAYERS = 26
MAX_EXPONENT = 400  # beyond 1e308 a float overflows, and below 1e-324 it is 0
_EXPONENT = re.compile(r"[eE]([+-]?\d+)$")


def shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error message, shortened when long (a 5,000-digit number is not echoed whole)."""
    return repr(text) if len(text) <= limit else f"{text[:limit // 2]!r}... ({len(text):,} characters)"


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "number", "{", "}"
    text: str
    line: int
    column: int
    end: int = -1
    """Offset in the text just after the token."""


def tokenize(text: str, path: str | None = None, start: int = 0, line: int = 1, line_start: int = 0) -> Iterator[Token]:
    """Splits Gambit game-file text into tokens, keeping line and column for error messages.

    Shared by the ``.nfg`` and ``.efg`` readers. Commas are separators and yield nothing.
    ``start`` is the offset to begin at, on line ``line`` that begins at offset ``line_start``.
    """
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            line_start = i + 1
            i += 1
        elif ch.isspace() or ch == ",":
            i += 1
        elif ch in "{}":
            yield Token(ch, ch, line, i - line_start + 1, i + 1)
            i += 1
        elif ch == '"':
            start_line, start_column = line, i - line_start + 1
            i += 1
            chars = []
            while True:
                if i >= n:
                    raise GameFileError(path, start_line, start_column, "a quoted label is never closed")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                if ch == "\n":
                    line += 1
                    line_start = i + 1
                chars.append(ch)
                i += 1
            yield Token("string", "".join(chars), start_line, start_column, i)
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '{}",':
                i += 1
            word = text[start:i]
            kind = "number" if (word[0].isdigit() or word[0] in "+-.") else "word"
            yield Token(kind, word, line, start - line_start + 1, i)


_QUOTED = re.compile(r'"(?:\\.|[^"\\])*("?)', re.DOTALL)


def _check_quotes(text: str, path: str | None) -> None:
    """Raises for a quoted label that is never closed, before any token is read.

    Tokens are made as they are read, so without this check a missing closing quote would
    surface as a confusing error wherever its label happened to swallow the text after it.
    """
    for match in _QUOTED.finditer(text):
        if not match.group(1):
            line = text.count("\n", 0, match.start()) + 1
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            raise GameFileError(path, line, column, "a quoted label is never closed")


class TokenStream:
    """A cursor over tokens with ``expect`` helpers that raise :class:`GameFileError`.

    Tokens are made as they are read (one at a time, never a list of the whole file), and
    the cursor can move to any offset of the text (:meth:`restart`), which the ``.nfg``
    reader uses after it has read a long run of payoffs without tokens.
    """

    def __init__(self, text: str, path: str | None) -> None:
        self.path = path
        self.text = text
        _check_quotes(text, path)
        self._tokens = tokenize(text, path)
        self._ahead: Token | None = None
        self.offset = 0
        """The offset just after the last token read."""
        # The end of the file is reported just after its last non-blank character.
        content = text.rstrip()
        last_line = content.count("\n") + 1
        self._end = Token("end", "", last_line, len(content) - (content.rfind("\n") + 1) + 1, len(text))

    def restart(self, offset: int) -> None:
        """Moves the cursor to ``offset`` (the boundary between two tokens)."""
        line = self.text.count("\n", 0, offset) + 1
        self._tokens = tokenize(self.text, self.path, offset, line, self.text.rfind("\n", 0, offset) + 1)
        self._ahead = None
        self.offset = offset

    def peek(self) -> Token:
        if self._ahead is None:
            self._ahead = next(self._tokens, self._end)
        return self._ahead

    def next(self) -> Token:
        token = self.peek()
        if token.kind != "end":
            self._ahead = None
            self.offset = token.end
        return token

    def at_end(self) -> bool:
        return self.peek().kind == "end"

    def error(self, token: Token, message: str) -> GameFileError:
        found = "the end of the file" if token.kind == "end" else shown(token.text)
        return GameFileError(self.path, token.line, token.column, f"{message}, found {found}")

    def expect(self, kind: str, what: str) -> Token:
        token = self.next()
        if token.kind != kind:
            raise self.error(token, f"expected {what}")
        return token

    def expect_word(self, word: str) -> Token:
        token = self.next()
        if token.kind != "word" or token.text != word:
            raise self.error(token, f"expected {word!r}")
        return token

    def number(self, what: str = "a number") -> Fraction:
        token = self.next()
        if token.kind != "number":
            raise self.error(token, f"expected {what}")
        return parse_number(token, self.path)

    def real(self, what: str = "a number") -> float:
        """The next number as a finite float; a GameFileError at its position otherwise."""
        token = self.peek()
        value = self.number(what)
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if not math.isfinite(result):
            raise GameFileError(self.path, token.line, token.column, f"{shown(token.text)} is too large for a float")
        return result

    def integer(self, what: str) -> int:
        token = self.next()
        digits = token.text[1:] if token.text[:1] in "+-" else token.text
        if token.kind != "number" or not digits.isascii() or not digits.isdigit():
            raise self.error(token, f"expected {what} (a whole number)")
        return int(token.text)

    def strings_in_braces(self, what: str, one: str) -> list[str]:
        """``{ "a" "b" ... }``: the list of ``what``, each a quoted ``one``."""
        self.expect("{", f"'{{' opening the list of {what}")
        out = []
        while self.peek().kind == "string":
            out.append(self.next().text)
        self.expect("}", f"a quoted {one} or '}}' closing the list of {what}")
        return out


def parse_number(token: Token, path: str | None) -> Fraction:
    """A Gambit number (integer, decimal, scientific or rational ``p/q``) as an exact fraction.

    Raises:
        GameFileError: for text that is not a number, more than ``MAX_NUMBER_CHARACTERS``
            characters, or an exponent beyond ``MAX_EXPONENT``, checked before any arithmetic.
    """
    text = token.text
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise GameFileError(path, token.line, token.column,
                            f"the number {shown(text)} is longer than {MAX_NUMBER_CHARACTERS} characters")
    exponent = _EXPONENT.search(text)
    if exponent is not None and abs(int(exponent.group(1))) > MAX_EXPONENT:
        raise GameFileError(path, token.line, token.column,
                            f"{shown(text)}: its exponent is beyond what a float holds (at most {MAX_EXPONENT})")
    try:
        if "/" in text:
            numerator, denominator = text.split("/")
            value = Fraction(int(numerator), int(denominator))
        else:
            value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise GameFileError(path, token.line, token.column, f"{shown(text)} is not a number") from None
    return value


def _read_header(stream: TokenStream, magic: str) -> tuple[str, list[str]]:
    stream.expect_word(magic)
    version = stream.next()
    if version.kind != "number" or version.text not in {"1", "2"}:
        raise stream.error(version, f"expected the format version after {magic!r}")
    kind = stream.next()
    if kind.kind != "word" or kind.text not in {"R", "D"}:
        raise stream.error(kind, "expected 'R' or 'D' (the number type)")
    title = stream.expect("string", "the quoted title of the game").text
    opening = stream.peek()
    players = stream.strings_in_braces("players", "player name")
    if not players:
        raise GameFileError(stream.path, kind.line, None, "the game has no players")
    if len(players) > MAX_PLAYERS:
        raise GameFileError(stream.path, opening.line, opening.column,
                            f"the game has {len(players):,} players; gamelab reads games of at most {MAX_PLAYERS}")
    return title, players


def parse_nfg(text: str, path: str | os.PathLike | None = None, **game_kwargs: Any) -> NormalFormGame:
    """Parses the text of a ``.nfg`` file into a :class:`NormalFormGame` (float64 payoffs).

    Raises:
        GameFileError: naming the file, line and column of the first problem.
    """
    path = None if path is None else os.fspath(path)
    stream = TokenStream(text, path)
    title, players = _read_header(stream, "NFG")
    num_players = len(players)

    open_brace = stream.expect("{", "'{' opening the strategies of each player")
    strategy_names: list[list[str]] | None
    if stream.peek().kind == "{":
        strategy_names = []
        for player in range(num_players):
            strategy_names.append(stream.strings_in_braces(f"strategies of player {player + 1}", "strategy name"))
        stream.expect("}", "'}' closing the strategy lists")
        num_actions = [len(names) for names in strategy_names]
    else:
        strategy_names = None
        num_actions = []
        while stream.peek().kind == "number":
            num_actions.append(stream.integer("a number of strategies"))
        stream.expect("}", "a number of strategies or '}'")
    if len(num_actions) != num_players:
        raise GameFileError(
            path, open_brace.line, open_brace.column,
            f"{num_players} players but strategies are given for {len(num_actions)}",
        )
    for player, count in enumerate(num_actions):
        if count < 1:
            raise GameFileError(path, open_brace.line, open_brace.column, f"player {player + 1} has no strategies")
    num_profiles = math.prod(num_actions)
    if num_profiles > MAX_PROFILES:
        raise GameFileError(
            path, open_brace.line, open_brace.column,
            f"{num_profiles:,} pure profiles ({num_profiles * num_players * 8 / 2**30:.1f} GiB of payoffs) "
            f"exceed the limit of {MAX_PROFILES:,}",
        )
    if stream.peek().kind == "string":  # the optional comment
        stream.next()

    from games import memory

    memory.check(f"{path or 'the game'}: the payoffs of {num_profiles:,} profiles for {num_players} players",
                 2 * memory.payoff_bytes(num_actions), "use a smaller game")
    if stream.peek().kind != "{":  # payoff version: payoffs of every profile in turn
        table = _read_payoffs(stream, num_profiles, num_players)
    else:  # outcome version: a list of outcomes, then an outcome number per profile
        table = np.zeros((num_profiles, num_players), dtype=np.float64)
        outcomes = _read_outcomes(stream, num_players)
        for profile in range(num_profiles):
            token = stream.peek()
            index = stream.integer(f"the outcome number of profile {profile + 1} of {num_profiles}")
            if not 0 <= index <= len(outcomes):
                raise GameFileError(
                    path, token.line, token.column,
                    f"outcome {index} does not exist (the file defines {len(outcomes)})",
                )
            if index:
                table[profile] = outcomes[index - 1]
    if not stream.at_end():
        raise stream.error(stream.peek(), "expected the end of the file after the last profile")

    # Profile k has player 1's strategy changing fastest: Fortran order over (A_1, ..., A_N),
    # which is C order over (A_N, ..., A_1) with the action axes reversed (a view, no copy).
    reversed_axes = table.T.reshape((num_players, *num_actions[::-1]))
    payoffs = reversed_axes.transpose((0, *range(num_players, 0, -1)))
    del text, stream  # the file's text is not needed any more: free it before the tensor is made
    if strategy_names is None:
        strategy_names = [[str(a + 1) for a in range(n)] for n in num_actions]
    return NormalFormGame(
        payoffs, player_names=players, action_names=strategy_names, title=title, **game_kwargs
    )


# The payoff version's body is read in blocks of text this long; a block of plain decimals
# (digits, signs, points, separators) goes to numpy whole, anything else token by token.
_BLOCK = 1 << 16
_SEPARATOR = re.compile(r"[\s,]")
_NOT_PLAIN_DECIMAL = re.compile(r"[^0-9.+\-\s,]")


def _read_payoffs(stream: TokenStream, num_profiles: int, num_players: int) -> np.ndarray:
    """``(num_profiles, num_players)`` float64: the payoff version's body, profile by profile.

    Memory is the table itself plus one block of text: blocks of plain decimals are split
    and converted by numpy (``float`` of a decimal string is the correctly rounded value,
    the same as the exact fraction's), and the first block that holds anything else (a
    rational ``p/q``, an exponent, a stray word, the end of the table) and all that follows
    it are read token by token, so every error names its line and column as before.
    """
    count = num_profiles * num_players
    values = np.empty(count, dtype=np.float64)
    text, filled = stream.text, 0
    stream.peek()  # the first payoff's token: the body starts where it does
    offset = stream.offset
    while filled < count and offset < len(text):
        end = min(len(text), offset + _BLOCK)
        if end < len(text):
            boundary = _SEPARATOR.search(text, end)
            end = boundary.start() if boundary else len(text)
        block = text[offset:end]
        if _NOT_PLAIN_DECIMAL.search(block):
            break
        parts = block.replace(",", " ").split()
        if filled + len(parts) > count or max(map(len, parts), default=0) > MAX_NUMBER_CHARACTERS:
            break  # the table ends inside this block, or a number is too long: read it token by token
        try:
            values[filled:filled + len(parts)] = np.array(parts, dtype=np.float64)
        except ValueError:
            break  # not a number ("1.2.3"): found and reported below
        filled += len(parts)
        offset = end
    stream.restart(offset)
    for index in range(filled, count):
        profile, player = divmod(index, num_players)
        values[index] = stream.real(f"payoff {player + 1} of profile {profile + 1} of {num_profiles}")
    return values.reshape(num_profiles, num_players)


def _read_outcomes(stream: TokenStream, num_players: int) -> list[list[float]]:
    stream.expect("{", "'{' opening the list of outcomes")
    outcomes = []
    while stream.peek().kind == "{":
        stream.next()
        stream.expect("string", f"the quoted name of outcome {len(outcomes) + 1}")
        payoffs = [
            stream.real(f"payoff {p + 1} of {num_players} in outcome {len(outcomes) + 1}")
            for p in range(num_players)
        ]
        stream.expect("}", f"'}}' closing outcome {len(outcomes) + 1} after {num_players} payoffs")
        outcomes.append(payoffs)
    stream.expect("}", "'{' opening an outcome or '}' closing the list of outcomes")
    return outcomes


def read_nfg(path: str | os.PathLike, **game_kwargs: Any) -> NormalFormGame:
    """Reads a Gambit ``.nfg`` file. ``game_kwargs`` (``dtype``, ``device``) go to the game."""
    return parse_nfg(read_text_file(path), path, **game_kwargs)


def _quote(label: str) -> str:
    return '"' + label.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_number(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (integers without a decimal point)."""
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def format_nfg(game: NormalFormGame) -> str:
    """The outcome version of the ``.nfg`` format for an unbatched game, one outcome per profile."""
    if game.batched:
        raise GameError("a batched game cannot be written as one .nfg file; index it first")
    payoffs = game.payoffs.detach().to("cpu", torch.float64).numpy()
    num_profiles = math.prod(game.num_actions)
    table = np.stack([payoffs[i].reshape(-1, order="F") for i in range(game.num_players)], axis=1)
    lines = [
        f"NFG 1 R {_quote(game.title)} {{ {' '.join(map(_quote, game.player_names))} }}",
        "",
        "{ " + "\n".join("{ " + " ".join(map(_quote, names)) + " }" for names in game.action_names),
        "}",
        '""',
        "",
        "{",
    ]
    for profile in range(num_profiles):
        lines.append("{ \"\" " + ", ".join(format_number(v) for v in table[profile]) + " }")
    lines.append("}")
    lines.append(" ".join(str(k + 1) for k in range(num_profiles)))
    return "\n".join(lines) + "\n"


def write_nfg(game: NormalFormGame, path: str | os.PathLike) -> None:
    """Writes ``game`` to ``path`` in the outcome version of the format, atomically."""
    atomic_write_text(path, format_nfg(game))
