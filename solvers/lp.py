"""Linear programs for exact equilibria, solved by HiGHS through ``scipy.optimize.linprog``.

- :func:`zero_sum_lp`: the minimax theorem as an LP (von Neumann 1928; Dantzig 1951).
  The row player maximises the value ``v`` subject to ``x^T A >= v 1^T``, ``1^T x = 1``,
  ``x >= 0``; the column player's equilibrium strategy is the dual of the ``>=``
  constraints, read from HiGHS's marginals.
- :func:`correlated_equilibrium`: Aumann 1974. Variables are the probabilities ``p(a)``
  of the pure profiles; for every player i and every pair of actions ``(a_i, a_i')``,
  ``sum_{a_-i} p(a_i, a_-i) [u_i(a_i', a_-i) - u_i(a_i, a_-i)] <= 0``.
- :func:`coarse_correlated_equilibrium`: Hannan 1957 / Moulin and Vial 1978. For every
  player i and action ``a_i'``: ``sum_a p(a) [u_i(a_i', a_-i) - u_i(a)] <= 0``.

Among the (usually many) correlated equilibria the LP picks the one that maximises the
``objective``: ``"welfare"`` (the sum of expected payoffs, the default, as in Gambit
and OpenSpiel's examples) or a player index (that player's expected payoff).

The LPs run in float64 on the CPU; results come back on the game's device and dtype.
Batched games are solved one LP per batch entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from games.errors import GameError, SolverError
from games.normal_form import NormalFormGame

Tensor = torch.Tensor


def linprog(*args, **kwargs):
    """``scipy.optimize.linprog``, imported on first use: importing scipy.optimize takes most of a
    second, which a game that never reaches the LP (the interior point solves most) should not pay."""
    from scipy.optimize import linprog as solve

    return solve(*args, **kwargs)


@dataclass
class ZeroSumSolution:
    """An exact equilibrium of a 2-player zero-sum game.

    Shapes: ``row_strategy`` ``(A_1,)``, ``column_strategy`` ``(A_2,)``, ``value`` ``()``;
    each with a leading ``(B,)`` for a batched game.
    """

    row_strategy: Tensor
    column_strategy: Tensor
    value: Tensor

    @property
    def strategies(self) -> list[Tensor]:
        return [self.row_strategy, self.column_strategy]


def require_two_player_zero_sum(game: NormalFormGame, what: str) -> None:
    if game.num_players != 2:
        raise SolverError(f"{what} solves 2-player games; this game has {game.num_players} players")
    if not game.is_constant_sum():
        raise SolverError(f"{what} solves zero-sum (constant-sum) games; this game is general-sum")


def _solve_matrix_lp(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Row and column equilibrium strategies and the value of the zero-sum matrix game."""
    rows, columns = matrix.shape
    # Variables (x_1..x_rows, v); maximise v  <=>  minimise -v.
    cost = np.zeros(rows + 1)
    cost[-1] = -1.0
    # v - (A^T x)_j <= 0 for every column j.
    inequality = np.hstack([-matrix.T, np.ones((columns, 1))])
    equality = np.hstack([np.ones((1, rows)), np.zeros((1, 1))])
    bounds = [(0, None)] * rows + [(None, None)]
    result = linprog(
        cost, A_ub=inequality, b_ub=np.zeros(columns), A_eq=equality, b_eq=[1.0],
        bounds=bounds, method="highs",
    )
    if result.status != 0:
        raise SolverError(f"HiGHS failed on the zero-sum LP: {result.message}")
    row = np.clip(result.x[:rows], 0, None)
    column = np.clip(-result.ineqlin.marginals, 0, None)
    return row / row.sum(), column / column.sum(), float(-result.fun)


def zero_sum_lp(game: NormalFormGame) -> ZeroSumSolution:
    """An exact Nash equilibrium and the value of a 2-player zero-sum (or constant-sum) game.

    The value is the row player's equilibrium payoff. Constant-sum games are solved on
    the row player's payoffs, which differ from a zero-sum game by a constant only.
    """
    require_two_player_zero_sum(game, "the zero-sum LP")
    matrices = game.batched_payoffs[:, 0].detach().to("cpu", torch.float64).numpy()
    solutions = [_solve_matrix_lp(matrix) for matrix in matrices]
    as_tensor = lambda values: torch.as_tensor(np.stack(values), dtype=game.dtype, device=game.device)
    rows, columns, values = (as_tensor([s[k] for s in solutions]) for k in range(3))
    if not game.batched:
        rows, columns, values = rows[0], columns[0], values[0]
    return ZeroSumSolution(rows, columns, values)


def _deviation_constraints(payoffs: np.ndarray, coarse: bool) -> np.ndarray:
    """Rows of the ``<= 0`` incentive constraints over the flattened joint distribution."""
    num_players = payoffs.shape[0]
    shape = payoffs.shape[1:]
    rows = []
    for player in range(num_players):
        utilities = np.moveaxis(payoffs[player], player, 0)  # (A_i, rest...)
        num_actions = shape[player]
        for deviation in range(num_actions):
            gain = utilities[deviation][None] - utilities  # gain[a, rest] of a -> deviation
            if coarse:
                rows.append(np.moveaxis(gain, 0, player).reshape(-1))
                continue
            for recommended in range(num_actions):
                if recommended == deviation:
                    continue
                row = np.zeros_like(gain)
                row[recommended] = gain[recommended]
                rows.append(np.moveaxis(row, 0, player).reshape(-1))
    # Games where no player has a second action to deviate to have no constraints at all.
    return np.stack(rows) if rows else np.zeros((0, int(np.prod(shape))))


def _solve_correlated(game: NormalFormGame, coarse: bool, objective: str | int) -> Tensor:
    if objective == "welfare":
        weights = np.ones(game.num_players)
    elif isinstance(objective, int) and 0 <= objective < game.num_players:
        weights = np.eye(game.num_players)[objective]
    else:
        raise SolverError(f"objective must be 'welfare' or a player index 0..{game.num_players - 1}, got {objective!r}")
    num_profiles = int(np.prod(game.num_actions))
    if num_profiles > 200_000:
        raise GameError(f"{num_profiles:,} pure profiles are too many for the correlated-equilibrium LP")
    out = []
    for payoffs in game.batched_payoffs.detach().to("cpu", torch.float64).numpy():
        constraints = _deviation_constraints(payoffs, coarse)
        cost = -np.tensordot(weights, payoffs, axes=1).reshape(-1)
        result = linprog(
            cost, A_ub=constraints, b_ub=np.zeros(len(constraints)),
            A_eq=np.ones((1, num_profiles)), b_eq=[1.0], bounds=[(0, None)] * num_profiles, method="highs",
        )
        if result.status != 0:
            raise SolverError(f"HiGHS failed on the correlated-equilibrium LP: {result.message}")
        joint = np.clip(result.x, 0, None)
        out.append((joint / joint.sum()).reshape(game.num_actions))
    joint = torch.as_tensor(np.stack(out), dtype=game.dtype, device=game.device)
    return joint if game.batched else joint[0]


def correlated_equilibrium(game: NormalFormGame, objective: str | int = "welfare") -> Tensor:
    """A correlated equilibrium maximising ``objective``, as a joint distribution.

    Shapes: returns ``(A_1, ..., A_N)``, or ``(B, A_1, ..., A_N)`` for a batched game.
    """
    return _solve_correlated(game, coarse=False, objective=objective)


def coarse_correlated_equilibrium(game: NormalFormGame, objective: str | int = "welfare") -> Tensor:
    """A coarse correlated equilibrium maximising ``objective``, as a joint distribution.

    Shapes: returns ``(A_1, ..., A_N)``, or ``(B, A_1, ..., A_N)`` for a batched game.
    """
    return _solve_correlated(game, coarse=True, objective=objective)


@dataclass
class SequenceFormSolution:
    """An exact equilibrium of a 2-player zero-sum extensive-form game.

    ``strategy``: the behavioural profile ``(num_infosets, max_actions)`` (both players'
    rows); ``value``: player 0's equilibrium payoff.
    """

    strategy: Tensor
    value: float


def _sequence_constraints(game, player: int):
    """Player's sequences and the constraint matrix ``E`` with ``E x = e`` (x_empty = 1,
    x_parent(I) = sum_a x_(I, a)). Sequence 0 is the empty one."""
    from scipy import sparse

    infosets = torch.nonzero(game.infoset_player == player).flatten().tolist()
    legal = game.legal_mask.cpu()
    index = {}
    for infoset in infosets:
        for slot in torch.nonzero(legal[infoset]).flatten().tolist():
            index[(infoset, slot)] = len(index) + 1
    rows, columns, values = [0], [0], [1.0]
    parents = game.infoset_parent.tolist()
    parent_slots = game.infoset_parent_slot.tolist()
    for row, infoset in enumerate(infosets, start=1):
        parent = 0 if parents[infoset] < 0 else index[(parents[infoset], parent_slots[infoset])]
        rows.append(row), columns.append(parent), values.append(-1.0)
        for slot in torch.nonzero(legal[infoset]).flatten().tolist():
            rows.append(row), columns.append(index[(infoset, slot)]), values.append(1.0)
    matrix = sparse.csr_matrix((values, (rows, columns)), shape=(len(infosets) + 1, len(index) + 1))
    return index, matrix


def sequence_form_lp(game) -> SequenceFormSolution:
    """An exact equilibrium of a 2-player zero-sum extensive-form game by the sequence-form LP.

    Koller, Megiddo and von Stengel, "Efficient computation of equilibria for extensive
    two-person games", Games Econ. Behav. 1996. With realization plans x (player 0) and y
    (player 1), constraints ``E x = e`` and ``F y = f``, and the sequence payoff matrix
    ``A[s, t] = sum_z chance(z) u_0(z)`` over the terminals whose last sequences are s
    and t, player 0 solves ``max f^T q  s.t.  F^T q - A^T x <= 0,  E x = e,  x >= 0``;
    player 1's plan is the dual of the inequality constraints. Plans convert to
    behavioural strategies by ``s(a|I) = x(I, a) / x(parent(I))`` (uniform where the
    parent is never reached).
    """
    from scipy import sparse

    if game.num_players != 2:
        raise SolverError(f"the sequence-form LP solves 2-player games; this game has {game.num_players} players")
    if not game.is_constant_sum():
        raise SolverError("the sequence-form LP solves zero-sum (constant-sum) games; this game is general-sum")
    totals = game.terminal_utilities.sum(-1)  # the constant, subtracted so that the LP is zero-sum
    index_x, e_matrix = _sequence_constraints(game, 0)
    index_y, f_matrix = _sequence_constraints(game, 1)
    last_infoset = game.terminal_last_infoset.tolist()
    last_slot = game.terminal_last_slot.tolist()
    weights = (game.terminal_chance * (game.terminal_utilities[:, 0] - totals / 2)).tolist()
    rows, columns, values = [], [], []
    for z, weight in enumerate(weights):
        s = 0 if last_infoset[0][z] < 0 else index_x[(last_infoset[0][z], last_slot[0][z])]
        t = 0 if last_infoset[1][z] < 0 else index_y[(last_infoset[1][z], last_slot[1][z])]
        rows.append(s), columns.append(t), values.append(weight)
    num_x, num_y = e_matrix.shape[1], f_matrix.shape[1]
    payoff = sparse.csr_matrix((values, (rows, columns)), shape=(num_x, num_y))
    num_q = f_matrix.shape[0]
    # Variables [x (num_x), q (num_q)]; maximise q_0 (f is the unit vector of the empty sequence).
    cost = np.zeros(num_x + num_q)
    cost[num_x] = -1.0
    inequality = sparse.hstack([-payoff.T, f_matrix.T]).tocsr()
    equality = sparse.hstack([e_matrix, sparse.csr_matrix((e_matrix.shape[0], num_q))]).tocsr()
    e_vector = np.zeros(e_matrix.shape[0])
    e_vector[0] = 1.0
    result = linprog(
        cost, A_ub=inequality, b_ub=np.zeros(num_y), A_eq=equality, b_eq=e_vector,
        bounds=[(0, None)] * num_x + [(None, None)] * num_q, method="highs",
    )
    if result.status != 0:
        raise SolverError(f"HiGHS failed on the sequence-form LP: {result.message}")
    plan_x = np.clip(result.x[:num_x], 0, None)
    plan_y = np.clip(-result.ineqlin.marginals, 0, None)
    strategy = torch.zeros(game.num_infosets, game.max_actions, dtype=torch.float64)
    parents = game.infoset_parent.tolist()
    parent_slots = game.infoset_parent_slot.tolist()
    for index, plan in ((index_x, plan_x), (index_y, plan_y)):
        for (infoset, slot), position in index.items():
            parent = 0 if parents[infoset] < 0 else index[(parents[infoset], parent_slots[infoset])]
            strategy[infoset, slot] = plan[position] / plan[parent] if plan[parent] > 1e-12 else 0.0
    legal = game.legal_mask.cpu()
    rows_total = strategy.sum(-1, keepdim=True)
    uniform = legal / legal.sum(-1, keepdim=True)
    strategy = torch.where(rows_total > 1e-12, strategy / rows_total.clamp_min(1e-300), uniform.double())
    value = float(-result.fun + float(totals[0]) / 2)
    return SequenceFormSolution(strategy.to(device=game.device, dtype=game.dtype), value)
