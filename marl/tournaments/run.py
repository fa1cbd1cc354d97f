"""Tournaments: every pair of players, a payoff table with confidence intervals, and ratings.

One run:

1. build the arena (``marl.tournaments.arenas``): load the game, make every player ready for it;
2. open the database (``marl.tournaments.store``) and list the blocks of matches not yet in it
   (players added to a played tournament play only their new pairs);
3. play them, in-process or as Ray tasks, storing each block as it finishes;
4. read every stored match and build the tables (:func:`tables`);
5. rate the players (``solvers.ratings``): Bradley-Terry Elo, alpha-rank, Nash averaging,
   and the meta-game's Nash equilibrium with each player's exploitability in the population.

Tables, over the ``n`` players in config order:

- ``payoffs[i, j]``: ``i``'s mean payoff against ``j`` over their matches (both seatings);
  ``payoffs[i, i]`` is the mean over both seats of self-play.
- ``confidence[i, j]``: the half-width of its 95% confidence interval, ``1.96 s / sqrt(G)``
  over the ``G`` duplicate groups (a group's value is ``i``'s mean over its seatings); 0
  for exact evaluation.
- ``scores[i, j]`` and ``counts[i, j]``: per match, ``i`` wins (1), draws (1/2) or loses
  (0) by comparing the two players' payoffs; exact evaluation counts the exact
  probability of scoring more. In Markov games the two teams' returns are on different
  scales (predators gain what prey lose, and more), so there a win is decided per
  duplicate group, by the players' payoffs summed over both seats. These feed the
  Bradley-Terry fit; with exact evaluation its error bars are not reported (there is no
  sampling to measure).

Forfeits: the forfeiting player gets ``forfeit_payoffs[0]`` and its opponent
``forfeit_payoffs[1]`` when the config sets them. Otherwise the forfeiting player gets
the worst payoff of the seat it played and the other player the best payoff of its seat:
the game's extremes for normal-form and extensive-form games, and for Markov games the
extremes over the tournament's played (not forfeited) matches of that seat.

Backends: ``local`` plays the blocks in this process. ``ray`` sends them as Ray tasks
(``max_retries``: a task whose worker dies is run again, and as a block is stored only when
it comes back whole, nothing is counted twice); each worker builds the arena once. Every
block is a pure function of the config, so both backends store identical rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from games.errors import GamelabError
from marl.tournaments.arenas import Arena, build_arena
from marl.tournaments.config import TournamentConfig
from marl.tournaments.rows import FIRST_FORFEITS, SECOND_FORFEITS, MatchRow, Unit
from marl.tournaments.store import MatchStore

Z_95 = 1.959963984540054
RAY_TASK_RETRIES = 3


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def settings_fingerprint(config: TournamentConfig) -> str:
    """A hash of what decides every match apart from its players: the game and the match settings."""
    return _digest({
        "game": config.game, "settings": config.settings, "evaluation": config.evaluation,
        "matches_per_pair": config.matches_per_pair, "seat_swap": config.seat_swap, "seed": config.seed,
        "batch_size": config.batch_size, "move_time_limit": config.move_time_limit,
    })


def player_fingerprint(config: TournamentConfig, player: Any) -> str:
    """A hash of what decides a player's play: its kind, its options and its files' contents."""
    entry = {"kind": player.kind, "options": player.options}
    if "path" in player.options:
        path = config.resolve(player.options["path"])
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as error:
            raise GamelabError(f"{player.where}: player {player.name!r}: cannot read {path}: {error.strerror}") from None
        entry["file_sha256"] = digest.hexdigest()
    return _digest(entry)


def open_store(config: TournamentConfig, database: str | os.PathLike,
               players: list[tuple[str, str]] | None = None) -> MatchStore:
    """The tournament database of ``config``: its settings' fingerprint, and every player by name and
    fingerprint (``players``, when the caller has hashed them already)."""
    if players is None:
        players = [(player.name, player_fingerprint(config, player)) for player in config.players]
    return MatchStore(database, fingerprint=settings_fingerprint(config), tournament=config.name, game=config.game,
                      players=players)


# --------------------------------------------------------------------------------------
# Playing


_ARENAS: dict[str, Arena] = {}


def _arena(config: TournamentConfig, key: str) -> Arena:
    """This process's arena for the tournament ``key`` (built once per process)."""
    if key not in _ARENAS:
        _ARENAS.clear()
        _ARENAS[key] = build_arena(config)
    return _ARENAS[key]


def _play_units(config: TournamentConfig, key: str, units: list[Unit], search_path: list[str]) -> list[list[MatchRow]]:
    """A Ray task: plays ``units`` in a worker (``search_path`` lets it import the config's callables)."""
    for entry in reversed(search_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    arena = _arena(config, key)
    return [arena.play(unit) for unit in units]


def _play_local(arena: Arena, units: list[Unit], store: MatchStore, report: Callable[[list[MatchRow]], None]) -> None:
    for unit in units:
        rows = arena.play(unit)
        store.add(rows)
        report(rows)


def _play_ray(config: TournamentConfig, key: str, units: list[Unit], store: MatchStore,
              report: Callable[[list[MatchRow]], None], address: str | None, num_cpus: int | None) -> None:
    from games.distributed import start_ray

    ray, started_here = start_ray(num_cpus, address)
    try:
        task = ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES, retry_exceptions=False)(_play_units)
        config_ref = ray.put(config)
        search_path = [os.getcwd(), *sys.path]
        # One block per task: a lost worker's re-run is short, and progress moves block by block.
        pending = [task.remote(config_ref, key, [unit], search_path) for unit in units]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for blocks in ray.get(done):
                for rows in blocks:
                    store.add(rows)
                    report(rows)
    finally:
        if started_here:
            ray.shutdown()


# --------------------------------------------------------------------------------------
# Tables and ratings


@dataclass
class Tables:
    """The tournament's empirical meta-game (see the module docstring)."""

    payoffs: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    matches: np.ndarray
    """``(n, n)`` matches played between each pair (symmetric)."""
    forfeits: np.ndarray
    """``(n,)`` matches each player forfeited."""
    errors: dict[str, str] = field(default_factory=dict)
    """A player's first forfeit error."""


def _forfeit_payoffs(arena: Arena, rows: list[MatchRow]) -> tuple[list[float], list[float]]:
    """``(worst, best)`` payoff per seat for forfeits (see the module docstring)."""
    if arena.config.forfeit_payoffs is not None:
        loser, winner = arena.config.forfeit_payoffs
        return [loser, loser], [winner, winner]
    bounds = arena.forfeit_bounds()
    if bounds is not None:
        return bounds
    seen: list[list[float]] = [[], []]
    for row in rows:
        if row.forfeit == 0:
            seen[row.seating].append(row.payoff_first)
            seen[1 - row.seating].append(row.payoff_second)
    return ([min(v) if v else 0.0 for v in seen], [max(v) if v else 0.0 for v in seen])


def _half_width(values: np.ndarray, exact: bool) -> float:
    """The 95% confidence half-width of the mean of ``values``, one per duplicate group (0 when exact)."""
    size = len(values)
    return 0.0 if exact or size < 2 else Z_95 * float(values.std(ddof=1)) / math.sqrt(size)


def tables(arena: Arena, rows: list[MatchRow]) -> Tables:
    """The payoff table, confidence intervals and win scores from every stored match."""
    n = len(arena.names)
    worst, best = _forfeit_payoffs(arena, rows)
    payoffs = np.zeros((n, n))
    confidence = np.zeros((n, n))
    scores = np.zeros((n, n))
    counts = np.zeros((n, n))
    matches = np.zeros((n, n), dtype=np.int64)
    forfeits = np.zeros(n, dtype=np.int64)
    errors: dict[str, str] = {}
    by_pair: dict[tuple[int, int], list[MatchRow]] = {}
    for row in rows:
        by_pair.setdefault((row.first, row.second), []).append(row)
    for (first, second), pair_rows in by_pair.items():
        groups: dict[int, list[tuple[float, float, float | None]]] = {}
        for row in pair_rows:
            seat_first, seat_second = row.seating, 1 - row.seating
            mine, theirs, score = row.payoff_first, row.payoff_second, row.score_first
            if row.forfeit:
                first_lost = bool(row.forfeit & FIRST_FORFEITS)
                second_lost = bool(row.forfeit & SECOND_FORFEITS)
                mine = worst[seat_first] if first_lost else best[seat_first]
                theirs = worst[seat_second] if second_lost else best[seat_second]
                score = 0.5 if first_lost == second_lost else (0.0 if first_lost else 1.0)
                if first_lost:
                    forfeits[first] += 1
                    errors.setdefault(arena.names[first], row.error or "")
                if second_lost and second != first:
                    forfeits[second] += 1
                    errors.setdefault(arena.names[second], row.error or "")
            groups.setdefault(arena.group(row.match), []).append((mine, theirs, score))
        group_first = np.array([np.mean([m for m, _, _ in g]) for g in groups.values()])
        group_second = np.array([np.mean([t for _, t, _ in g]) for g in groups.values()])
        # Wins: per match (exact: the stored probability), or per duplicate group for
        # arenas whose seats pay on different scales; a forfeit decides its match or group.
        contests = list(groups.values()) if arena.score_groups else [[entry] for g in groups.values() for entry in g]
        pair_scores = []
        for contest in contests:
            decided = [s for _, _, s in contest if s is not None]
            if decided:
                pair_scores.append(float(np.mean(decided)))
                continue
            margin = sum(m for m, _, _ in contest) - sum(t for _, t, _ in contest)
            pair_scores.append(1.0 if margin > 0 else 0.5 if margin == 0 else 0.0)
        matches[first, second] = matches[second, first] = len(pair_rows)
        if first == second:
            payoffs[first, first] = 0.5 * (group_first.mean() + group_second.mean())
            confidence[first, first] = _half_width(0.5 * (group_first + group_second), arena.exact)
            continue
        payoffs[first, second], payoffs[second, first] = group_first.mean(), group_second.mean()
        confidence[first, second] = _half_width(group_first, arena.exact)
        confidence[second, first] = _half_width(group_second, arena.exact)
        scores[first, second] = sum(pair_scores)
        scores[second, first] = len(pair_scores) - sum(pair_scores)
        counts[first, second] = counts[second, first] = len(pair_scores)
    return Tables(payoffs, confidence, scores, counts, matches, forfeits, errors)


RATING_COLUMNS = (("Nash avg", "nash_averaging"), ("mean payoff", "mean_payoff"), ("Elo (wins)", "elo"),
                  ("alpha-rank", "alpha_rank"), ("meta-Nash", "meta_nash"), ("exploitability", "exploitability"))
"""The ratings as a table shows them, in order: ``(column heading, key in the JSON's ratings)``."""


def rating_cells(payload: dict[str, Any], name: str) -> list[str]:
    """Player ``name``'s ratings in :data:`RATING_COLUMNS` order, formatted (``payload``: the ``--json`` object)."""
    rated, errors = payload["ratings"], payload["ratings"]["elo_error"]
    formats = {"nash_averaging": "+.4f", "mean_payoff": "+.4f", "elo": ".0f", "alpha_rank": ".3f", "meta_nash": ".3f",
               "exploitability": ".4f"}
    cells = [format(rated[key][name], formats[key]) for _, key in RATING_COLUMNS]
    if errors is not None:
        cells[[key for _, key in RATING_COLUMNS].index("elo")] += f" ± {errors[name]:.0f}"
    return cells

RATING_LABELS = {
    "nash_averaging": "payoff against the population's maximum-entropy Nash mixture (Nash averaging, "
                      "Balduzzi et al. 2018); players are ranked by it",
    "mean_payoff": "mean payoff against the other players",
    "elo": "a Bradley-Terry fit to matches won (a tie counts half), blind to how much a match wins",
    "alpha_rank": "mass in alpha-rank's stationary distribution (Omidshafiei et al. 2019)",
    "meta_nash": "probability in the meta-game's Nash equilibrium",
    "exploitability": "what the population's best reply gains against this player",
}
"""What each rating measures: the table's, the JSON's and the report's labels."""

NOISE = 1e-9
"""Ratings within ``NOISE`` times the payoffs' scale of zero are rounding noise, shown and ranked as zero."""


def denoised(values: Any, payoffs: np.ndarray) -> np.ndarray:
    """``values`` with rounding noise (``|v| <= NOISE * max(1, max |payoffs|)``) set to zero."""
    values = np.asarray(values, dtype=float)
    scale = max(1.0, float(np.abs(payoffs).max())) if payoffs.size else 1.0
    return np.where(np.abs(values) <= NOISE * scale, 0.0, values)


def mean_payoffs(payoffs: np.ndarray) -> np.ndarray:
    """``(n,)``: each player's mean payoff against the others (its own self-play left out)."""
    n = payoffs.shape[0]
    return (payoffs.sum(1) - np.diag(payoffs)) / max(n - 1, 1)


def ranking(names: list[str], table: Tables, rated: dict[str, Any]) -> list[str]:
    """The players, best first: by Nash averaging, then by mean payoff (both payoffs, not wins, so the
    order agrees with the payoff table where Elo, fitted to wins, may not: a poker player who wins
    many small pots and loses big ones has a high Elo and a negative payoff)."""
    nash = denoised(rated["nash_averaging"].values, table.payoffs)
    mean = denoised(mean_payoffs(table.payoffs), table.payoffs)
    return [names[i] for i in sorted(range(len(names)), key=lambda i: (-nash[i], -mean[i], names[i]))]


def ratings(table: Tables, exact: bool, alpha_rank_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every rating method on the tables: ``{method: Ratings}`` plus the meta-game Nash."""
    from solvers import ratings as methods

    elo = methods.bradley_terry(table.scores, table.counts)
    if exact:
        elo.errors = None
    return {
        "elo": elo,
        "alpha_rank": methods.alpha_rank(table.payoffs, **(alpha_rank_options or {})),
        "nash_averaging": methods.nash_averaging(table.payoffs),
        "meta_nash": methods.meta_nash(table.payoffs),
    }


@dataclass
class TournamentResult:
    """What a tournament produced."""

    config: TournamentConfig
    names: list[str]
    tables: Tables
    ratings: dict[str, Any]
    exact: bool
    matches_played: int
    """Matches played by this run (the rest were in the database already)."""
    matches_total: int
    seconds: float
    database: str

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: ``players``, ``payoffs`` (row player's mean), ``ratings`` per method per player."""
        names = self.names
        elo, alpha, nash_average, meta = (self.ratings[k] for k in ("elo", "alpha_rank", "nash_averaging", "meta_nash"))

        def per_player(values: Any) -> dict[str, float]:
            return {name: float(value) for name, value in zip(names, values)}

        payoffs = self.tables.payoffs

        return {
            "tournament": self.config.name,
            "game": self.config.game,
            "evaluation": "exact" if self.exact else "sampled",
            "players": names,
            "payoffs": self.tables.payoffs.tolist(),
            "confidence_95": self.tables.confidence.tolist(),
            "matches": self.tables.matches.tolist(),
            "forfeits": {name: int(count) for name, count in zip(names, self.tables.forfeits)},
            "forfeit_errors": self.tables.errors,
            "ratings": {
                "elo": per_player(elo.values),
                "elo_error": None if elo.errors is None else per_player(elo.errors),
                "alpha_rank": per_player(alpha.values),
                "nash_averaging": per_player(denoised(nash_average.values, payoffs)),
                "mean_payoff": per_player(denoised(mean_payoffs(payoffs), payoffs)),
                "nash_averaging_mixture": per_player(nash_average.distribution),
                "meta_nash": per_player(meta.mixture),
                "exploitability": per_player(meta.player_exploitability),
            },
            "rating_labels": RATING_LABELS,
            "ranking": ranking(names, self.tables, self.ratings),
            "meta_nash_value": meta.value,
            "meta_nash_exploitability": meta.exploitability,
            "matches_played": self.matches_played,
            "matches_total": self.matches_total,
            "seconds": self.seconds,
            "database": self.database,
        }


def run_tournament(config: TournamentConfig, database: str | os.PathLike, *, backend: str = "local",
                   ray_address: str | None = None, ray_cpus: int | None = None,
                   on_start: Callable[[int, int], None] | None = None,
                   on_rows: Callable[[list[MatchRow]], None] | None = None) -> TournamentResult:
    """Plays what the database lacks, then builds the tables and ratings.

    Args:
        database: the SQLite file; created if missing, resumed if it holds this tournament.
        backend: ``local`` or ``ray``.
        ray_address: join this Ray cluster (``ray`` backend); None starts a local one.
        ray_cpus: CPUs of a local Ray (None: all).
        on_start: ``on_start(matches_to_play, matches_total)`` before playing (progress bars).
        on_rows: called with each block's rows as it is stored.
    """
    if backend not in ("local", "ray"):
        raise GamelabError(f"unknown backend {backend!r}; use local or ray")
    started = time.perf_counter()
    players = [(player.name, player_fingerprint(config, player)) for player in config.players]
    key = _digest([settings_fingerprint(config), players])  # everything that decides the results
    arena = _arena(config, key)
    store = open_store(config, database, players)
    try:
        played = store.played_units()
        # Each pair is played in the order the database knows it (the earlier player first), so
        # that a pair's matches are the same whether its players joined together or one by one.
        units = [Unit(*store.oriented(unit.first, unit.second), unit.start, unit.count) for unit in arena.units()]
        todo = [unit for unit in units if (unit.first, unit.second, unit.start) not in played]
        to_play, total = sum(unit.count for unit in todo), sum(unit.count for unit in units)
        if on_start is not None:
            on_start(to_play, total)
        report = on_rows or (lambda rows: None)
        if todo and backend == "local":
            _play_local(arena, todo, store, report)
        elif todo:
            _play_ray(config, key, todo, store, report, ray_address, ray_cpus)
        rows = store.rows()
    finally:
        store.close()
    table = tables(arena, rows)
    rated = ratings(table, arena.exact, config.alpha_rank)
    return TournamentResult(config, list(arena.names), table, rated, arena.exact, to_play, len(rows),
                            time.perf_counter() - started, os.fspath(database))


__all__ = ["RATING_COLUMNS", "RATING_LABELS", "Tables", "TournamentResult", "denoised", "mean_payoffs", "open_store",
           "player_fingerprint", "ranking", "rating_cells", "ratings", "run_tournament", "settings_fingerprint",
           "tables"]
