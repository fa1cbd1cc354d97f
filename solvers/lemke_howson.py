"""Batched Lemke-Howson: one exact Nash equilibrium of each of many bimatrix games at once.

Lemke and Howson, "Equilibrium points of bimatrix games", J. SIAM 1964; in the tableau
form of von Stengel, "Computing equilibria for two-person games", Handbook of Game
Theory vol. 3 (2002), section 3.

With payoffs shifted so every entry is at least 1 (which changes no equilibrium), the
best-response polytopes are ``{y >= 0 : A y <= 1}`` and ``{x >= 0 : B^T x <= 1}``. Label
``i < m`` belongs to row action i (variables ``x_i`` and the slack ``r_i`` of row i of
``A y <= 1``), label ``m + j`` to column action j (``y_j`` and the slack ``s_j``). Two
tableaux hold the systems ``A y + r = 1`` and ``B^T x + s = 1``. One run consists of:

1) drop the missing label k: its variable enters its tableau (``x_k`` enters the
   second tableau when k < m, ``y_{k-m}`` the first otherwise);
2) a minimum-ratio test picks the leaving basic variable (ties broken lexicographically
   by the columns of the initial slack basis, which makes the path unique even in
   degenerate games); pivot;
3) if the leaving variable has label k, every label is present: ``x`` and ``y``,
   normalised, are an equilibrium. Otherwise the variable of the other tableau with the
   leaving label enters there; go to 2.

All games pivot in lockstep as tensors (the two tableaux alternate in the same order for
every game); finished games stop changing. Runs on any device; float64 by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from games.errors import SolverError
from games.normal_form import NormalFormGame

Tensor = torch.Tensor


@dataclass
class LemkeHowsonResult:
    """Equilibria of a batch of bimatrix games.

    Shapes: ``row_strategy`` ``(B, m)``, ``column_strategy`` ``(B, n)``, ``converged``
    ``(B,)`` bool (False only when ``max_pivots`` ran out), ``pivots`` the pivots taken.
    """

    row_strategy: Tensor
    column_strategy: Tensor
    converged: Tensor
    pivots: int

    @property
    def strategies(self) -> list[Tensor]:
        return [self.row_strategy, self.column_strategy]


class _Tableau:
    """``rows`` equations over ``m + n`` label columns plus a right-hand side, for a batch."""

    def __init__(self, matrix: Tensor, basis: Tensor, slack_columns: range) -> None:
        self.matrix = matrix  # (B, rows, m + n)
        self.rhs = torch.ones(matrix.shape[:2], dtype=matrix.dtype, device=matrix.device)
        self.basis = basis  # (B, rows) labels of the basic variables
        self.slack_columns = slack_columns

    def leaving_row(self, column: Tensor, tolerance: float) -> tuple[Tensor, Tensor]:
        """Lexicographic minimum-ratio test; returns (row (B,), any positive entry (B,))."""
        candidates = column > tolerance
        found = candidates.any(-1)
        safe = torch.where(candidates, column, torch.ones_like(column))
        keys = [self.rhs] + [self.matrix[:, :, j] for j in self.slack_columns]
        for key in keys:
            ratio = torch.where(candidates, key / safe, torch.full_like(key, torch.inf))
            best = ratio.amin(-1, keepdim=True)
            scale = best.abs().clamp_min(1.0)
            candidates = candidates & (ratio <= best + 1e-12 * scale)
            if bool((candidates.sum(-1) <= 1).all()):
                break
        return candidates.to(torch.int8).argmax(-1), found

    def pivot(self, entering: Tensor, row: Tensor, active: Tensor) -> Tensor:
        """Brings label ``entering`` (B,) into the basis at ``row`` (B,) for active games;
        returns the labels that left (B,)."""
        batch = torch.arange(self.matrix.shape[0], device=self.matrix.device)
        column = self.matrix[batch, :, entering]  # (B, rows)
        pivot_value = column[batch, row]  # (B,)
        pivot_row = self.matrix[batch, row] / pivot_value[:, None]  # (B, cols)
        pivot_rhs = self.rhs[batch, row] / pivot_value
        new_matrix = self.matrix - column[:, :, None] * pivot_row[:, None, :]
        new_rhs = self.rhs - column * pivot_rhs[:, None]
        new_matrix[batch, row] = pivot_row
        new_rhs[batch, row] = pivot_rhs
        leaving = self.basis[batch, row]
        new_basis = self.basis.clone()
        new_basis[batch, row] = entering
        keep = active[:, None]
        self.matrix = torch.where(keep[:, :, None], new_matrix, self.matrix)
        self.rhs = torch.where(keep, new_rhs, self.rhs)
        self.basis = torch.where(keep, new_basis, self.basis)
        return leaving

    def values(self, labels: range) -> Tensor:
        """The values of the variables with ``labels`` (0 when non-basic), shape (B, len(labels))."""
        out = torch.zeros(self.rhs.shape[0], len(labels), dtype=self.rhs.dtype, device=self.rhs.device)
        for position, label in enumerate(labels):
            out[:, position] = torch.where(self.basis == label, self.rhs, torch.zeros_like(self.rhs)).sum(-1)
        return out


def lemke_howson(
    game: NormalFormGame, *, missing_label: int = 0, max_pivots: int | None = None, tolerance: float = 1e-12
) -> LemkeHowsonResult:
    """One Nash equilibrium of every game of a (batched) 2-player game.

    Args:
        game: a 2-player game, batched or not, on any device.
        missing_label: the label k dropped at the start, ``0 <= k < m + n`` (different
            labels can reach different equilibria).
        max_pivots: stop after this many pivots (default ``50 * (m + n)``); games not
            finished by then have ``converged`` False.
        tolerance: entries of the entering column at most this are not pivoted on.

    Shapes: see :class:`LemkeHowsonResult`; unbatched games give ``(m,)``, ``(n,)``, ``()``.
    """
    if game.num_players != 2:
        raise SolverError(f"Lemke-Howson solves 2-player games; this game has {game.num_players} players")
    payoffs = game.batched_payoffs
    batch, _, m, n = payoffs.shape
    if not 0 <= missing_label < m + n:
        raise SolverError(f"missing_label must be in 0..{m + n - 1}, got {missing_label}")
    shifted = payoffs - payoffs.flatten(2).amin(-1)[:, :, None, None] + 1.0
    row_payoffs, column_payoffs = shifted[:, 0], shifted[:, 1]
    eye_m = torch.eye(m, dtype=payoffs.dtype, device=payoffs.device).expand(batch, m, m)
    eye_n = torch.eye(n, dtype=payoffs.dtype, device=payoffs.device).expand(batch, n, n)
    arange = lambda start, stop: torch.arange(start, stop, device=payoffs.device).expand(batch, stop - start).clone()
    # A y + r = 1: columns are labels 0..m-1 (r) then m..m+n-1 (y).
    first = _Tableau(torch.cat([eye_m, row_payoffs], dim=2), arange(0, m), range(m))
    # B^T x + s = 1: columns are labels 0..m-1 (x) then m..m+n-1 (s).
    second = _Tableau(torch.cat([column_payoffs.transpose(1, 2), eye_n], dim=2), arange(m, m + n), range(m, m + n))
    limit = max_pivots if max_pivots is not None else 50 * (m + n)
    entering = torch.full((batch,), missing_label, dtype=torch.long, device=payoffs.device)
    active = torch.ones(batch, dtype=torch.bool, device=payoffs.device)
    tableau = second if missing_label < m else first
    pivots = 0
    while pivots < limit and bool(active.any()):
        column = tableau.matrix[torch.arange(batch, device=payoffs.device), :, entering]
        row, found = tableau.leaving_row(column, tolerance)
        active = active & found
        leaving = tableau.pivot(entering, row, active)
        pivots += 1
        active = active & (leaving != missing_label)
        entering = torch.where(active, leaving, entering)
        tableau = first if tableau is second else second
    x = second.values(range(m))
    y = first.values(range(m, m + n))
    converged = (x.sum(-1) > 0) & (y.sum(-1) > 0) & ~active
    x = x / x.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    y = y / y.sum(-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
    if not game.batched:
        return LemkeHowsonResult(x[0], y[0], converged[0], pivots)
    return LemkeHowsonResult(x, y, converged, pivots)
