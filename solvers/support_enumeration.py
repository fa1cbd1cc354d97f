"""Support enumeration with Newton's method: exact Nash equilibria of small N-player games.

Porter, Nudelman and Shoham, "Simple search methods for finding a Nash equilibrium" (Games
and Economic Behavior 63, 2008): guess which actions each player uses (a support profile),
solve the indifference equations on it, and keep the first solution that is a Nash
equilibrium; small and balanced supports are tried first, as equilibria of most games have
them.

1. Pure profiles: every profile where each player's action is a best response (the
   payoff tensor's maximum along that player's axis), all at once.
2. Mixed support profiles ``S = (S_1, ..., S_N)``, by total size, then by imbalance
   (largest minus smallest), then in order; a profile where a support action is strictly
   dominated while the others stay in their supports is skipped (conditional dominance). Unknowns: each player's probabilities on its
   support, ``|S_i| - 1`` free ones (the last is one minus their sum). Equations: each
   player is indifferent among its support's actions, ``u_i(a, sigma_-i) = u_i(b, sigma_-i)``
   for ``a, b`` in ``S_i``: as many equations as unknowns, polynomial of degree ``N - 1``.
3. Newton's method in float64 from the uniform point and ``starts - 1`` random points of
   the supports' simplices, all at once (a batched Jacobian from autograd); a least-squares
   step, so that singular Jacobians (continua of equilibria) still move to a solution.
4. A solution is kept when its probabilities are non-negative (to ``1e-10``; then clipped
   and renormalized) and its NashConv in the whole game is at most ``tolerance``: no action
   outside a support pays more.

Shapes: the game's payoffs ``(N, A_1, ..., A_N)``; a batch of starts ``(K, dim)`` with
``dim = sum_i (|S_i| - 1)``.

NOTE: the number of support profiles is ``prod_i (2^{A_i} - 1)``; :func:`support_profiles`
counts them, and ``auto`` uses this solver only below ``MAX_SUPPORT_PROFILES``. A game whose
equilibria Newton's method misses from every start raises ``SolverError`` (none seen on
Gambit's published examples).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch

from games.errors import SolverError
from games.normal_form import NormalFormGame

Tensor = torch.Tensor

MAX_SUPPORT_PROFILES = 50_000
"""``auto`` enumerates supports of N-player games with at most this many support profiles."""
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def support_profiles(num_actions: list[int]) -> int:
    """How many support profiles a game with these action counts has: ``prod (2^{A_i} - 1)``."""
    return math.prod(2**count - 1 for count in num_actions)


def _ordered_supports(num_actions: list[int]) -> Iterator[tuple[tuple[int, ...], ...]]:
    """Mixed support profiles (at least one support of two or more actions), small and balanced first."""
    per_player = [[subset for size in range(1, count + 1) for subset in itertools.combinations(range(count), size)]
                  for count in num_actions]
    by_size: dict[int, list[tuple]] = {}
    for profile in itertools.product(*per_player):
        sizes = [len(support) for support in profile]
        if max(sizes) > 1:
            by_size.setdefault(sum(sizes), []).append(profile)
    for total in sorted(by_size):
        yield from sorted(by_size[total], key=lambda p: max(map(len, p)) - min(map(len, p)))


def _dominated(payoffs: Tensor, supports: tuple[tuple[int, ...], ...]) -> bool:
    """Whether some support action is strictly dominated when the others play within their supports
    (Porter et al.'s conditional dominance): no mixture on these supports can make it a best response."""
    players = payoffs.shape[0]
    for player, support in enumerate(supports):
        index = [slice(None) if j == player else list(supports[j]) for j in range(players)]
        table = payoffs[player]
        for axis, rows in enumerate(index):
            if not isinstance(rows, slice):
                table = table.index_select(axis, torch.tensor(rows, device=payoffs.device))
        table = torch.movedim(table, player, 0).reshape(payoffs.shape[1 + player], -1)  # (A_i, others' profiles)
        for action in support:
            if bool(((table > table[action]).all(dim=1)).any()):
                return True
    return False


def pure_equilibria(payoffs: Tensor) -> Tensor:
    """``(M, N)`` action indices of every pure Nash equilibrium of ``payoffs`` ``(N, A_1, ..., A_N)``."""
    players = payoffs.shape[0]
    stable = torch.ones(payoffs.shape[1:], dtype=torch.bool, device=payoffs.device)
    for player in range(players):
        best = payoffs[player].amax(dim=player, keepdim=True)
        stable &= payoffs[player] >= best - 1e-12 * max(1.0, float(best.abs().max()))
    return torch.nonzero(stable)


class _Support:
    """The indifference equations of one support profile, as a function of the free probabilities."""

    def __init__(self, payoffs: Tensor, supports: tuple[tuple[int, ...], ...]) -> None:
        self.payoffs = payoffs
        self.supports = supports
        self.players = payoffs.shape[0]
        self.sizes = [len(support) for support in supports]
        self.dim = sum(size - 1 for size in self.sizes)
        letters = _LETTERS[: self.players]
        self.subscripts = [
            letters + "".join(f",...{letters[j]}" for j in range(self.players) if j != i) + f"->...{letters[i]}"
            for i in range(self.players)
        ]

    def strategies(self, free: Tensor) -> list[Tensor]:
        """``(..., dim)`` free probabilities -> each player's full mixed strategy ``(..., A_i)``."""
        strategies, start = [], 0
        for player, support in enumerate(self.supports):
            count = len(support) - 1
            head = free[..., start:start + count]
            start += count
            on_support = torch.cat([head, 1 - head.sum(-1, keepdim=True)], dim=-1)
            strategy = free.new_zeros(*free.shape[:-1], self.payoffs.shape[1 + player])
            strategies.append(strategy.index_copy(-1, torch.tensor(support, device=free.device), on_support))
        return strategies

    def residual(self, free: Tensor) -> Tensor:
        """``(..., dim)``: each support action's value minus that of the support's first action."""
        strategies = self.strategies(free)
        parts = []
        for player, support in enumerate(self.supports):
            if len(support) < 2:
                continue
            others = [strategies[j] for j in range(self.players) if j != player]
            values = torch.einsum(self.subscripts[player], self.payoffs[player], *others)
            chosen = values[..., list(support)]
            parts.append(chosen[..., 1:] - chosen[..., :1])
        return torch.cat(parts, dim=-1)

    def starts(self, count: int, generator: torch.Generator) -> Tensor:
        """``(count, dim)``: the supports' centres, then points drawn uniformly from their simplices."""
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
        return torch.stack(rows).to(self.payoffs.device)


def _newton(system: _Support, starts: Tensor, iterations: int = 25) -> tuple[Tensor, Tensor]:
    """Least-squares Newton steps on every start at once; returns the points and their residual norms.

    The Jacobian ``(K, dim, dim)`` comes from one backward pass per equation through the batched
    residual (the starts are independent, so summing over them keeps each start's row).
    """
    points = starts.clone()
    for _ in range(iterations):
        free = points.detach().requires_grad_(True)
        values = system.residual(free)  # (K, dim)
        if bool((values.detach().norm(dim=1) < 1e-13).all()):
            break
        rows = [torch.autograd.grad(values[:, row].sum(), free, retain_graph=row < system.dim - 1)[0]
                for row in range(system.dim)]
        jacobian = torch.stack(rows, dim=1)
        steps = torch.linalg.lstsq(jacobian, values.detach().unsqueeze(-1)).solution.squeeze(-1)
        points = points - torch.nan_to_num(steps, nan=0.0, posinf=0.0, neginf=0.0)
    with torch.no_grad():
        return points, system.residual(points).norm(dim=1)


def _equilibrium(system: _Support, point: Tensor, norm: Tensor, whole: NormalFormGame, tolerance: float,
                 scale: float) -> list[Tensor] | None:
    """The profile of a Newton point when it is a Nash equilibrium of ``whole``: the indifference
    equations hold, its probabilities are non-negative (to ``1e-10``; then clipped and renormalized),
    and its NashConv is at most ``tolerance`` (both scaled by the payoffs' size); else None."""
    from solvers.exploitability import nash_conv

    if float(norm) > 1e-9 * scale:
        return None
    strategies = system.strategies(point)
    if any(bool((strategy < -1e-10).any()) for strategy in strategies):
        return None
    strategies = [strategy.clamp_min(0) / strategy.clamp_min(0).sum() for strategy in strategies]
    return strategies if float(nash_conv(whole, strategies)) <= tolerance * scale else None


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
        system = _Support(payoffs, supports)
        if system.dim == 0:
            point, norm = payoffs.new_zeros(0), payoffs.new_zeros(())
        else:
            start = torch.cat([(s.to(torch.float64)[list(support)] / s.to(torch.float64)[list(support)].sum())[:-1]
                               for s, support in zip(strategies, supports)])
            points, norms = _newton(system, start.unsqueeze(0))
            point, norm = points[0], norms[0]
        candidate = _equilibrium(system, point, norm, whole, tolerance, scale)
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
    generator = torch.Generator().manual_seed(seed)
    for supports in _ordered_supports(num_actions):
        if _dominated(payoffs, supports):
            continue
        system = _Support(payoffs, supports)
        points, norms = _newton(system, system.starts(starts, generator))
        for index in torch.argsort(norms).tolist():
            if float(norms[index]) > 1e-9 * scale:
                break
            found = _equilibrium(system, points[index], norms[index], whole, tolerance, scale)
            if found is not None:
                return [strategy.to(game.payoffs.dtype) for strategy in found]
    raise SolverError(f"support enumeration found no equilibrium within NashConv {tolerance:g} from {starts} starts "
                      "per support profile")


__all__ = ["MAX_SUPPORT_PROFILES", "polish", "pure_equilibria", "support_enumeration", "support_profiles"]
