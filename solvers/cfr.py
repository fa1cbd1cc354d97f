"""The CFR family on compiled extensive-form games, in torch.

Counterfactual regret minimization: Zinkevich, Johanson, Bowling and Piccione, "Regret
minimization in games with incomplete information", NeurIPS 2007. Variants:

- CFR+: Tammelin, "Solving large imperfect information games using CFR+", 2014 (regrets
  floored at zero, alternating updates, linearly weighted averages);
- linear and discounted CFR: Brown and Sandholm, "Solving imperfect-information games via
  discounted regret minimization", AAAI 2019 (DCFR(alpha, beta, gamma); linear CFR is
  DCFR(1, 1, 1));
- predictive CFR+: Farina, Kroer and Sandholm, "Faster game solving via predictive
  Blackwell approachability", AAAI 2021 (the last instantaneous regret predicts the next).

One iteration consists of, for each player i (in turn with alternating updates, all
against the same profile with simultaneous ones):

1) the realization plans of the current profile and each terminal's reach
   (:mod:`solvers.sequence_form`);
2) the counterfactual values ``Q[I, a]`` of i's sequences and ``v[I] = sum_a s(a|I) Q[I, a]``
   of its infosets, folded bottom-up over i's infoset tree;
3) instantaneous regrets ``r = Q - v`` on the legal actions, added to the cumulative
   regrets (discounted for DCFR, floored at zero for RM+);
4) i's next strategy by regret matching on the cumulative regrets (plus ``r`` when
   predictive); uniform where no regret is positive;
5) the average strategy accumulates, with the iteration's weight, i's realization plan of
   the strategy used in this iteration (before step 4), as in the papers and OpenSpiel.

The tree is never walked node by node: each level of each infoset tree is one gather,
multiply and scatter on tensors of the game's device.
"""

from __future__ import annotations

import torch

from games.errors import SolverError
from games.extensive_form import ExtensiveFormGame
from solvers.sequence_form import (
    counterfactual_values,
    flat_realization_plans,
    intra_op_threads,
    layout,
    row_sums,
    terminal_own_reach,
)

Tensor = torch.Tensor


def regret_matching(regrets: Tensor, legal: Tensor, uniform: Tensor | None = None) -> Tensor:
    """Rows proportional to positive regrets; ``uniform`` (over legal actions) where none is positive.

    Shapes: ``regrets``, ``legal`` and ``uniform`` ``(num_infosets, max_actions)``."""
    positive = regrets.clamp_min(0) * legal
    total = row_sums(positive)[:, None]
    if uniform is None:
        uniform = legal / legal.sum(-1, keepdim=True)
    return torch.where(total > 0, positive / total.clamp_min(torch.finfo(regrets.dtype).tiny), uniform)


class TreeLearner:
    """What every iterative solver on a compiled tree holds, and how it reports policies.

    ``_strategy`` (the current behavioural strategy) and ``_average_sum`` (the weighted
    sum of realization plans that the average strategy normalizes) are
    ``(num_infosets, max_actions)``; subclasses define ``step()``.
    """

    def __init__(self, game: ExtensiveFormGame) -> None:
        self.game = game
        self.iteration = 0
        self._legal = game.legal_mask.to(game.dtype)
        self._owned = [(game.infoset_player == p)[:, None] for p in range(game.num_players)]
        self._uniform = game.uniform_strategy()
        self._strategy = self._uniform.clone()
        self._average_sum = torch.zeros_like(self._strategy)

    def current_policy(self) -> Tensor:
        """The current behavioural strategy, ``(num_infosets, max_actions)``."""
        return self._strategy.clone()

    def average_policy(self) -> Tensor:
        """The average strategy: each infoset's row of ``_average_sum`` normalized, uniform
        where it is 0 (never reached). ``(num_infosets, max_actions)``."""
        if self.iteration == 0:
            return self.current_policy()
        total = self._average_sum.sum(-1, keepdim=True)
        return torch.where(total > 0, self._average_sum / total.clamp_min(torch.finfo(total.dtype).tiny), self._uniform)


class CFRSolver(TreeLearner):
    """Counterfactual regret minimization with the family's options as flags.

    Args:
        game: a compiled game, any number of players, on any device.
        regret_matching_plus: floor cumulative regrets at zero (RM+).
        alternating: update players one after another (each sees the newest strategies).
        averaging: weight of iteration t in the average strategy: ``"uniform"`` (1),
            ``"linear"`` (t) or ``"quadratic"`` (t**2).
        discount: ``(alpha, beta, gamma)`` of DCFR: positive cumulative regrets are scaled
            by ``t^alpha / (t^alpha + 1)``, negative ones by ``t^beta / (t^beta + 1)``, and
            the average's running sum by ``((t - 1) / t)^gamma`` before iteration t adds to it.
        predictive: regret matching on cumulative plus last instantaneous regrets.
        threads: intra-op threads during an iteration; by default one for small games on
            the CPU (:func:`solvers.sequence_form.intra_op_threads`), else torch's setting.
        compile: fuse each iteration with ``torch.compile`` (about 4x faster per iteration on
            Leduc on the CPU, after a one-time compilation of 10-20 s; needs a C++
            compiler on the CPU, Triton on CUDA). NOTE: fused kernels add in another order,
            so iterates equal the eager ones only to rounding; RM+'s floor at zero lets
            those differences grow over hundreds of iterations into slightly different
            trajectories that converge alike.
    """

    def __init__(
        self,
        game: ExtensiveFormGame,
        *,
        regret_matching_plus: bool = False,
        alternating: bool = False,
        averaging: str = "uniform",
        discount: tuple[float, float, float] | None = None,
        predictive: bool = False,
        threads: int | None = None,
        compile: bool = False,
    ) -> None:
        powers = {"uniform": 0, "linear": 1, "quadratic": 2}
        if averaging not in powers:
            raise SolverError(f"unknown averaging {averaging!r}; use one of {sorted(powers)}")
        if discount is not None and len(discount) != 3:
            raise SolverError(f"discount needs (alpha, beta, gamma), got {discount!r}")
        super().__init__(game)
        self.regret_matching_plus = regret_matching_plus
        self.alternating = alternating
        self.averaging_power = powers[averaging]
        self.discount = discount
        self.predictive = predictive
        self.threads = threads if threads is not None else intra_op_threads(game)
        self._owned_real = [owned.to(game.dtype) for owned in self._owned]
        self._regrets = torch.zeros_like(self._strategy)
        self._last_regrets = torch.zeros_like(self._strategy)
        layout(game)  # built eagerly, outside what torch.compile traces
        self._iterate_function = self._iterate
        if compile:
            # On the CPU, inductor's C++ wrapper calls the fused kernels without a Python
            # call per kernel: on Leduc that is 25-30% of an iteration (measured).
            options = {"cpp_wrapper": True} if game.device.type == "cpu" else {}
            self._iterate_function = torch.compile(self._iterate, dynamic=False, options=options)

    def _update_player(
        self, player: int, strategy: Tensor, regrets: Tensor, last_regrets: Tensor, average_sum: Tensor,
        t: Tensor, weight: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Steps 1-5 for one player against ``strategy``; returns the updated state.

        Other players' rows of ``values`` and ``instant`` are 0, so their regrets change only
        under DCFR's discount (masked), and their strategy rows, which always equal regret
        matching on their own regrets, come out of step 4 unchanged: no per-player masking
        is needed elsewhere.
        """
        flat_plans = flat_realization_plans(self.game, strategy)
        plans = flat_plans[:-1].view(self.game.num_infosets, self.game.max_actions)
        # Step 5 (textbook and OpenSpiel): the average is over the strategies *used* in
        # each iteration, weighted by the player's own reach.
        average_sum = average_sum + (weight * plans) * self._owned_real[player]
        own_reach = terminal_own_reach(self.game, flat_plans)
        values, infoset_values, _ = counterfactual_values(self.game, strategy, player, own_reach)
        instant = (values - infoset_values[:, None]) * self._legal
        updated = regrets + instant
        if self.discount is not None:
            alpha, beta, _ = self.discount
            positive_scale = t**alpha / (t**alpha + 1)
            negative_scale = t**beta / (t**beta + 1)
            updated = torch.where(updated > 0, updated * positive_scale, updated * negative_scale)
            updated = torch.where(self._owned[player], updated, regrets)
        if self.regret_matching_plus:
            updated = updated.clamp_min(0)
        regrets = updated
        if self.predictive:
            last_regrets = torch.where(self._owned[player], instant, last_regrets)
        target = regrets + last_regrets if self.predictive else regrets
        return regret_matching(target, self._legal, self._uniform), regrets, last_regrets, average_sum

    def _iterate(
        self, strategy: Tensor, regrets: Tensor, last_regrets: Tensor, average_sum: Tensor, t: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One iteration as a pure function of tensors (``t`` is the iteration number, a
        0-dim tensor), so that ``torch.compile`` can fuse it."""
        if self.discount is not None:
            # DCFR: the running sum of iterations 1..t-1 is scaled by ((t-1)/t)^gamma.
            average_sum = average_sum * ((t - 1) / t) ** self.discount[2]
        weight = t**self.averaging_power
        start = strategy
        for player in range(self.game.num_players):
            against = strategy if self.alternating else start
            strategy, regrets, last_regrets, average_sum = self._update_player(
                player, against, regrets, last_regrets, average_sum, t, weight
            )
        return strategy, regrets, last_regrets, average_sum

    def step(self) -> None:
        """One iteration: every player's update (steps 1-5)."""
        self.iteration += 1
        t = torch.tensor(float(self.iteration), dtype=self.game.dtype, device=self.game.device)
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            self._strategy, self._regrets, self._last_regrets, self._average_sum = self._iterate_function(
                self._strategy, self._regrets, self._last_regrets, self._average_sum, t
            )
        finally:
            torch.set_num_threads(previous)


class CFRPlusSolver(CFRSolver):
    """CFR+: RM+, alternating updates, linear averaging (Tammelin 2014)."""

    def __init__(self, game: ExtensiveFormGame, *, threads: int | None = None, compile: bool = False) -> None:
        super().__init__(
            game, regret_matching_plus=True, alternating=True, averaging="linear", threads=threads, compile=compile
        )


class LinearCFRSolver(CFRSolver):
    """Linear CFR: DCFR(1, 1, 1), alternating updates (Brown and Sandholm 2019)."""

    def __init__(self, game: ExtensiveFormGame, *, threads: int | None = None, compile: bool = False) -> None:
        super().__init__(game, alternating=True, discount=(1.0, 1.0, 1.0), threads=threads, compile=compile)


class DCFRSolver(CFRSolver):
    """Discounted CFR with the paper's recommended (alpha, beta, gamma) = (1.5, 0, 2)."""

    def __init__(
        self, game: ExtensiveFormGame, alpha: float = 1.5, beta: float = 0.0, gamma: float = 2.0, *,
        threads: int | None = None, compile: bool = False,
    ) -> None:
        super().__init__(game, alternating=True, discount=(alpha, beta, gamma), threads=threads, compile=compile)


class PCFRPlusSolver(CFRSolver):
    """Predictive CFR+: predictive RM+, alternating updates, quadratic averaging (Farina et al. 2021)."""

    def __init__(self, game: ExtensiveFormGame, *, threads: int | None = None, compile: bool = False) -> None:
        super().__init__(
            game, regret_matching_plus=True, alternating=True, averaging="quadratic", predictive=True,
            threads=threads, compile=compile,
        )
