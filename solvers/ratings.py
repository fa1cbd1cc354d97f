"""Ratings of a population from its empirical payoff table.

Every function takes the tournament's tables as numpy arrays over ``n`` players:

- ``payoffs (n, n)``: ``payoffs[i, j]`` is player ``i``'s mean payoff against ``j`` (the
  meta-game's row payoffs; the column player's are ``payoffs.T``);
- ``scores (n, n)`` and ``counts (n, n)``: ``scores[i, j]`` the matches ``i`` won against
  ``j`` (a draw counts 1/2, an exact win probability counts as it is), ``counts[i, j] =
  counts[j, i]`` the matches they played, so ``scores + scores.T == counts``.

The methods:

1. :func:`bradley_terry`: Elo ratings as the maximum-likelihood Bradley-Terry model
   (Bradley and Terry 1952; Elo 1978 puts it on the 400-points-per-decade scale):
   ``P(i beats j) = sigmoid(theta_i - theta_j)``, fitted by Newton's method on all matches
   at once, so the order of the matches does not matter, unlike sequential Elo updates.
   Standard errors come from the inverse of the observed information.
   NOTE: when a player wins (or loses) every match its maximum-likelihood rating is
   infinite; a ridge of ``ridge`` on ``theta`` (a Gaussian prior with variance
   ``1/ridge``) keeps it finite. Its effect on a rating backed by many matches is far
   below the standard error.
2. :func:`alpha_rank`: alpha-rank (Omidshafiei et al., Scientific Reports 2019) of the
   single-population meta-game: a Markov chain over the players where a mutant ``r``
   invades a monomorphic population ``s`` of size ``m`` with the Fermi fixation
   probability; the ranking is the chain's stationary distribution. Same models and
   defaults as OpenSpiel's ``open_spiel.python.egt.alpharank.compute`` (``m=50``,
   ``alpha=100``, the local selection model), and equal to it to rounding.
3. :func:`nash_averaging`: Nash averaging (Balduzzi, Tuyls, Perolat and Graepel,
   NeurIPS 2018): the maximum-entropy Nash equilibrium ``p*`` of the antisymmetric
   meta-game ``A``, and each player's rating ``(A p*)_i``, its payoff against the Nash
   mixture. It is invariant to adding copies of a player. NOTE: the tables of a
   tournament are antisymmetric only up to sampling noise (and not at all for
   general-sum games), so the method is applied to the antisymmetric part
   ``(payoffs - payoffs.T) / 2``, which equals ``payoffs`` minus a constant for
   constant-sum games.
4. :func:`meta_nash`: a Nash equilibrium of the symmetric meta-game ``(payoffs,
   payoffs.T)``, its NashConv, and each player's exploitability within the population:
   ``max_j payoffs[j, i] - payoffs[i, i]``, what the best member of the population gains
   by replacing ``i`` against ``i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from games.errors import SolverError

ELO_PER_NAT = 400.0 / math.log(10.0)
ELO_MEAN = 1500.0


def _square(name: str, table: np.ndarray) -> np.ndarray:
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] != table.shape[1] or table.shape[0] < 1:
        raise SolverError(f"{name} must be a square (n, n) table, got shape {table.shape}")
    if not np.isfinite(table).all():
        raise SolverError(f"{name} has non-finite entries")
    return table


@dataclass
class Ratings:
    """One rating method's result: a value per player and, where defined, its standard error."""

    values: np.ndarray
    """``(n,)`` ratings; higher is better."""
    errors: np.ndarray | None = None
    """``(n,)`` standard errors, or None when the method has none."""
    distribution: np.ndarray | None = None
    """``(n,)`` the mixture behind the ratings (alpha-rank's stationary distribution, the Nash mixture)."""


def bradley_terry(scores: np.ndarray, counts: np.ndarray, *, ridge: float = 1e-2, tolerance: float = 1e-10,
                  max_iterations: int = 200) -> Ratings:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale (mean 1500).

    Maximises ``sum_{i != j} scores[i, j] log sigmoid(theta_i - theta_j) - ridge/2 |theta|^2``
    by Newton's method with step halving. Self-play entries (the diagonal) carry no
    information and are ignored.

    Returns:
        ``Ratings`` with ``values = 1500 + 400/ln(10) * (theta - mean(theta))`` and the
        standard errors of ``theta`` on the same scale.
    """
    scores = _square("scores", scores)
    counts = _square("counts", counts)
    if scores.shape != counts.shape:
        raise SolverError(f"scores {scores.shape} and counts {counts.shape} differ in shape")
    if (scores < -1e-9).any() or (scores > counts + 1e-9).any():
        raise SolverError("scores must lie between 0 and the number of matches played")
    if not np.allclose(counts, counts.T):
        raise SolverError("counts must be symmetric: counts[i, j] matches between i and j")
    n = scores.shape[0]
    off = ~np.eye(n, dtype=bool)
    scores = np.where(off, scores, 0.0)
    counts = np.where(off, counts, 0.0)
    wins = scores.sum(1)

    def objective(theta: np.ndarray) -> float:
        difference = theta[:, None] - theta[None, :]
        return float((scores * -np.logaddexp(0.0, -difference)).sum() - 0.5 * ridge * theta @ theta)

    # Ratings are defined up to a common shift; this term pins their mean at 0 (it acts
    # only along the all-ones direction, which the likelihood does not see).
    gauge = np.full((n, n), 1.0 / n)
    theta = np.zeros(n)
    value = objective(theta)
    for _ in range(max_iterations):
        probability = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        gradient = wins - (counts * probability).sum(1) - ridge * theta
        weights = counts * probability * (1.0 - probability)
        information = np.diag(weights.sum(1) + ridge) - weights
        step = np.linalg.solve(information + gauge, gradient)
        scale = 1.0
        while scale > 1e-8:
            candidate = theta + scale * step
            candidate_value = objective(candidate)
            if candidate_value >= value - 1e-12:
                break
            scale *= 0.5
        theta, improvement, value = candidate, candidate_value - value, candidate_value
        if np.abs(scale * step).max() < tolerance or improvement < 1e-14 * max(1.0, abs(value)):
            break
    probability = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    weights = counts * probability * (1.0 - probability)
    covariance = np.linalg.inv(np.diag(weights.sum(1) + ridge) - weights + gauge)
    # Report the errors of theta - mean(theta), the ratings as shown.
    centering = np.eye(n) - 1.0 / n
    errors = np.sqrt(np.clip(np.diag(centering @ covariance @ centering), 0.0, None))
    return Ratings(values=ELO_MEAN + ELO_PER_NAT * (theta - theta.mean()), errors=ELO_PER_NAT * errors)


def win_probability(elo_difference: float) -> float:
    """The Bradley-Terry probability that a player rated ``elo_difference`` higher wins."""
    return 1.0 / (1.0 + 10.0 ** (-elo_difference / 400.0))


def _fixation(u: np.ndarray, m: int) -> np.ndarray:
    """``(1 - e^{-u}) / (1 - e^{-m u})``, the Fermi fixation probability, without overflow."""
    u = np.asarray(u, dtype=np.float64)
    result = np.full(u.shape, 1.0 / m)
    positive = u > 1e-14
    negative = u < -1e-14
    up = u[positive]
    result[positive] = np.expm1(-up) / np.expm1(-m * up)
    un = u[negative]
    # Multiply through by e^{m u}: e^{(m-1) u} (e^u - 1) / (e^{m u} - 1).
    result[negative] = np.exp((m - 1) * un) * np.expm1(un) / np.expm1(m * un)
    return result


def alpha_rank(payoffs: np.ndarray, *, alpha: float = 100.0, population_size: int = 50,
               local_selection: bool = True) -> Ratings:
    """Single-population alpha-rank of the symmetric meta-game ``payoffs``.

    The chain moves from a population of ``s`` to one of ``r`` with probability
    ``rho(r, s) / (n - 1)``, where ``rho`` is the fixation probability of one ``r`` mutant
    among ``m = population_size`` agents playing ``s`` under selection strength ``alpha``:

    - local selection (OpenSpiel's default): ``u = alpha (payoffs[r, s] - payoffs[s, r])``
      and ``rho = (1 - e^{-u}) / (1 - e^{-m u})``;
    - global selection, constant-sum tables: ``u = alpha m/(m-1) (payoffs[r, s] - c/2)``;
    - global selection otherwise: ``rho = 1 / (1 + sum_{l=1}^{m-1} prod_{k=1}^{l}
      e^{-alpha (f_r(k) - f_s(m-k))})`` with ``f_x(k)`` the fitness of ``x`` when ``k``
      agents play it.

    Returns:
        ``Ratings`` whose ``values`` and ``distribution`` are both the stationary
        distribution (its mass is the rating).
    """
    payoffs = _square("payoffs", payoffs)
    n = payoffs.shape[0]
    if population_size < 2:
        raise SolverError(f"population_size must be at least 2, got {population_size}")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise SolverError(f"alpha must be a finite number >= 0, got {alpha}")
    if n == 1:
        return Ratings(values=np.ones(1), distribution=np.ones(1))
    m = population_size
    sums = payoffs + payoffs.T
    constant_sum = bool(np.isclose(sums, sums[0, 0], atol=1e-14).all())
    if local_selection:
        rho = _fixation(alpha * (payoffs - payoffs.T), m)  # rho[r, s]
    elif constant_sum:
        rho = _fixation(alpha * m / (m - 1) * (payoffs - sums[0, 0] / 2), m)
    else:
        rho = np.zeros((n, n))
        k = np.arange(1, m)
        for r in range(n):
            for s in range(n):
                if r == s:
                    continue
                fitness_r = ((k - 1) * payoffs[r, r] + (m - k) * payoffs[r, s]) / (m - 1)
                fitness_s = ((m - k - 1) * payoffs[s, s] + k * payoffs[s, r]) / (m - 1)
                exponents = np.cumsum(-alpha * (fitness_r - fitness_s))
                with np.errstate(over="ignore"):  # an overflow means fixation probability 0
                    rho[r, s] = 1.0 / (1.0 + np.exp(exponents).sum())
    transition = rho.T / (n - 1)  # transition[s, r]
    np.fill_diagonal(transition, 0.0)
    np.fill_diagonal(transition, 1.0 - transition.sum(1))
    stationary = _stationary_distribution(transition)
    return Ratings(values=stationary, distribution=stationary)


def multi_population_alpha_rank(tables: np.ndarray, *, alpha: float = 100.0,
                                population_size: int = 50) -> tuple[np.ndarray, list[np.ndarray]]:
    """Multi-population alpha-rank (Omidshafiei et al., Sci. Rep. 2019) of an N-player meta-game.

    The states are the joint profiles ``(s_1, ..., s_N)`` of monomorphic populations. From
    ``s``, population ``k`` switches to ``r_k`` (the others staying) with probability
    ``eta * rho``, ``eta = 1 / sum_k (K_k - 1)``, where ``rho`` is the fixation probability of
    one ``r_k`` mutant among ``m = population_size`` agents, ``u = alpha (f_r - f_s)`` and
    ``rho = (1 - e^{-u}) / (1 - e^{-m u})`` with ``f`` population ``k``'s payoff in each
    profile (OpenSpiel's ``alpharank.compute`` with several payoff tables).

    Shapes: ``tables`` ``(N, K_1, ..., K_N)``. Returns the stationary distribution over
    profiles ``(K_1, ..., K_N)`` and each population's marginal ``(K_k,)``.
    """
    tables = np.asarray(tables, dtype=np.float64)
    if population_size < 2:
        raise SolverError(f"population_size must be at least 2, got {population_size}")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise SolverError(f"alpha must be a finite number >= 0, got {alpha}")
    num_players, sizes = tables.shape[0], tables.shape[1:]
    count = int(np.prod(sizes))
    if count == 1:
        return np.ones(sizes), [np.ones(1) for _ in sizes]
    eta = 1.0 / sum(size - 1 for size in sizes)
    transition = np.zeros((count, count))
    profiles = np.arange(count).reshape(sizes)
    for k in range(num_players):
        # Moving population k's axis last: every row of K_k profiles differs in s_k alone.
        payoff = np.moveaxis(tables[k], k, -1).reshape(-1, sizes[k])  # (others, K_k)
        ids = np.moveaxis(profiles, k, -1).reshape(-1, sizes[k])
        rho = _fixation(alpha * (payoff[:, None, :] - payoff[:, :, None]), population_size)  # [., s, r]
        for row, idx in zip(rho, ids):
            block = eta * row
            np.fill_diagonal(block, 0.0)
            transition[np.ix_(idx, idx)] += block
    np.fill_diagonal(transition, 1.0 - transition.sum(1))
    stationary = _stationary_distribution(transition).reshape(sizes)
    marginals = [stationary.sum(axis=tuple(j for j in range(num_players) if j != k)) for k in range(num_players)]
    return stationary, marginals


def _stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """The distribution ``pi`` with ``pi @ transition == pi``, by a least-squares solve."""
    n = transition.shape[0]
    system = np.vstack([transition.T - np.eye(n), np.ones((1, n))])
    target = np.zeros(n + 1)
    target[-1] = 1.0
    stationary, *_ = np.linalg.lstsq(system, target, rcond=None)
    stationary = np.clip(stationary, 0.0, None)
    return stationary / stationary.sum()


def max_entropy_nash(antisymmetric: np.ndarray, *, tolerance: float = 1e-10) -> np.ndarray:
    """The maximum-entropy Nash equilibrium of the symmetric zero-sum game ``antisymmetric``.

    Solves ``max -sum p log p`` subject to ``antisymmetric @ p <= 0``, ``p >= 0``,
    ``sum p = 1`` (the game's value is 0, so these are exactly the equilibria). Its dual is
    smooth: ``p(mu) = softmax(-antisymmetric.T @ mu)`` for multipliers ``mu >= 0``
    minimising ``log sum exp(-antisymmetric.T @ mu)``. Strategies outside every
    equilibrium's support get probability 0 only in the limit ``mu -> inf``, so they are
    found first by one linear program (the largest-support equilibrium) and removed.

    Shapes: ``antisymmetric (n, n)``; returns ``(n,)``.
    """
    from scipy.optimize import linprog, minimize

    game = _square("antisymmetric", antisymmetric)
    if not np.allclose(game, -game.T, atol=1e-12):
        raise SolverError("max_entropy_nash needs an antisymmetric table (payoffs == -payoffs.T)")
    n = game.shape[0]
    # Largest support: maximise sum t_i with t_i <= p_i, t_i <= 1/n over the equilibria.
    objective = np.concatenate([np.zeros(n), -np.ones(n)])
    upper = np.block([[game, np.zeros((n, n))], [-np.eye(n), np.eye(n)]])
    bounds = [(0, None)] * n + [(0, 1.0 / n)] * n
    equality = np.concatenate([np.ones(n), np.zeros(n)])[None, :]
    found = linprog(objective, A_ub=upper, b_ub=np.zeros(2 * n), A_eq=equality, b_eq=[1.0], bounds=bounds,
                    method="highs")
    if found.status != 0:
        raise SolverError(f"the support of the maximum-entropy Nash could not be found: {found.message}")
    support = found.x[n:] > 1e-9 / n
    sub = game[np.ix_(support, support)]
    outside = game[np.ix_(~support, support)]
    constraints = np.vstack([sub, outside])  # every row must be <= 0 at p

    def dual(mu: np.ndarray) -> tuple[float, np.ndarray]:
        logits = -constraints.T @ mu
        top = logits.max()
        weights = np.exp(logits - top)
        total = weights.sum()
        p = weights / total
        return float(top + math.log(total)), -constraints @ p

    result = minimize(dual, np.zeros(constraints.shape[0]), jac=True, method="L-BFGS-B",
                      bounds=[(0, None)] * constraints.shape[0], options={"ftol": 1e-15, "gtol": tolerance,
                                                                          "maxiter": 10_000})
    logits = -constraints.T @ result.x
    p = np.exp(logits - logits.max())
    mixture = np.zeros(n)
    mixture[support] = p / p.sum()
    return mixture


def nash_averaging(payoffs: np.ndarray) -> Ratings:
    """Nash-averaging ratings: ``A @ p*`` with ``A`` the antisymmetric part of ``payoffs``.

    Returns:
        ``Ratings`` with ``values (n,)`` and ``distribution`` the maximum-entropy Nash ``p*``.
    """
    payoffs = _square("payoffs", payoffs)
    antisymmetric = 0.5 * (payoffs - payoffs.T)
    mixture = max_entropy_nash(antisymmetric)
    return Ratings(values=antisymmetric @ mixture, distribution=mixture)


@dataclass
class MetaNash:
    """A Nash equilibrium of the meta-game and exploitability within the population."""

    mixture: np.ndarray
    """``(n,)`` the row player's equilibrium mixture."""
    column_mixture: np.ndarray
    """``(n,)`` the column player's (equal to ``mixture`` for constant-sum tables)."""
    value: float
    """The row player's payoff at the equilibrium."""
    exploitability: float
    """The profile's NashConv in the meta-game: what the best members of the population gain against it."""
    player_exploitability: np.ndarray
    """``(n,)`` ``max_j payoffs[j, i] - payoffs[i, i]`` for every player ``i``."""


def meta_nash(payoffs: np.ndarray) -> MetaNash:
    """A Nash equilibrium of the symmetric meta-game ``(payoffs, payoffs.T)``.

    The bimatrix game ``(payoffs, payoffs.T)`` goes to ``solvers.registry.solve`` with
    ``auto``: constant-sum tables are solved as zero-sum games (the row player's maxmin
    mixture, played by both sides, is a symmetric equilibrium), other tables by
    Lemke-Howson, whose equilibrium need not be symmetric.
    """
    import torch

    from games.normal_form import NormalFormGame
    from solvers.registry import solve

    payoffs = _square("payoffs", payoffs)
    table = torch.as_tensor(payoffs, dtype=torch.float64)
    game = NormalFormGame.bimatrix(table, table.T)
    constant_sum = game.is_constant_sum()  # the test auto_solver makes: zero-sum, else Lemke-Howson
    result = solve(game)
    row = result.strategies[0].cpu().numpy().astype(np.float64)
    column = row if constant_sum else result.strategies[1].cpu().numpy().astype(np.float64)
    value = float(row @ payoffs @ column)
    column_value = float(row @ payoffs.T @ column)
    gain = (payoffs @ column).max() - value + (row @ payoffs.T).max() - column_value
    return MetaNash(
        mixture=row,
        column_mixture=column,
        value=value,
        exploitability=float(gain),
        player_exploitability=payoffs.max(0) - np.diag(payoffs),
    )


__all__ = [
    "ELO_MEAN",
    "ELO_PER_NAT",
    "MetaNash",
    "Ratings",
    "alpha_rank",
    "bradley_terry",
    "max_entropy_nash",
    "meta_nash",
    "nash_averaging",
    "win_probability",
]
