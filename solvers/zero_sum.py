"""Exact equilibria of 2-player zero-sum matrix games, fast on large games and on batches.

One call solves every game of a batch:

1) a batched primal-dual interior-point method in torch
   (:func:`solvers.interior_point.interior_point_zero_sum`) takes every game to a
   profile of NashConv about 1e-10, in 15 to 30 iterations of one Cholesky factorization;
2) games still above the tolerance are *polished*: the interior point separates the
   supports (S, T) sharply, and when ``|S| = |T|`` the equalizing system
   ``A[S, T] y_T = v 1, 1^T y_T = 1`` and ``x_S^T A[S, T] = v 1^T, 1^T x_S = 1`` is
   solved exactly (one LU each);
3) games that neither step solves within the tolerance go to the HiGHS LP
   (:func:`solvers.lp.zero_sum_lp`).

Every returned profile's NashConv is checked in the full game, so the result is always an
equilibrium within the tolerance (or, after the LP fallback, within the LP's precision).
Steps 1-2 run on the game's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from games.normal_form import NormalFormGame
from solvers.interior_point import interior_point_zero_sum
from solvers.lp import ZeroSumSolution, require_two_player_zero_sum, zero_sum_lp

Tensor = torch.Tensor


@dataclass
class ZeroSumReport:
    """How :func:`solve_zero_sum` got its answer: interior-point iterations, and how many
    games were polished exactly or handed to the LP."""

    iterations: int = 0
    polished: int = 0
    lp_fallback: int = 0


def _equalizer(matrix: Tensor) -> tuple[Tensor, Tensor] | None:
    """Solves ``matrix y = v 1``, ``1^T y = 1`` for a square ``(k, k)`` matrix; None if singular."""
    k = matrix.shape[0]
    system = torch.zeros(k + 1, k + 1, dtype=matrix.dtype, device=matrix.device)
    system[:k, :k] = matrix
    system[:k, k] = -1.0
    system[k, :k] = 1.0
    rhs = torch.zeros(k + 1, dtype=matrix.dtype, device=matrix.device)
    rhs[k] = 1.0
    solution, info = torch.linalg.solve_ex(system, rhs)
    if int(info) != 0 or not torch.isfinite(solution).all():
        return None
    return solution[:k], solution[k]


def polish(matrix: Tensor, row: Tensor, column: Tensor, tolerance: float) -> tuple[Tensor, Tensor] | None:
    """Turns an approximate equilibrium of a nondegenerate game into an exact one (step 2).

    The supports are the actions played with probability above ``1e-6`` of the largest.
    Shapes: ``matrix`` ``(m, n)``, ``row`` ``(m,)``, ``column`` ``(n,)``. Returns exact
    strategies whose NashConv in the full game is at most ``tolerance``, or None when
    the supports differ in size or the equalizer does not give an equilibrium.
    """
    support_rows = torch.nonzero(row > 1e-6 * row.max()).flatten()
    support_columns = torch.nonzero(column > 1e-6 * column.max()).flatten()
    if len(support_rows) != len(support_columns):
        return None
    sub = matrix[support_rows][:, support_columns]
    column_part, row_part = _equalizer(sub), _equalizer(sub.T)
    if column_part is None or row_part is None:
        return None
    x_support, y_support = row_part[0], column_part[0]
    if x_support.min() < 0 or y_support.min() < 0:
        return None
    exact_row = torch.zeros_like(row)
    exact_row[support_rows] = x_support / x_support.sum()
    exact_column = torch.zeros_like(column)
    exact_column[support_columns] = y_support / y_support.sum()
    if (matrix @ exact_column).max() - (exact_row @ matrix).min() > tolerance:
        return None
    return exact_row, exact_column


def solve_zero_sum(
    game: NormalFormGame, *, tolerance: float = 1e-9, max_iterations: int = 60
) -> tuple[ZeroSumSolution, ZeroSumReport]:
    """An equilibrium with NashConv <= ``tolerance`` of every game of a 2-player zero-sum (batched) game.

    Args:
        game: a 2-player zero-sum or constant-sum game, batched or not, on any device.
        tolerance: the NashConv each returned profile satisfies, checked in the full game.
        max_iterations: interior-point iterations before polishing and the LP take over.

    Returns:
        The solution (``value`` is the row player's payoff) and a :class:`ZeroSumReport`.

    Shapes: as :class:`solvers.lp.ZeroSumSolution`.
    """
    require_two_player_zero_sum(game, "solve_zero_sum")
    matrices = game.batched_payoffs[:, 0]
    rows, columns, gaps, iterations = interior_point_zero_sum(
        matrices, tolerance=tolerance, max_iterations=max_iterations
    )
    report = ZeroSumReport(iterations=iterations)
    unsolved = []
    for index in torch.nonzero(gaps > tolerance).flatten().tolist():
        exact = polish(matrices[index], rows[index], columns[index], tolerance)
        if exact is None:
            unsolved.append(index)
            continue
        rows[index], columns[index] = exact
        report.polished += 1
    if unsolved:
        report.lp_fallback = len(unsolved)
        exact = zero_sum_lp(NormalFormGame.zero_sum(matrices[unsolved], batched=True))
        rows[unsolved] = exact.row_strategy
        columns[unsolved] = exact.column_strategy
    values = torch.einsum("za,zab,zb->z", rows, matrices, columns)
    if not game.batched:
        return ZeroSumSolution(rows[0], columns[0], values[0]), report
    return ZeroSumSolution(rows, columns, values), report
