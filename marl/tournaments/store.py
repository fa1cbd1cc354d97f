"""The tournament database: SQLite, one row per match, written as matches finish.

Schema (format ``gamelab.tournament`` version 1)::

    meta(key TEXT PRIMARY KEY, value TEXT)
        format, version, fingerprint (a hash of everything that decides the results),
        tournament (the name), game, players (a JSON list, table order)
    matches(first, second, match, seating, payoff_first, payoff_second, score_first,
            forfeit, error, seconds, PRIMARY KEY (first, second, match))

A block of matches (a ``marl.tournaments.rows.Unit``) is inserted in one transaction, so after a
crash or ``kill -9`` the database holds whole blocks only; the primary key makes
inserting a match twice an error instead of a double count. A tournament resumes by
playing the blocks whose first match is absent. A database written by another
tournament (another fingerprint) is refused, and nothing in it is changed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable

from marl.errors import TournamentDatabaseError
from marl.tournaments.rows import MatchRow

FORMAT = "gamelab.tournament"
VERSION = 1
_COLUMNS = ("first", "second", "match", "seating", "payoff_first", "payoff_second", "score_first", "forfeit",
            "error", "seconds")


class MatchStore:
    """The rows of one tournament in an SQLite file (created on first use)."""

    def __init__(self, path: str | os.PathLike, *, fingerprint: str, tournament: str, game: str,
                 players: list[str]) -> None:
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
        existed = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        try:
            self.connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            if existed:
                self._check(fingerprint, tournament, players)
            else:
                self._create(fingerprint, tournament, game, players)
        except sqlite3.DatabaseError as error:
            raise TournamentDatabaseError(f"{self.path}: not a gamelab tournament database ({error})") from None

    def _create(self, fingerprint: str, tournament: str, game: str, players: list[str]) -> None:
        connection = self.connection
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN")
        connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute(
            "CREATE TABLE matches (first INTEGER NOT NULL, second INTEGER NOT NULL, match INTEGER NOT NULL, "
            "seating INTEGER NOT NULL, payoff_first REAL, payoff_second REAL, score_first REAL, "
            "forfeit INTEGER NOT NULL, error TEXT, seconds REAL NOT NULL, PRIMARY KEY (first, second, match))"
        )
        connection.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("format", FORMAT), ("version", str(VERSION)), ("fingerprint", fingerprint), ("tournament", tournament),
            ("game", game), ("players", json.dumps(players)),
        ])
        connection.execute("COMMIT")

    def _check(self, fingerprint: str, tournament: str, players: list[str]) -> None:
        try:
            meta = dict(self.connection.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            raise TournamentDatabaseError(f"{self.path}: not a gamelab tournament database (no meta table)") from None
        if meta.get("format") != FORMAT:
            raise TournamentDatabaseError(f"{self.path}: not a gamelab tournament database")
        if meta.get("version") != str(VERSION):
            raise TournamentDatabaseError(f"{self.path}: tournament database version {meta.get('version')}, "
                                          f"this gamelab reads version {VERSION}")
        if meta.get("fingerprint") != fingerprint:
            same_players = meta.get("players") == json.dumps(players)
            what = "its settings, game or player files differ" if same_players else \
                f"its players are {', '.join(json.loads(meta.get('players', '[]')))}"
            raise TournamentDatabaseError(
                f"{self.path} holds another tournament ({meta.get('tournament')!r} on {meta.get('game')!r}: {what}); "
                f"pass another --db, or delete the file to start {tournament!r} afresh"
            )

    def played_units(self) -> set[tuple[int, int, int]]:
        """``(first, second, match)`` of every stored match (a block is stored whole)."""
        return {tuple(row) for row in self.connection.execute("SELECT first, second, match FROM matches")}

    def add(self, rows: Iterable[MatchRow]) -> None:
        """Inserts one block of matches in one transaction."""
        values = [tuple(getattr(row, column) for column in _COLUMNS) for row in rows]
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(f"INSERT INTO matches VALUES ({', '.join('?' * len(_COLUMNS))})", values)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def rows(self) -> list[MatchRow]:
        """Every stored match, ordered by pair and match index."""
        cursor = self.connection.execute(f"SELECT {', '.join(_COLUMNS)} FROM matches ORDER BY first, second, match")
        return [MatchRow(*values) for values in cursor]

    def close(self) -> None:
        self.connection.close()


__all__ = ["FORMAT", "VERSION", "MatchStore", "TournamentDatabaseError"]
