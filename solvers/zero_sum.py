"""Exact equilibria of 2-player zero-sum matrix games, fast on large games and on batches.

One call solves every game of a batch:

1) *restriction* (games with more than ``restrict_above`` actions per player): 256
   iterations of RM+ (alternating, linearly averaged) rank each player's actions by
   their value against the other's average strategy. RM+'s current strategies put
   exactly zero on actions that keep losing, so their support sizes estimate the
   equilibrium's; the top ``1.2 x estimate + 16`` actions of each player form a
   restricted game, several times smaller than the full one;
2) a batched primal-dual interior-point method in torch
   (:func:`solvers.interior_point.interior_point_zero_sum`) solves the restricted game
   to a NashConv of about 1e-10, in 15 to 30 iterations of one Cholesky factorization;
3) the restricted solution is checked in the *full* game. Where an action outside the
   restriction is a profitable deviation, the restriction grows to the top actions
   against the new solution (which ranks those deviations first) and step 2 repeats:
   a double oracle (McMahan, Gordon and Blum, ICML 2003) started from a good guess.
   After four rounds the full game is solved instead;
4) games still above the tolerance are *polished*: the interior point separates the
   supports (S, T) sharply, and when ``|S| = |T|`` the equalizing system
   ``A[S, T] y_T = v 1, 1^T y_T = 1`` and ``x_S^T A[S, T] = v 1^T, 1^T x_S = 1`` is
   solved exactly (one LU each);
5) games that no step solves within the tolerance go to the HiGHS LP
   (:func:`solvers.lp.zero_sum_lp`).

Every returned profile's NashConv is checked in the full game, so the result is always an
equilibrium within the tolerance (or, after the LP fallback, within the LP's precision).
Steps 1-4 run on the game's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from games.normal_form import NormalFormGame
from solvers.exploitability import matrix_nash_conv
from solvers.interior_point import interior_point_zero_sum
from solvers.lp import ZeroSumSolution, require_two_player_zero_sum, zero_sum_lp
from solvers.regret import RegretMatching

Tensor = torch.Tensor


@dataclass
class ZeroSumReport:
    """How :func:`solve_zero_sum` got its answer: interior-point iterations, and how many
    games were polished exactly or handed to the LP."""

    iterations: int = 0
    restricted_sizes: list[tuple[int, int]] | None = None
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
    """Turns an approximate equilibrium of a nondegenerate game into an exact one (step 4).

    The supports are the actions played with probability above a threshold relative to
    the largest (1e-6, then 1e-4 and 1e-8). Shapes: ``matrix`` ``(m, n)``, ``row``
    ``(m,)``, ``column`` ``(n,)``. Returns exact strategies whose NashConv in the full
    game is at most ``tolerance``, or None when no threshold gives supports of equal
    size whose equalizer is an equilibrium.
    """
    for threshold in (1e-6, 1e-4, 1e-8):
        support_rows = torch.nonzero(row > threshold * row.max()).flatten()
        support_columns = torch.nonzero(column > threshold * column.max()).flatten()
        if len(support_rows) != len(support_columns):
            continue
        sub = matrix[support_rows][:, support_columns]
        column_part, row_part = _equalizer(sub), _equalizer(sub.T)
        if column_part is None or row_part is None:
            continue
        x_support, y_support = row_part[0], column_part[0]
        if x_support.min() < 0 or y_support.min() < 0:
            continue
        exact_row = torch.zeros_like(row)
        exact_row[support_rows] = x_support / x_support.sum()
        exact_column = torch.zeros_like(column)
        exact_column[support_columns] = y_support / y_support.sum()
        if (matrix @ exact_column).max() - (exact_row @ matrix).min() <= tolerance:
            return exact_row, exact_column
    return None


def _top_actions(values: Tensor, count: int, descending: bool) -> Tensor:
    """Indices of the ``count`` best actions of every game. Shapes: ``(B, A)`` -> ``(B, count)``."""
    return values.argsort(dim=-1, descending=descending)[:, :count]


def _embed(sub_strategy: Tensor, indices: Tensor, size: int) -> Tensor:
    """Scatters restricted strategies ``(B, k)`` back into full ones ``(B, size)``."""
    full = torch.zeros(sub_strategy.shape[0], size, dtype=sub_strategy.dtype, device=sub_strategy.device)
    return full.scatter(1, indices, sub_strategy)


def _restricted_interior_point(
    matrices: Tensor, tolerance: float, max_iterations: int, report: ZeroSumReport
) -> tuple[Tensor, Tensor]:
    """Steps 1-3: RM+ ranking, then interior point on growing restrictions, checked in the full game."""
    batch, m, n = matrices.shape
    learner = RegretMatching(NormalFormGame.zero_sum(matrices, batched=True), plus=True, alternating=True, averaging="linear")
    for _ in range(256):
        learner.step()
    average_rows, average_columns = learner.average_policy()
    current_rows, current_columns = learner.current_policy()
    row_values = torch.einsum("bmn,bn->bm", matrices, average_columns)
    column_values = torch.einsum("bm,bmn->bn", average_rows, matrices)
    estimate = max(int((current_rows > 0).sum(-1).max()), int((current_columns > 0).sum(-1).max()))
    k_rows = min(m, int(1.2 * estimate) + 16)
    k_columns = min(n, int(1.2 * estimate) + 16)
    report.restricted_sizes = []
    for _ in range(4):
        rows_kept = _top_actions(row_values, k_rows, descending=True)
        columns_kept = _top_actions(column_values, k_columns, descending=False)
        sub = matrices.gather(1, rows_kept[:, :, None].expand(batch, k_rows, n))
        sub = sub.gather(2, columns_kept[:, None, :].expand(batch, k_rows, k_columns))
        sub_rows, sub_columns, _, iterations = interior_point_zero_sum(
            sub, tolerance=tolerance / 2, max_iterations=max_iterations
        )
        report.iterations += iterations
        report.restricted_sizes.append((k_rows, k_columns))
        rows = _embed(sub_rows, rows_kept, m)
        columns = _embed(sub_columns, columns_kept, n)
        row_values = torch.einsum("bmn,bn->bm", matrices, columns)
        column_values = torch.einsum("bm,bmn->bn", rows, matrices)
        gaps = row_values.amax(-1) - column_values.amin(-1)
        if bool((gaps <= tolerance).all()) or (k_rows == m and k_columns == n):
            return rows, columns
        # Profitable deviations outside the restriction rank first against the new
        # solution; grow by their number (and a margin) so all of them enter. Without
        # any, what is left is the interior point's precision, which step 4 handles.
        value = torch.einsum("bm,bmn,bn->b", rows, matrices, columns)[:, None]
        outside_rows = torch.ones_like(row_values, dtype=torch.bool).scatter(1, rows_kept, False)
        outside_columns = torch.ones_like(column_values, dtype=torch.bool).scatter(1, columns_kept, False)
        new_rows = int(((row_values > value + tolerance / 4) & outside_rows).sum(-1).max())
        new_columns = int(((column_values < value - tolerance / 4) & outside_columns).sum(-1).max())
        if new_rows == 0 and new_columns == 0:
            return rows, columns
        k_rows = min(m, k_rows + new_rows + 16)
        k_columns = min(n, k_columns + new_columns + 16)
    rows, columns, _, iterations = interior_point_zero_sum(matrices, tolerance=tolerance, max_iterations=max_iterations)
    report.iterations += iterations
    return rows, columns


def solve_zero_sum(
    game: NormalFormGame, *, tolerance: float = 1e-9, max_iterations: int = 60, restrict_above: int = 200
) -> tuple[ZeroSumSolution, ZeroSumReport]:
    """An equilibrium with NashConv <= ``tolerance`` of every game of a 2-player zero-sum (batched) game.

    Args:
        game: a 2-player zero-sum or constant-sum game, batched or not, on any device.
        tolerance: the NashConv each returned profile satisfies, checked in the full game.
        max_iterations: interior-point iterations per solve before polishing and the LP take over.
        restrict_above: games whose smaller side has more actions than this are first
            restricted (steps 1 and 3); smaller games go to the interior point whole.

    Returns:
        The solution (``value`` is the row player's payoff) and a :class:`ZeroSumReport`.

    Shapes: as :class:`solvers.lp.ZeroSumSolution`.
    """
    require_two_player_zero_sum(game, "solve_zero_sum")
    matrices = game.batched_payoffs[:, 0]
    report = ZeroSumReport()
    if min(game.num_actions) > restrict_above:
        rows, columns = _restricted_interior_point(matrices, tolerance, max_iterations, report)
    else:
        rows, columns, _, report.iterations = interior_point_zero_sum(
            matrices, tolerance=tolerance, max_iterations=max_iterations
        )
    gaps = matrix_nash_conv(matrices, rows, columns)
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
