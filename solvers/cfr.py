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
multiply and scatter on tensors of the game's device. The state lives on each player's
legal sequences only (:class:`solvers.sequence_form.Treeplex`), so padding costs nothing
(on liars_dice, 49,140 legal sequences against 294,912 padded entries), and each player's
realization plan is rebuilt only when its strategy changes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from games.errors import SolverError
from games.extensive_form import ExtensiveFormGame
from solvers.recording import Recorder
from solvers.sequence_form import (
    Treeplex,
    intra_op_threads,
    nash_conv,
    nash_conv_of_plans,
    sequence_gradient,
    terminal_weights,
    treeplexes,
)

Tensor = torch.Tensor


class TreeLearner:
    """What every iterative solver on a compiled tree holds, and how it reports policies.

    Subclasses define ``step()``. ``_strategy`` (the current behavioural strategy) and
    ``_average_sum`` (the weighted sum of realization plans that the average strategy
    normalizes) are ``(num_infosets, max_actions)``: attributes that start uniform and
    zero, or, with ``padded_state=False``, properties of a subclass that keeps its state
    in another layout.
    """

    def __init__(self, game: ExtensiveFormGame, *, padded_state: bool = True) -> None:
        self.game = game
        self.iteration = 0
        self._uniform = game.uniform_strategy()
        if padded_state:
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
        average_sum = self._average_sum
        total = average_sum.sum(-1, keepdim=True)
        return torch.where(total > 0, average_sum / total.clamp_min(torch.finfo(total.dtype).tiny), self._uniform)

    def nash_conv(self) -> float:
        """NashConv of :meth:`average_policy` (:func:`solvers.sequence_form.nash_conv`)."""
        with torch.inference_mode():
            return float(nash_conv(self.game, self.average_policy()))


def regret_matching(treeplex: Treeplex, regrets: Tensor, *, floored: bool = False) -> Tensor:
    """One player's strategy proportional to its positive regrets, uniform at the infosets
    where none is positive. Shapes: ``(treeplex.size,)`` both, on its packed sequences.
    ``floored`` says the regrets are already at least 0 (RM+), which saves a pass.
    Not differentiable: where an infoset's total is 0 the quotient is NaN before ``where``
    discards it."""
    positive = regrets if floored else regrets.clamp_min(0)
    total = treeplex.segment_sums(positive).index_select(0, treeplex.sequence_infoset)
    # ``> 0.0``, not ``> 0``: an integer scalar is converted to the tensor's dtype on every call.
    return torch.where(total > 0.0, positive / total, treeplex.uniform)


class _PlayerState(NamedTuple):
    """One player's CFR state on its packed sequences (:class:`~solvers.sequence_form.Treeplex`):
    the current strategy, cumulative and last instantaneous regrets and the average's
    weighted sum ``(size,)``, and the realization plan of the strategy ``(size + 1,)``."""

    strategy: Tensor
    regrets: Tensor
    last_regrets: Tensor
    average_sum: Tensor
    plan: Tensor


def _flattened(states: list[_PlayerState]) -> list[Tensor]:
    """Every player's state tensors in one list, player by player (what a record or graph takes)."""
    return [tensor for state in states for tensor in state]


def _grouped(flat: list[Tensor] | tuple[Tensor, ...]) -> list[_PlayerState]:
    """The inverse of :func:`_flattened`."""
    fields = len(_PlayerState._fields)
    return [_PlayerState(*flat[i : i + fields]) for i in range(0, len(flat), fields)]


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
        compile: fuse each iteration with ``torch.compile``, after a one-time compilation of
            2-20 s (needs a C++ compiler on the CPU, Triton on CUDA). Whether it pays depends
            on the CPU: on Leduc it has measured 4x faster than an eager iteration on one
            2-core machine, and slower than the replayed trace (``trace``) on another.
            NOTE: fused kernels add in another order,
            so iterates equal the eager ones only to rounding; RM+'s floor at zero lets
            those differences grow over hundreds of iterations into slightly different
            trajectories that converge alike.
        trace: without ``compile``, record the first iteration's tensor operations, and the
            first NashConv check's, and replay the records from then on
            (:class:`solvers.recording.Recorder`): the same iterates bit for bit, without
            Python's cost per call (an eager iteration on Leduc is about 80 small calls;
            replayed, it runs about 1.8x faster on the CPU, measured).
        cuda_graph: on a CUDA device, capture one iteration in a CUDA graph and replay the
            graph each step, so the GPU runs a whole iteration without a launch per kernel.
            The state then lives in fixed buffers that each replay updates in place. NOTE:
            CUDA's scatter-adds add in any order, so iterates equal the eager ones to
            rounding; opt-in because no GPU has run this path yet (``tests/test_devices.py``
            checks it where one is present).
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
        trace: bool = True,
        cuda_graph: bool = False,
    ) -> None:
        powers = {"uniform": 0, "linear": 1, "quadratic": 2}
        if averaging not in powers:
            raise SolverError(f"unknown averaging {averaging!r}; use one of {sorted(powers)}")
        if discount is not None and len(discount) != 3:
            raise SolverError(f"discount needs (alpha, beta, gamma), got {discount!r}")
        super().__init__(game, padded_state=False)
        self.regret_matching_plus = regret_matching_plus
        self.alternating = alternating
        self.averaging_power = powers[averaging]
        self.discount = discount
        self.predictive = predictive
        self.threads = threads if threads is not None else intra_op_threads(game)
        self._treeplexes = treeplexes(game)  # built eagerly, outside what torch.compile traces
        terminal_weights(game)  # cached on the game, so built here and not while an iteration is recorded
        self._state = [
            _PlayerState(tp.uniform.clone(), *(torch.zeros_like(tp.uniform) for _ in range(3)),
                         tp.realization_plan(tp.uniform))
            for tp in self._treeplexes
        ]
        # Each player's first infoset's sequences lead its packed vectors (0 for a player who never acts).
        self._first_infoset_sizes = [int((tp.levels[0].segment == 0).sum()) if tp.levels else 0 for tp in self._treeplexes]
        self._recorder = Recorder(trace)
        self._iterate_function = self._replay if self._recorder.enabled else self._iterate
        if cuda_graph and compile:
            raise SolverError("cuda_graph and compile are two ways to run an iteration; choose one")
        if cuda_graph and game.device.type != "cuda":
            raise SolverError(f"cuda_graph needs a game on a CUDA device; this one is on {game.device}")
        self._graph: tuple[Any, list[Tensor], Tensor] | None = None  # (CUDA graph, state buffers, t)
        if cuda_graph:
            self._iterate_function = self._graph_replay
        self.compiled = compile
        if compile:
            # On the CPU, inductor's C++ wrapper calls the fused kernels without a Python
            # call per kernel: on Leduc that is 25-30% of an iteration (measured).
            options = {"cpp_wrapper": True} if game.device.type == "cpu" else {}
            self._iterate_function = torch.compile(self._iterate, dynamic=False, options=options)

    def _unpacked(self, field: str) -> Tensor:
        rows = torch.zeros(self.game.num_infosets, self.game.max_actions, dtype=self.game.dtype, device=self.game.device)
        for treeplex, state in zip(self._treeplexes, self._state):
            treeplex.unpack_into(rows, getattr(state, field))
        return rows

    @property
    def _strategy(self) -> Tensor:
        return self._unpacked("strategy")

    @property
    def _average_sum(self) -> Tensor:
        return self._unpacked("average_sum")

    def nash_conv(self) -> float:
        """NashConv of :meth:`average_policy`, from each player's average realization plan.

        ``average_sum`` is a weighted sum of realization plans, so divided by the total weight
        ``W`` it is the plan of the average strategy (where a strategy is normalized,
        ``sum_a R[I, a]`` is the parent's ``R``, and the quotients telescope). ``W`` is what
        the plan puts on the sequences of any infoset that follows the empty sequence: the
        first infoset of the first level. This skips building the behavioural strategy and
        its plans, about half the cost of a check on Leduc."""
        if self.iteration == 0:
            return super().nash_conv()

        def average_nash_conv(*average_sums: Tensor) -> Tensor:
            plans = []
            for first, average_sum in zip(self._first_infoset_sizes, average_sums):
                plan = average_sum / average_sum[:first].sum() if first else average_sum
                plans.append(torch.cat([plan, average_sum.new_ones(1)]))
            return nash_conv_of_plans(self.game, plans)

        with torch.inference_mode():
            return float(self._recorder("nash_conv", average_nash_conv, tuple(state.average_sum for state in self._state)))

    def _update_player(
        self, player: int, state: _PlayerState, others: list[Tensor], t: Tensor, weight: Tensor
    ) -> _PlayerState:
        """Steps 1-5 for one player whose opponents play the realization plans ``others``
        (``(size + 1,)`` each, this player's own entry unused); returns its new state."""
        treeplex = self._treeplexes[player]
        values = sequence_gradient(self.game, others, player)
        values, infoset_values = treeplex.fold(values, state.strategy, root=False)  # the root's value is unused
        instant = values[:-1] - infoset_values.index_select(0, treeplex.sequence_infoset)
        regrets = state.regrets + instant
        if self.discount is not None:
            alpha, beta, _ = self.discount
            positive_scale = t**alpha / (t**alpha + 1)
            negative_scale = t**beta / (t**beta + 1)
            regrets = torch.where(regrets > 0, regrets * positive_scale, regrets * negative_scale)
        if self.regret_matching_plus:
            regrets = regrets.clamp_min_(0)  # a fresh tensor: in place saves an allocation
        last_regrets = instant if self.predictive else state.last_regrets
        if self.predictive:
            strategy = regret_matching(treeplex, regrets + last_regrets)
        else:
            strategy = regret_matching(treeplex, regrets, floored=self.regret_matching_plus)
        # Step 5 (textbook and OpenSpiel): the average is over the strategies *used* in
        # each iteration, weighted by the player's own reach: the plan before step 4.
        average_sum = state.average_sum.addcmul(state.plan[:-1], weight)
        return _PlayerState(strategy, regrets, last_regrets, average_sum, treeplex.realization_plan(strategy))

    def _iterate(self, states: list[_PlayerState], t: Tensor) -> list[_PlayerState]:
        """One iteration as a pure function of tensors (``t`` is the iteration number, a
        0-dim tensor), so that ``torch.compile`` can fuse it."""
        if self.discount is not None:
            # DCFR: the running sum of iterations 1..t-1 is scaled by ((t-1)/t)^gamma.
            scale = ((t - 1) / t) ** self.discount[2]
            states = [state._replace(average_sum=state.average_sum * scale) for state in states]
        weight = t if self.averaging_power == 1 else t**self.averaging_power
        start = [state.plan for state in states]
        states = list(states)
        for player in range(self.game.num_players):
            others = [state.plan for state in states] if self.alternating else start
            states[player] = self._update_player(player, states[player], others, t, weight)
        return states

    def _replay(self, states: list[_PlayerState], t: Tensor) -> list[_PlayerState]:
        """:meth:`_iterate`, replayed from its record (made on the first call)."""

        def flat_iterate(*tensors: Tensor) -> tuple[Tensor, ...]:
            *flat, now = tensors
            return tuple(_flattened(self._iterate(_grouped(flat), now)))

        return _grouped(self._recorder("iterate", flat_iterate, (*_flattened(states), t)))

    def _graph_replay(self, states: list[_PlayerState], t: Tensor) -> list[_PlayerState]:
        """:meth:`_iterate` as a CUDA graph, captured on the first call, that updates the state's
        buffers in place. Follows ``torch.cuda.graphs``' recipe: one warm-up iteration on a side
        stream (on copies, so the state does not advance), then the capture."""
        if self._graph is None:
            buffers = [tensor.clone() for tensor in _flattened(states)]
            now = t.clone()

            def iterate_in_place(flat: list[Tensor]) -> None:
                for buffer, value in zip(flat, _flattened(self._iterate(_grouped(flat), now))):
                    if value is not buffer:
                        buffer.copy_(value)

            side = torch.cuda.Stream(device=t.device)
            side.wait_stream(torch.cuda.current_stream(t.device))
            with torch.cuda.stream(side):
                iterate_in_place([tensor.clone() for tensor in buffers])
            torch.cuda.current_stream(t.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                iterate_in_place(buffers)
            self._graph = (graph, buffers, now)
        graph, buffers, now = self._graph
        for buffer, tensor in zip(buffers, _flattened(states)):
            if tensor is not buffer:
                buffer.copy_(tensor)  # the first call's state, or one set from outside
        now.copy_(t)
        graph.replay()
        return _grouped(buffers)

    def step(self) -> None:
        """One iteration: every player's update (steps 1-5)."""
        self.iteration += 1
        t = torch.full((), self.iteration, dtype=self.game.dtype, device=self.game.device)  # cheaper than torch.tensor
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            # Nothing here is differentiated; inference mode halves torch's cost per call
            # (measured on Leduc: 3.3 against 1.6 us for a multiply), which an iteration of a
            # few dozen calls on small tensors is made of. Policies are read out of it as
            # ordinary tensors. A compiled iteration keeps grad mode off instead: inference
            # tensors fail its guards and recompile it, and its fused kernels run slower on them.
            with torch.inference_mode(not self.compiled), torch.no_grad():
                self._state = self._iterate_function(self._state, t)
        finally:
            torch.set_num_threads(previous)


class CFRPlusSolver(CFRSolver):
    """CFR+: RM+, alternating updates, linear averaging (Tammelin 2014). ``options``: how
    :class:`CFRSolver` runs (``threads``, ``compile``, ``trace``, ``cuda_graph``)."""

    def __init__(self, game: ExtensiveFormGame, **options: Any) -> None:
        super().__init__(game, regret_matching_plus=True, alternating=True, averaging="linear", **options)


class LinearCFRSolver(CFRSolver):
    """Linear CFR: DCFR(1, 1, 1), alternating updates (Brown and Sandholm 2019)."""

    def __init__(self, game: ExtensiveFormGame, **options: Any) -> None:
        super().__init__(game, alternating=True, discount=(1.0, 1.0, 1.0), **options)


class DCFRSolver(CFRSolver):
    """Discounted CFR with the paper's recommended (alpha, beta, gamma) = (1.5, 0, 2)."""

    def __init__(self, game: ExtensiveFormGame, alpha: float = 1.5, beta: float = 0.0, gamma: float = 2.0,
                 **options: Any) -> None:
        super().__init__(game, alternating=True, discount=(alpha, beta, gamma), **options)


class PCFRPlusSolver(CFRSolver):
    """Predictive CFR+: predictive RM+, alternating updates, quadratic averaging (Farina et al. 2021)."""

    def __init__(self, game: ExtensiveFormGame, **options: Any) -> None:
        super().__init__(game, regret_matching_plus=True, alternating=True, averaging="quadratic", predictive=True,
                         **options)
