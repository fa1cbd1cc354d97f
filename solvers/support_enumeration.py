"""Support enumeration with Newton's method: exact Nash equilibria of small N-player games.

Porter, Nudelman and Shoham, "Simple search methods for finding a Nash equilibrium" (Games
and Economic Behavior 63, 2008): guess which actions each player uses (a support profile),
solve the indifference equations on it, and keep the first solution that is a Nash
equilibrium; small and balanced supports are tried first, as equilibria of most games have
them.

1. Pure profiles: every profile where each player's action is a best response (the
   payoff tensor's maximum along that player's axis), all at once.
2. Mixed support profiles ``S = (S_1, ..., S_N)`` in batches of equal support sizes, the
   sizes by total, then by imbalance (largest minus smallest); profiles where a support
   action is strictly dominated while the others stay in their supports are dropped
   (conditional dominance, checked for the whole batch at once). Unknowns: each player's
   probabilities on its support, ``|S_i| - 1`` free ones (the last is one minus their sum). Equations: each
   player is indifferent among its support's actions, ``u_i(a, sigma_-i) = u_i(b, sigma_-i)``
   for ``a, b`` in ``S_i``: as many equations as unknowns, polynomial of degree ``N - 1``.
3. Newton's method in float64 from the uniform point and ``starts - 1`` random points of
   the supports' simplices, for every profile of the batch at once, with the closed-form
   Jacobian; a least-squares step, so that singular Jacobians (continua of equilibria) still
   move to a solution.
4. A solution is kept when its probabilities are non-negative (to ``1e-10``; then clipped
   and renormalized) and its NashConv in the whole game is at most ``tolerance`` (no action
   outside a support pays more), checked for every candidate of the batch at once; the first
   in profile order is returned.

Shapes: the game's payoffs ``(N, A_1, ..., A_N)``; a batch of ``B`` profiles' starts ``(B, K,
dim)`` with ``dim = sum_i (|S_i| - 1)``.

NOTE: the number of support profiles is ``prod_i (2^{A_i} - 1)``; :func:`support_profiles`
counts them, and ``auto`` uses this solver only below ``MAX_SUPPORT_PROFILES``. A game whose
equilibria Newton's method misses from every start raises ``SolverError`` (none seen on
Gambit's published examples).
"""

from __future__ import annotations

import itertools
import math

import torch

from games.errors import SolverError
from games.normal_form import NormalFormGame, contract
from solvers.exploitability import nash_conv

Tensor = torch.Tensor

MAX_SUPPORT_PROFILES = 50_000
"""``auto`` enumerates supports of N-player games with at most this many support profiles."""


def support_profiles(num_actions: list[int]) -> int:
    """How many support profiles a game with these action counts has: ``prod (2^{A_i} - 1)``."""
    return math.prod(2**count - 1 for count in num_actions)


def _size_profiles(num_actions: list[int]) -> list[tuple[int, ...]]:
    """Support sizes ``(k_1, ..., k_N)`` of mixed profiles (some ``k_i > 1``): small total, then balanced, first."""
    sizes = [size for size in itertools.product(*(range(1, count + 1) for count in num_actions)) if max(size) > 1]
    return sorted(sizes, key=lambda size: (sum(size), max(size) - min(size), size))


def _profiles(sizes: tuple[int, ...], num_actions: list[int], device: torch.device) -> list[Tensor]:
    """Every support profile with these sizes, in lexicographic order: each player's supports ``(B, k_i)``."""
    combinations = [torch.tensor(list(itertools.combinations(range(count), size)), device=device)
                    for count, size in zip(num_actions, sizes)]
    grid = torch.meshgrid(*(torch.arange(len(c), device=device) for c in combinations), indexing="ij")
    return [c[g.reshape(-1)] for c, g in zip(combinations, grid)]


class _Dominance:
    """Porter et al.'s conditional dominance, for a batch of support profiles at once.

    A support action ``a`` of player ``i`` is conditionally dominated when some action ``a'``
    pays more against every profile of the others' supports: no mixture on these supports
    makes ``a`` a best response. ``better[i]`` ``(A_i * A_i, P_-i)`` is 1 where ``u_i(a', s) >
    u_i(a, s)`` fails (row ``a' * A_i + a``), so a pair dominates on a batch of opponent
    profiles exactly when the count of failures over the profiles in the supports is zero.
    """

    def __init__(self, payoffs: Tensor) -> None:
        self.players = payoffs.shape[0]
        self.num_actions = list(payoffs.shape[1:])
        self.fails = []
        for player in range(self.players):
            table = torch.movedim(payoffs[player], player, 0).reshape(self.num_actions[player], -1)  # (A_i, P_-i)
            self.fails.append((~(table[:, None, :] > table[None, :, :])).reshape(-1, table.shape[1]).to(payoffs.dtype))

    def dominated(self, supports: list[Tensor]) -> Tensor:
        """``(B,)`` bool: profiles (each player's supports ``(B, k_i)``) with a conditionally dominated action."""
        dtype = self.fails[0].dtype
        count = supports[0].shape[0]
        indicators = [torch.zeros(count, actions, dtype=dtype, device=support.device).scatter_(1, support, 1.0)
                      for support, actions in zip(supports, self.num_actions)]
        dominated = torch.zeros(count, dtype=torch.bool, device=supports[0].device)
        for player, actions in enumerate(self.num_actions):
            others = [indicators[j] for j in range(self.players) if j != player]
            mask = others[0]
            for indicator in others[1:]:
                mask = (mask[:, :, None] * indicator[:, None, :]).reshape(count, -1)  # (B, P_-i)
            failures = (mask @ self.fails[player].T).reshape(count, actions, actions)  # (B, a', a)
            beaten = (failures == 0).any(1)  # (B, a): some a' pays more on every opponent profile
            dominated |= (beaten & indicators[player].bool()).any(1)
        return dominated


def pure_equilibria(payoffs: Tensor) -> Tensor:
    """``(M, N)`` action indices of every pure Nash equilibrium of ``payoffs`` ``(N, A_1, ..., A_N)``."""
    players = payoffs.shape[0]
    stable = torch.ones(payoffs.shape[1:], dtype=torch.bool, device=payoffs.device)
    for player in range(players):
        best = payoffs[player].amax(dim=player, keepdim=True)
        stable &= payoffs[player] >= best - 1e-12 * max(1.0, float(best.abs().max()))
    return torch.nonzero(stable)


class _Supports:
    """The indifference equations of ``B`` support profiles with equal support sizes, solved together.

    Player ``i``'s equations are ``u_i(s_a, sigma_-i) - u_i(s_0, sigma_-i) = 0`` for its support's
    actions ``s_1..s_{k_i - 1}``; the unknowns are each player's first ``k_i - 1`` probabilities on
    its support (the last is one minus their sum). The Jacobian is exact and closed-form: the
    derivative of ``u_i(a, sigma_-i)`` along player ``j``'s probability of ``c`` is ``u_i(a, c,
    sigma_-ij)``, the payoff tensor contracted with every strategy but ``i``'s and ``j``'s.

    Shapes: ``supports[i]`` ``(B, k_i)``, player i's support in each profile; free probabilities ``(B, K, dim)``; residuals ``(B, K, dim)``;
    Jacobians ``(B, K, dim, dim)``.
    """

    def __init__(self, payoffs: Tensor, supports: list[Tensor]) -> None:
        self.payoffs = payoffs
        self.players = payoffs.shape[0]
        self.index = [support.to(payoffs.device) for support in supports]
        self.count = self.index[0].shape[0]
        self.sizes = [support.shape[1] for support in self.index]
        self.dim = sum(size - 1 for size in self.sizes)

    def strategies(self, free: Tensor) -> list[Tensor]:
        """``(B, K, dim)`` free probabilities -> each player's full mixed strategy ``(B, K, A_i)``."""
        strategies, start = [], 0
        for player, size in enumerate(self.sizes):
            head = free[..., start:start + size - 1]
            start += size - 1
            on_support = torch.cat([head, 1 - head.sum(-1, keepdim=True)], dim=-1)
            full = free.new_zeros(*free.shape[:-1], self.payoffs.shape[1 + player])
            index = self.index[player][:, None, :].expand(-1, free.shape[1], -1)
            strategies.append(full.scatter(-1, index, on_support))
        return strategies

    def _on_support(self, table: Tensor, player: int, axis: int) -> Tensor:
        """``table`` ``(B, K, ..., A_player, ...)`` restricted to the player's support along ``axis``."""
        shape = [1] * table.dim()
        shape[0], shape[axis] = self.index[player].shape
        index = self.index[player].reshape(shape).expand(*table.shape[:axis], -1, *table.shape[axis + 1:])
        return table.gather(axis, index)

    def residual(self, free: Tensor, jacobian: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``(B, K, dim)`` residuals at ``free``, and with ``jacobian`` their ``(B, K, dim, dim)`` Jacobians."""
        strategies = self.strategies(free)
        parts, blocks = [], []
        for i in range(self.players):
            if self.sizes[i] < 2:
                continue
            chosen = self._on_support(contract(self.payoffs[i], strategies, (i,)), i, 2)
            parts.append(chosen[..., 1:] - chosen[..., :1])
            if not jacobian:
                continue
            row = []
            for j in range(self.players):
                if self.sizes[j] < 2:
                    continue
                if j == i:
                    row.append(free.new_zeros(*free.shape[:2], self.sizes[i] - 1, self.sizes[j] - 1))
                    continue
                table = contract(self.payoffs[i], strategies, (i, j))  # (B, K, A_i, A_j)
                table = table.expand(*free.shape[:2], *table.shape[-2:])  # 2 players: nothing was contracted
                if j < i:
                    table = table.transpose(-1, -2)
                table = self._on_support(self._on_support(table, i, 2), j, 3)  # (B, K, k_i, k_j)
                along = table[..., :-1] - table[..., -1:]  # d u_i(s_a) / d free_j
                row.append(along[..., 1:, :] - along[..., :1, :])
            blocks.append(torch.cat(row, dim=-1))
        residual = torch.cat(parts, dim=-1)
        return (residual, torch.cat(blocks, dim=-2)) if jacobian else residual

    def starts(self, count: int, generator: torch.Generator) -> Tensor:
        """``(B, count, dim)``: the supports' centres, then points drawn uniformly from their simplices
        (the same draws for every profile of the batch)."""
        rows = []
        for index in range(count):
            row = []
            for size in self.sizes:
                if index == 0:
                    point = torch.full((size,), 1.0 / size, dtype=torch.float64)
                else:
                    point = -torch.log(torch.rand(size, generator=generator, dtype=torch.float64))
                    point = point / point.sum()
                row.append(point[:-1])
            rows.append(torch.cat(row))
        return torch.stack(rows).to(self.payoffs.device).expand(self.count, -1, -1).clone()


def _newton(system: _Supports, starts: Tensor, iterations: int = 25) -> tuple[Tensor, Tensor]:
    """Least-squares Newton steps on every start of every profile at once, with the closed-form
    Jacobian; returns the points ``(B, K, dim)`` and their residual norms ``(B, K)``."""
    points = starts.clone()
    for _ in range(iterations):
        values, jacobian = system.residual(points, jacobian=True)
        if bool((values.norm(dim=-1) < 1e-13).all()):
            break
        steps = torch.linalg.lstsq(jacobian, values.unsqueeze(-1)).solution.squeeze(-1)
        points = points - torch.nan_to_num(steps, nan=0.0, posinf=0.0, neginf=0.0)
    return points, system.residual(points).norm(dim=-1)


def _equilibrium(system: _Supports, points: Tensor, norms: Tensor, whole: NormalFormGame, tolerance: float,
                 scale: float) -> list[Tensor] | None:
    """The first Newton point ``(B, K, dim)``, in profile order and then by residual, that is a Nash
    equilibrium of ``whole`` (the game, float64): the indifference equations hold, its probabilities are non-negative
    (to ``1e-10``; then clipped and renormalized) and its NashConv is at most ``tolerance`` (both scaled
    by the payoffs' size); else None."""
    strategies = system.strategies(points)
    admissible = norms <= 1e-9 * scale
    for strategy in strategies:
        admissible &= (strategy >= -1e-10).all(-1)
    if not bool(admissible.any()):
        return None
    rows, columns = torch.nonzero(admissible, as_tuple=True)
    candidates = [strategy[rows, columns].clamp_min(0) for strategy in strategies]  # (C, A_i)
    candidates = [strategy / strategy.sum(-1, keepdim=True) for strategy in candidates]
    good = nash_conv(whole, candidates) <= tolerance * scale  # every candidate at once: (C,)
    if not bool(good.any()):
        return None
    rank = torch.argsort(torch.argsort(norms, 1), 1)[rows, columns]
    key = torch.where(good, rows * (norms.shape[1] + 1) + rank, torch.full_like(rows, torch.iinfo(rows.dtype).max))
    first = int(torch.argmin(key))
    return [strategy[first] for strategy in candidates]


def polish(game: NormalFormGame, strategies: list[Tensor], *, tolerance: float = 1e-9) -> list[Tensor] | None:
    """An approximate equilibrium made exact: the support its probabilities suggest, and Newton's
    method on that support's indifference equations from the approximate profile.

    Supports are guessed at thresholds ``1e-2, 1e-3, 1e-4`` (of each player's largest
    probability); the first that gives a profile of NashConv at most ``tolerance`` is
    returned, and None when none does (the approximate profile is then kept by the caller).
    """
    payoffs = game.payoffs.to(torch.float64)
    scale = max(1.0, float(payoffs.abs().max()))
    whole = NormalFormGame(payoffs)
    tried = set()
    for threshold in (1e-2, 1e-3, 1e-4):
        supports = tuple(tuple(torch.nonzero(s >= threshold * s.max()).flatten().tolist()) for s in strategies)
        if supports in tried:
            continue
        tried.add(supports)
        system = _Supports(payoffs, [torch.tensor([support]) for support in supports])
        start = torch.cat([(s.to(torch.float64)[list(support)] / s.to(torch.float64)[list(support)].sum())[:-1]
                           for s, support in zip(strategies, supports)])
        points = start.reshape(1, 1, -1)
        if system.dim == 0:
            norms = payoffs.new_zeros(1, 1)
        else:
            points, norms = _newton(system, points)
        candidate = _equilibrium(system, points, norms, whole, tolerance, scale)
        if candidate is not None:
            return [c.to(game.payoffs.dtype) for c in candidate]
    return None


def support_enumeration(game: NormalFormGame, *, tolerance: float = 1e-9, starts: int = 8,
                        seed: int = 0) -> list[Tensor]:
    """A Nash equilibrium of ``game`` with NashConv at most ``tolerance`` (see the module docstring).

    Raises:
        SolverError: for a batch of games, or when no support profile yields an equilibrium.
    """
    if game.batched:
        raise SolverError("support enumeration solves one game at a time")
    payoffs = game.payoffs.to(torch.float64)
    num_actions = [int(count) for count in game.num_actions]
    pure = pure_equilibria(payoffs)
    if len(pure):
        return [torch.nn.functional.one_hot(pure[0, player], count).to(payoffs)
                for player, count in enumerate(num_actions)]
    scale = max(1.0, float(payoffs.abs().max()))
    whole = NormalFormGame(payoffs)
    dominance = _Dominance(payoffs)
    generator = torch.Generator().manual_seed(seed)
    for sizes in _size_profiles(num_actions):
        supports = _profiles(sizes, num_actions, payoffs.device)
        kept = ~dominance.dominated(supports)
        if not bool(kept.any()):
            continue
        system = _Supports(payoffs, [support[kept] for support in supports])
        points, norms = _newton(system, system.starts(starts, generator))
        found = _equilibrium(system, points, norms, whole, tolerance, scale)
        if found is not None:
            return [strategy.to(game.payoffs.dtype) for strategy in found]
    raise SolverError(f"support enumeration found no equilibrium within NashConv {tolerance:g} from {starts} starts "
                      "per support profile")


__all__ = ["MAX_SUPPORT_PROFILES", "polish", "pure_equilibria", "support_enumeration", "support_profiles"]
