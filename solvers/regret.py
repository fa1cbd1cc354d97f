"""No-regret learning dynamics in self-play on batched normal-form games.

Every player runs the same learner against the others. One iteration consists of:

1) compute each player's action values ``v_i = u_i(., s_-i)`` against the others'
   current strategies (with ``alternating=True``, player i sees the strategies that
   players ``0..i-1`` have just updated, as in CFR+);
2) each player updates its learner with ``v_i`` and forms its next strategy;
3) the average strategy accumulates the new strategies with weight ``t**p`` (uniform
   p = 0, linear p = 1, quadratic p = 2).

In two-player zero-sum games the average strategies of no-regret learners converge to
a Nash equilibrium; in general-sum games their empirical joint play converges to the
set of coarse correlated equilibria, and the averages need not approach a Nash
equilibrium. Optimistic learners also converge in their last iterate on zero-sum games.

The learners, each a thin subclass of :class:`NoRegretSolver`:

- :class:`RegretMatching`: Hart and Mas-Colell, "A simple adaptive procedure leading to
  correlated equilibrium", Econometrica 2000. ``plus=True`` gives RM+ (Tammelin 2014,
  regrets floored at zero), ``predictive=True`` gives predictive RM+ (Farina, Kroer and
  Sandholm, "Faster game solving via predictive Blackwell approachability", AAAI 2021).
- :class:`FTRL`: follow the regularized leader with the entropy regularizer (= Hedge,
  Freund and Schapire 1997) or the Euclidean one (projection onto the simplex);
  ``optimistic=True`` counts the last utility twice (Rakhlin and Sridharan 2013;
  Syrgkanis et al., "Fast convergence of regularized learning in games", NeurIPS 2015).
  :class:`Hedge` and :class:`OptimisticHedge` are named shorthands.
- :class:`FictitiousPlay`: Brown 1951 / Robinson 1951: each player best-responds to
  the others' empirical average strategies; the average strategy is the empirical one.
- :class:`ReplicatorDynamics`: Taylor and Jonker 1978, discretized by Euler steps.

The solvers share OpenSpiel's small verb set: ``step()``, ``current_policy()`` and
``average_policy()``. Strategies are lists of ``(B, A_i)`` tensors for batched games and
``(A_i,)`` for unbatched ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from games.errors import SolverError
from games.normal_form import NormalFormGame

Tensor = torch.Tensor

AVERAGING_POWERS = {"uniform": 0, "linear": 1, "quadratic": 2}


def project_to_simplex(points: Tensor) -> Tensor:
    """Euclidean projection of each row onto the probability simplex.

    Duchi, Shalev-Shwartz, Singer and Chandra, "Efficient projections onto the l1-ball
    for learning in high dimensions", ICML 2008 (sort-based algorithm).

    Shapes: ``points`` is ``(..., A)``; returns ``(..., A)``.
    """
    sorted_points, _ = points.sort(dim=-1, descending=True)
    cumulative = sorted_points.cumsum(-1) - 1
    ranks = torch.arange(1, points.shape[-1] + 1, device=points.device, dtype=points.dtype)
    condition = sorted_points - cumulative / ranks > 0
    rho = condition.to(points.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last True
    threshold = cumulative.gather(-1, rho) / (rho + 1).to(points.dtype)
    return (points - threshold).clamp_min(0)


def normalize_or_uniform(weights: Tensor) -> Tensor:
    """Rows of non-negative ``weights`` normalised to sum 1; rows of zeros become uniform.

    Shapes: ``(..., A)`` -> ``(..., A)``.
    """
    total = weights.sum(-1, keepdim=True)
    uniform = torch.full_like(weights, 1.0 / weights.shape[-1])
    return torch.where(total > 0, weights / total.clamp_min(torch.finfo(weights.dtype).tiny), uniform)


class NoRegretSolver:
    """Self-play of one no-regret learner per player on a (batched) normal-form game.

    Args:
        game: the game; a batched game is solved for every batch entry at once.
        alternating: update the players one after another within an iteration (each sees
            the others' newest strategies) instead of simultaneously.
        averaging: weight of iteration t in the average strategy: ``"uniform"`` (1),
            ``"linear"`` (t) or ``"quadratic"`` (t**2).
        initial_strategies: a starting profile; uniform play by default.
    """

    def __init__(
        self,
        game: NormalFormGame,
        *,
        alternating: bool = False,
        averaging: str = "uniform",
        initial_strategies: Sequence[Tensor] | None = None,
    ) -> None:
        if averaging not in AVERAGING_POWERS:
            raise SolverError(f"unknown averaging {averaging!r}; use one of {sorted(AVERAGING_POWERS)}")
        self.game = game
        self._batched_game = game.as_batched()
        self.alternating = alternating
        self.averaging_power = AVERAGING_POWERS[averaging]
        if initial_strategies is None:
            self._strategies = self._batched_game.uniform_strategies()
        else:
            checked = game.check_strategies(initial_strategies)
            self._strategies = [s if game.batched else s.unsqueeze(0) for s in checked]
        self._average_sums = [torch.zeros_like(s) for s in self._strategies]
        self.iteration = 0
        self._state = [self._initial_state(player, s) for player, s in enumerate(self._strategies)]

    # ---- the learner: subclasses implement these two hooks -----------------------------
    def _initial_state(self, player: int, strategy: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def _next_strategy(self, player: int, values: Tensor, strategy: Tensor) -> Tensor:
        """Updates ``self._state[player]`` with action values ``(B, A_i)``; returns the next strategy."""
        raise NotImplementedError

    # ---- the verbs ------------------------------------------------------------------
    def _values(self, player: int, strategies: Sequence[Tensor]) -> Tensor:
        return self._batched_game.player_action_values(strategies, player)

    def step(self) -> None:
        """One iteration: every player updates against the others, then the averages."""
        self.iteration += 1
        if self.alternating:
            for player in range(self.game.num_players):
                values = self._values(player, self._strategies)
                self._strategies[player] = self._next_strategy(player, values, self._strategies[player])
        else:
            values = [self._values(player, self._strategies) for player in range(self.game.num_players)]
            self._strategies = [
                self._next_strategy(player, v, s) for player, (v, s) in enumerate(zip(values, self._strategies))
            ]
        weight = float(self.iteration) ** self.averaging_power
        for total, strategy in zip(self._average_sums, self._strategies):
            total.add_(strategy, alpha=weight)

    def _unbatch(self, strategies: list[Tensor]) -> list[Tensor]:
        return strategies if self.game.batched else [s.squeeze(0) for s in strategies]

    def current_policy(self) -> list[Tensor]:
        """The strategies of the last iteration (the initial ones before any step)."""
        return self._unbatch([s.clone() for s in self._strategies])

    def average_policy(self) -> list[Tensor]:
        """The weighted average of the strategies of iterations 1..t (initial ones before any step)."""
        if self.iteration == 0:
            return self.current_policy()
        return self._unbatch([normalize_or_uniform(total) for total in self._average_sums])


class RegretMatching(NoRegretSolver):
    """Regret matching, RM+ (``plus=True``) and predictive RM+ (``predictive=True``).

    With cumulative regrets ``R`` and instantaneous regret ``r_t = v_t - <s_t, v_t>``:
    RM sets ``R += r_t``; RM+ sets ``R = max(R + r_t, 0)``. The next strategy is
    proportional to ``max(R, 0)``, or to ``max(R + r_t, 0)`` when predictive (the last
    regret is the prediction of the next one); uniform when that is all zero.

    NOTE: with ``plus=True, alternating=True, averaging="linear"`` this is the
    normal-form counterpart of CFR+, the fastest combination in practice on zero-sum games.
    """

    def __init__(self, game: NormalFormGame, *, plus: bool = False, predictive: bool = False, **kwargs) -> None:
        self.plus = plus
        self.predictive = predictive
        super().__init__(game, **kwargs)

    def _initial_state(self, player, strategy):
        return {"regrets": torch.zeros_like(strategy)}

    def _next_strategy(self, player, values, strategy):
        state = self._state[player]
        instant = values - (values * strategy).sum(-1, keepdim=True)
        regrets = state["regrets"] + instant
        if self.plus:
            regrets = regrets.clamp_min(0)
        state["regrets"] = regrets
        target = regrets + instant if self.predictive else regrets
        return normalize_or_uniform(target.clamp_min(0))


class FTRL(NoRegretSolver):
    """Follow the regularized leader on cumulative action values.

    ``regularizer="entropy"``: ``s ∝ exp(η U)`` (Hedge / multiplicative weights);
    ``regularizer="euclidean"``: ``s = Π_simplex(η U)``. ``U`` is the sum of past action
    values, plus the last one again when ``optimistic``. ``learning_rate`` is η.
    """

    def __init__(
        self,
        game: NormalFormGame,
        *,
        learning_rate: float = 0.1,
        regularizer: str = "entropy",
        optimistic: bool = False,
        **kwargs,
    ) -> None:
        if regularizer not in ("entropy", "euclidean"):
            raise SolverError(f"unknown regularizer {regularizer!r}; use 'entropy' or 'euclidean'")
        if not learning_rate > 0:
            raise SolverError(f"learning_rate must be positive, got {learning_rate}")
        self.learning_rate = learning_rate
        self.regularizer = regularizer
        self.optimistic = optimistic
        super().__init__(game, **kwargs)

    def _initial_state(self, player, strategy):
        return {"cumulative": torch.zeros_like(strategy)}

    def _next_strategy(self, player, values, strategy):
        state = self._state[player]
        state["cumulative"] = state["cumulative"] + values
        leader = state["cumulative"] + values if self.optimistic else state["cumulative"]
        if self.regularizer == "entropy":
            return torch.softmax(self.learning_rate * leader, dim=-1)
        return project_to_simplex(self.learning_rate * leader)


class Hedge(FTRL):
    """Hedge (multiplicative weights): FTRL with the entropy regularizer."""

    def __init__(self, game: NormalFormGame, *, learning_rate: float = 0.1, **kwargs) -> None:
        super().__init__(game, learning_rate=learning_rate, regularizer="entropy", **kwargs)


class OptimisticHedge(FTRL):
    """Optimistic Hedge: FTRL with the entropy regularizer and the last utility counted twice."""

    def __init__(self, game: NormalFormGame, *, learning_rate: float = 0.1, **kwargs) -> None:
        super().__init__(game, learning_rate=learning_rate, regularizer="entropy", optimistic=True, **kwargs)


class FictitiousPlay(NoRegretSolver):
    """Fictitious play: each player best-responds to the others' empirical average strategies.

    The current policy is the latest pure best response (lowest index on ties); the
    average policy is the empirical frequency of best responses, and starts from the
    initial profile (uniform by default), counted as iteration 0 like OpenSpiel's
    ``fictitious_play``.

    NOTE: fictitious play is not a no-regret algorithm, and in Shapley's game its
    averages do not converge; it is here because it is the classic baseline.
    """

    def __init__(self, game: NormalFormGame, **kwargs) -> None:
        if kwargs.get("averaging", "uniform") != "uniform":
            raise SolverError("fictitious play averages uniformly by definition")
        super().__init__(game, **kwargs)
        for total, strategy in zip(self._average_sums, self._strategies):
            total.add_(strategy)

    def _initial_state(self, player, strategy):
        return {}

    def _next_strategy(self, player, values, strategy):
        return torch.nn.functional.one_hot(values.argmax(-1), values.shape[-1]).to(values.dtype)

    def _values(self, player, strategies):
        averages = [normalize_or_uniform(total) for total in self._average_sums]
        return self._batched_game.player_action_values(averages, player)

    def average_policy(self) -> list[Tensor]:
        return self._unbatch([normalize_or_uniform(total) for total in self._average_sums])


class ReplicatorDynamics(NoRegretSolver):
    """Discrete replicator dynamics: ``s <- s + dt * s * (v - <s, v>)``.

    NOTE: an Euler step of the continuous dynamics; entries are floored at zero and each
    row renormalised, which only matters when ``dt`` times the payoff range exceeds 1.
    Strategies that start at zero stay at zero, as in the continuous dynamics.
    """

    def __init__(self, game: NormalFormGame, *, step_size: float = 0.01, **kwargs) -> None:
        if not step_size > 0:
            raise SolverError(f"step_size must be positive, got {step_size}")
        self.step_size = step_size
        super().__init__(game, **kwargs)

    def _initial_state(self, player, strategy):
        return {}

    def _next_strategy(self, player, values, strategy):
        advantage = values - (values * strategy).sum(-1, keepdim=True)
        return normalize_or_uniform((strategy + self.step_size * strategy * advantage).clamp_min(0))
