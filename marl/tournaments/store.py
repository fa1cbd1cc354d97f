"""The tournament database: SQLite, one row per match, written as matches finish.

Schema (format ``gamelab.tournament`` version 2)::

    meta(key TEXT PRIMARY KEY, value TEXT)
        format, version, fingerprint (a hash of the game and the match settings),
        tournament (the name), game
    players(id INTEGER PRIMARY KEY, name TEXT UNIQUE, fingerprint TEXT)
        every player that ever played, with a hash of what decides its play (kind,
        options, the contents of its files)
    matches(first, second, match, seating, payoff_first, payoff_second, score_first,
            forfeit, error, seconds, PRIMARY KEY (first, second, match))
        ``first`` and ``second`` are player ids, ``first``'s id the smaller (or equal)

Players join and leave a league: a config with players added or removed keeps every
stored match between players it still has and plays only the new pairs. A player whose
name is stored with another fingerprint (its file or options changed) is refused, since its
stored matches were played by something else. The store speaks the arena's indices (the
config's order) and keeps ids: :attr:`MatchStore.ids` maps one to the other.

A block of matches (a ``marl.tournaments.rows.Unit``) is inserted in one transaction, so after a
crash or ``kill -9`` the database holds whole blocks only. A match is stored once: inserting
it again is ignored when the stored row has the same result, and refused when it has
another. A tournament resumes by playing the blocks whose first match is absent. A
database written by another tournament (another fingerprint) is refused, and nothing in
it is changed.

One run at a time: a store holds an exclusive lock (``flock``) on the database file while
it is open, so a second run on the same database, or two creating it at once, is told that
another run holds it instead of failing inside SQLite.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterable

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no lock there
    fcntl = None

from marl.errors import TournamentDatabaseError
from marl.tournaments.rows import MatchRow

FORMAT = "gamelab.tournament"
VERSION = 2
_COLUMNS = ("first", "second", "match", "seating", "payoff_first", "payoff_second", "score_first", "forfeit",
            "error", "seconds")
# What decides a match: a row stored again must agree on these (its timing may differ).
_RESULT = ("seating", "payoff_first", "payoff_second", "score_first", "forfeit")


class MatchStore:
    """The rows of one tournament in an SQLite file (created on first use)."""

    def __init__(self, path: str | os.PathLike, *, fingerprint: str, tournament: str, game: str,
                 players: list[tuple[str, str]]) -> None:
        """``players``: ``(name, fingerprint)`` of each player, in the arena's order."""
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
        created = not os.path.exists(self.path)
        existed = not created and os.path.getsize(self.path) > 0
        self._lock = self._take_lock()
        self.connection = None
        try:
            self.connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            if existed:
                self._check(fingerprint, tournament)
            else:
                self._create(fingerprint, tournament, game)
            self.ids = self._join(players)  # ids[index]: the database id of the arena's player ``index``
        except BaseException as error:
            self.close()
            if created and os.path.exists(self.path) and os.path.getsize(self.path) == 0:
                os.unlink(self.path)
            if isinstance(error, sqlite3.OperationalError) and not existed:
                raise TournamentDatabaseError(f"{self.path}: cannot create the tournament database ({error})") from None
            if isinstance(error, sqlite3.DatabaseError):
                raise TournamentDatabaseError(f"{self.path}: not a gamelab tournament database ({error})") from None
            raise

    def _take_lock(self):
        """The open database file, locked for this run; refuses when another run holds it."""
        try:
            handle = open(self.path, "ab")
        except OSError as error:
            raise TournamentDatabaseError(f"{self.path}: cannot open the tournament database for writing "
                                          f"({error.strerror})") from None
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise TournamentDatabaseError(f"{self.path}: another gamelab run is using this tournament database; "
                                              "wait for it to finish, or pass another --db") from None
        return handle

    def _create(self, fingerprint: str, tournament: str, game: str) -> None:
        connection = self.connection
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN")
        connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute("CREATE TABLE players (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, "
                           "fingerprint TEXT NOT NULL)")
        connection.execute(
            "CREATE TABLE matches (first INTEGER NOT NULL, second INTEGER NOT NULL, match INTEGER NOT NULL, "
            "seating INTEGER NOT NULL, payoff_first REAL, payoff_second REAL, score_first REAL, "
            "forfeit INTEGER NOT NULL, error TEXT, seconds REAL NOT NULL, PRIMARY KEY (first, second, match))"
        )
        connection.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("format", FORMAT), ("version", str(VERSION)), ("fingerprint", fingerprint), ("tournament", tournament),
            ("game", game),
        ])
        connection.execute("COMMIT")

    def _join(self, players: list[tuple[str, str]]) -> list[int]:
        """The ids of ``players``, adding the new ones; refuses a stored name with another fingerprint."""
        connection = self.connection
        stored = {name: (identifier, known) for identifier, name, known in
                  connection.execute("SELECT id, name, fingerprint FROM players")}
        for name, fingerprint in players:
            if name in stored and stored[name][1] != fingerprint:
                count = connection.execute("SELECT COUNT(*) FROM matches WHERE first = ? OR second = ?",
                                           (stored[name][0], stored[name][0])).fetchone()[0]
                raise TournamentDatabaseError(
                    f"{self.path}: player {name!r} changed since its {count} matches were stored (its kind, options "
                    "or files differ); give it a new name to add it as a new player, or pass another --db")
        fresh = [(name, fingerprint) for name, fingerprint in players if name not in stored]
        if fresh:
            start = 1 + max((identifier for identifier, _ in stored.values()), default=-1)  # a fresh table's ids: 0, 1, ...
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany("INSERT INTO players (id, name, fingerprint) VALUES (?, ?, ?)",
                                   [(start + offset, name, fingerprint) for offset, (name, fingerprint) in enumerate(fresh)])
            connection.execute("COMMIT")
            stored = {name: (identifier, known) for identifier, name, known in
                      connection.execute("SELECT id, name, fingerprint FROM players")}
        return [stored[name][0] for name, _ in players]

    def _check(self, fingerprint: str, tournament: str) -> None:
        try:
            meta = dict(self.connection.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            raise TournamentDatabaseError(f"{self.path}: not a gamelab tournament database (no meta table)") from None
        if meta.get("format") != FORMAT:
            raise TournamentDatabaseError(f"{self.path}: not a gamelab tournament database")
        if meta.get("version") != str(VERSION):
            raise TournamentDatabaseError(f"{self.path}: tournament database version {meta.get('version')} (an "
                                          f"earlier gamelab's); this gamelab reads version {VERSION}: pass another "
                                          "--db, or delete the file to play the tournament again")
        if meta.get("fingerprint") != fingerprint:
            raise TournamentDatabaseError(
                f"{self.path} holds another tournament ({meta.get('tournament')!r} on {meta.get('game')!r}: its game "
                f"or match settings differ); pass another --db, or delete the file to start {tournament!r} afresh"
            )

    def oriented(self, first: int, second: int) -> tuple[int, int]:
        """A pair of arena indices in the stored order: the player with the smaller id first."""
        return (first, second) if self.ids[first] <= self.ids[second] else (second, first)

    def played_units(self) -> set[tuple[int, int, int]]:
        """``(first, second, match)`` in arena indices of every stored match between current players
        (a block is stored whole)."""
        index = {identifier: position for position, identifier in enumerate(self.ids)}
        return {(index[first], index[second], match) for first, second, match in
                self.connection.execute("SELECT first, second, match FROM matches")
                if first in index and second in index}

    def add(self, rows: Iterable[MatchRow]) -> None:
        """Inserts one block of matches (arena indices, stored order) in one transaction.

        Raises:
            TournamentDatabaseError: when a match of the block is stored with another result,
                or the database cannot be written (a full disk, a read-only file); the
                matches stored before are intact either way.
        """
        rows = [dataclasses.replace(row, first=self.ids[row.first], second=self.ids[row.second]) for row in rows]
        values = [tuple(getattr(row, column) for column in _COLUMNS) for row in rows]
        connection = self.connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                before = connection.total_changes
                connection.executemany(f"INSERT OR IGNORE INTO matches VALUES ({', '.join('?' * len(_COLUMNS))})",
                                       values)
                if connection.total_changes - before < len(values):
                    self._check_stored(rows)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            raise TournamentDatabaseError(f"{self.path}: cannot store matches ({error}); the matches stored before "
                                          "are intact, and running the command again resumes") from None

    def _check_stored(self, rows: list[MatchRow]) -> None:
        """Raises unless every row of ``rows`` (player ids) is stored with the same result."""
        query = f"SELECT {', '.join(_RESULT)} FROM matches WHERE first = ? AND second = ? AND match = ?"
        for row in rows:
            stored = self.connection.execute(query, (row.first, row.second, row.match)).fetchone()
            if stored != tuple(getattr(row, column) for column in _RESULT):
                raise TournamentDatabaseError(
                    f"{self.path}: match {row.match} of players {row.first} and {row.second} is stored with another "
                    "result; the database was written by a different run of this tournament")

    def rows(self) -> list[MatchRow]:
        """Every stored match between current players, in arena indices, ordered by pair and match."""
        index = {identifier: position for position, identifier in enumerate(self.ids)}
        cursor = self.connection.execute(f"SELECT {', '.join(_COLUMNS)} FROM matches ORDER BY first, second, match")
        return [dataclasses.replace(row, first=index[row.first], second=index[row.second])
                for row in (MatchRow(*values) for values in cursor) if row.first in index and row.second in index]

    def close(self) -> None:
        """Closes the database and releases the run's lock."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self._lock is not None:
            self._lock.close()  # closing the file releases its flock
            self._lock = None


__all__ = ["FORMAT", "VERSION", "MatchStore", "TournamentDatabaseError"]
