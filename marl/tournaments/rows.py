"""What a tournament stores: blocks of matches and one row per match, with forfeit codes.

The arenas (``marl.tournaments.arenas``) produce these rows and the store
(``marl.tournaments.store``) keeps them; both import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

NO_FORFEIT, FIRST_FORFEITS, SECOND_FORFEITS, BOTH_FORFEIT = 0, 1, 2, 3
"""``MatchRow.forfeit``: a bit for each player of the pair that forfeited the match."""


def forfeit_code(first_failed: bool, second_failed: bool) -> int:
    """The ``forfeit`` value of a match in which ``first`` and/or ``second`` failed."""
    return (FIRST_FORFEITS if first_failed else 0) | (SECOND_FORFEITS if second_failed else 0)


@dataclass(frozen=True)
class Unit:
    """Matches ``start .. start + count - 1`` between players ``first`` and ``second`` (arena indices;
    the tournament plays a pair in the order its database knows it, the earlier player first)."""

    first: int
    second: int
    start: int
    count: int


@dataclass
class MatchRow:
    """One match's outcome, as stored."""

    first: int
    second: int
    match: int
    seating: int
    """0: ``first`` sits in seat 0; 1: in seat 1."""
    payoff_first: float | None
    """None when the match was forfeited."""
    payoff_second: float | None
    score_first: float | None
    """Exact evaluation: the probability that ``first`` scores more (ties half); sampled: None."""
    forfeit: int = NO_FORFEIT
    error: str | None = None
    seconds: float = 0.0


__all__ = ["BOTH_FORFEIT", "FIRST_FORFEITS", "MatchRow", "NO_FORFEIT", "SECOND_FORFEITS", "Unit", "forfeit_code"]
