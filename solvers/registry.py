"""Every normal-form solver behind one call: ``solve(game, solver="auto", ...)``.

The names are those of ``gamelab solve --solver``. ``auto`` picks a sound method:

- 2-player zero-sum (or constant-sum): ``zero-sum`` (interior point + exact polish, exact);
- 2-player general-sum: ``lemke-howson`` (gamelab's batched Lemke-Howson, exact; if it
  runs out of pivots, pygambit's ``lcp`` when installed);
- N players: ``nash-sgd`` (approximate; its NashConv is reported). pygambit's ``logit``
  and ``gnm`` are available by name, but on some files (``2x2x2.nfg``) logit stops at a
  profile with regret 0.2 and gnm runs for minutes, so ``auto`` does not pick them.

Extensive-form games (:class:`ExtensiveFormGame`) take the CFR family (``cfr``, ``cfr+``,
``lcfr``, ``dcfr``, ``pcfr+``), Monte Carlo CFR (``mccfr-es``, ``mccfr-os``), FTRL with
dilated regularizers (``dilated-ftrl``, ``balanced-ftrl``) and ``lp`` (the sequence-form
LP, 2-player zero-sum); ``auto`` is ``cfr+``. Their ``strategies`` is one behavioural
strategy ``(num_infosets, max_actions)``. An iteration of the sampling solvers updates
from samples only, so they need many more iterations than CFR; ``seed`` seeds them.

Iterative solvers (regret dynamics, fictitious play, replicator, Nash-SGD, CFR) record NashConv
every ``eval_every`` iterations in ``history`` and stop early at ``target_nash_conv``. The
result's ``seconds`` counts the solve alone, not loading the game.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from games.errors import SolverError
from games.extensive_form import ExtensiveFormGame
from games.normal_form import NormalFormGame
from solvers import cfr, ftrl, mccfr, regret, sequence_form
from solvers.exploitability import cce_gap, ce_gap, marginals, nash_conv

Tensor = torch.Tensor


@dataclass
class SolveResult:
    """What a solver found for one (unbatched) game.

    ``strategies``: N tensors ``(A_i,)`` for a normal-form game; for an extensive-form
    game, one behavioural strategy ``(num_infosets, max_actions)`` in a list. ``joint``: the correlated distribution
    ``(A_1, ..., A_N)`` for ``ce``/``cce`` (whose ``strategies`` are its marginals).
    ``history``: ``(iteration, NashConv)`` pairs of iterative solvers, or of ``ce``'s gap.
    """

    solver: str
    strategies: list[Tensor]
    nash_conv: float
    iterations: int
    seconds: float
    history: list[tuple[int, float]] = field(default_factory=list)
    value: list[float] | None = None
    joint: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


ITERATIVE: dict[str, tuple[str, Callable[[NormalFormGame], regret.NoRegretSolver]]] = {
    "rm": ("regret matching, uniform averaging", lambda g: regret.RegretMatching(g)),
    "rm+": ("RM+ with alternating updates and linear averaging", lambda g: regret.RegretMatching(g, plus=True, alternating=True, averaging="linear")),
    "prm+": ("predictive RM+ with alternating updates and linear averaging", lambda g: regret.RegretMatching(g, plus=True, predictive=True, alternating=True, averaging="linear")),
    "hedge": ("Hedge (entropic FTRL), learning rate 0.1", lambda g: regret.Hedge(g)),
    "optimistic-hedge": ("optimistic Hedge, learning rate 0.1", lambda g: regret.OptimisticHedge(g)),
    "ftrl-euclidean": ("FTRL with the Euclidean regularizer, learning rate 0.1", lambda g: regret.FTRL(g, regularizer="euclidean")),
    "fictitious-play": ("fictitious play", lambda g: regret.FictitiousPlay(g)),
    "replicator": ("discrete replicator dynamics, step 0.01", lambda g: regret.ReplicatorDynamics(g)),
}

EXACT = {
    "zero-sum": "2-player zero-sum: batched interior point + exact support polish (HiGHS fallback)",
    "lp": "2-player zero-sum: the minimax LP (sequence-form LP for extensive-form games), HiGHS",
    "lemke-howson": "2-player: batched Lemke-Howson in torch (exact)",
    "ce": "correlated equilibrium of maximum welfare (LP, HiGHS)",
    "cce": "coarse correlated equilibrium of maximum welfare (LP, HiGHS)",
    "nash-sgd": "approximate Nash by stochastic optimization of a Nash loss (Gemp et al. 2024)",
    "gambit-lcp": "2-player: Lemke-Howson through pygambit (exact)",
    "gambit-enummixed": "2-player: all extreme equilibria through pygambit; returns the first",
    "gambit-enumpure": "any N: pure equilibria through pygambit; returns the first",
    "gambit-logit": "any N: logit QRE path-following through pygambit",
    "gambit-gnm": "any N: global Newton through pygambit",
}

EXTENSIVE: dict[str, tuple[str, Callable[[ExtensiveFormGame, int], Any]]] = {
    "cfr": ("CFR (Zinkevich et al. 2007), alternating updates", lambda g, seed: cfr.CFRSolver(g, alternating=True)),
    "cfr+": ("CFR+ (Tammelin 2014): RM+, alternating, linear averaging", lambda g, seed: cfr.CFRPlusSolver(g)),
    "lcfr": ("linear CFR (Brown and Sandholm 2019)", lambda g, seed: cfr.LinearCFRSolver(g)),
    "dcfr": ("discounted CFR (1.5, 0, 2) (Brown and Sandholm 2019)", lambda g, seed: cfr.DCFRSolver(g)),
    "pcfr+": ("predictive CFR+ (Farina et al. 2021)", lambda g, seed: cfr.PCFRPlusSolver(g)),
    "mccfr-es": ("external-sampling Monte Carlo CFR (Lanctot et al. 2009), 16 traversals per iteration",
                 lambda g, seed: mccfr.ExternalSamplingMCCFR(g, samples=16, seed=seed)),
    "mccfr-os": ("outcome-sampling Monte Carlo CFR (Lanctot et al. 2009), 256 trajectories per iteration",
                 lambda g, seed: mccfr.OutcomeSamplingMCCFR(g, samples=256, seed=seed)),
    "dilated-ftrl": ("optimistic FTRL with the balanced dilated entropy, full information",
                     lambda g, seed: ftrl.DilatedFTRL(g)),
    "balanced-ftrl": ("Balanced FTRL (Fiegel et al. 2023) from 64 sampled trajectories per iteration",
                      lambda g, seed: ftrl.BalancedFTRL(g, seed=seed)),
}

DEFAULT_ITERATIONS = 1000


def names() -> list[str]:
    """Every solver name, ``auto`` first."""
    return ["auto"] + list(ITERATIVE) + list(EXACT) + list(EXTENSIVE)


def describe() -> dict[str, str]:
    """Solver name -> one-line description."""
    out = {"auto": "pick a sound method for the game (see solvers.registry)"}
    out.update({name: text for name, (text, _) in ITERATIVE.items()})
    out.update(EXACT)
    out.update({name: f"extensive-form: {text}" for name, (text, _) in EXTENSIVE.items()})
    return out


def has_pygambit() -> bool:
    try:
        import pygambit  # noqa: F401
    except ImportError:
        return False
    return True


def auto_solver(game: NormalFormGame | ExtensiveFormGame) -> str:
    """The solver ``auto`` stands for on this game."""
    if isinstance(game, ExtensiveFormGame):
        return "cfr+"
    if game.num_players == 2 and game.is_constant_sum():
        return "zero-sum"
    if game.num_players == 2:
        return "lemke-howson"
    return "nash-sgd"


def solve(
    game: NormalFormGame,
    solver: str = "auto",
    *,
    iterations: int | None = None,
    target_nash_conv: float | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> SolveResult:
    """Solves one game with the named solver.

    Args:
        game: an unbatched game (use the solver classes directly for batches).
        solver: a name from :func:`names`.
        iterations: the iteration budget of iterative solvers (default 1000).
        target_nash_conv: stop an iterative solver once NashConv is at most this.
        seed: for solvers that sample.
        eval_every: iterations between NashConv checks (default: 200 checks per run).
        callback: ``callback(iteration, nash_conv)`` after every check, for progress bars.
    """
    if solver not in names():
        raise SolverError(f"unknown solver {solver!r}; known: {', '.join(names())}")
    if solver == "auto":
        solver = auto_solver(game)
    if iterations is not None and iterations < 1:
        raise SolverError(f"iterations must be positive, got {iterations}")
    budget = iterations or DEFAULT_ITERATIONS
    every = eval_every or max(1, budget // 200)
    if isinstance(game, ExtensiveFormGame):
        return _solve_extensive(game, solver, budget, every, target_nash_conv, callback, seed)
    if solver in EXTENSIVE:
        raise SolverError(f"{solver} solves extensive-form games; this is a normal-form game")
    if game.batched:
        raise SolverError("solve() takes one game; index the batch, or use the solver classes for batches")
    start = time.perf_counter()
    history: list[tuple[int, float]] = []
    extra: dict[str, Any] = {}
    joint = None
    done_iterations = 1

    if solver in ITERATIVE:
        learner = ITERATIVE[solver][1](game)
        history = _run_learner(learner, lambda s: float(nash_conv(game, s)), budget, every, target_nash_conv, callback)
        strategies, done_iterations = learner.average_policy(), learner.iteration
    elif solver == "zero-sum":
        from solvers.zero_sum import solve_zero_sum

        solution, report = solve_zero_sum(game, tolerance=target_nash_conv or 1e-9)
        strategies, done_iterations = solution.strategies, report.iterations
        extra.update(polished=report.polished, lp_fallback=report.lp_fallback)
    elif solver == "lemke-howson":
        from solvers.lemke_howson import lemke_howson

        found = lemke_howson(game)
        strategies, done_iterations = found.strategies, found.pivots
        if not bool(found.converged) and has_pygambit():
            from solvers.gambit import gambit_equilibria

            strategies = gambit_equilibria(game, "lcp")[0]
            extra["fallback"] = "gambit-lcp"
        elif not bool(found.converged):
            raise SolverError("Lemke-Howson ran out of pivots; install pygambit for its lcp fallback")
    elif solver == "lp":
        from solvers.lp import zero_sum_lp

        strategies = zero_sum_lp(game).strategies
    elif solver in ("ce", "cce"):
        from solvers.lp import coarse_correlated_equilibrium, correlated_equilibrium

        joint = (correlated_equilibrium if solver == "ce" else coarse_correlated_equilibrium)(game)
        strategies = marginals(joint, game.num_players)
        extra["gap"] = float((ce_gap if solver == "ce" else cce_gap)(game, joint))
    elif solver == "nash-sgd":
        from solvers.nash_sgd import nash_sgd

        def report_progress(iteration: int, profile: list[Tensor]) -> None:
            gap = float(nash_conv(game, profile))
            history.append((iteration, gap))
            if callback is not None:
                callback(iteration, gap)

        strategies = nash_sgd(game, iterations=budget, seed=seed, callback=report_progress, callback_every=every)
        done_iterations = budget
    else:
        from solvers.gambit import gambit_equilibria

        equilibria = gambit_equilibria(game, solver.removeprefix("gambit-"))
        if not equilibria:
            raise SolverError(f"{solver} found no equilibrium")
        strategies = equilibria[0]
        extra["equilibria_found"] = len(equilibria)
    seconds = time.perf_counter() - start
    final = float(nash_conv(game, strategies))
    if not history or history[-1][0] != done_iterations:
        history.append((done_iterations, final))
    return SolveResult(
        solver=solver,
        strategies=[s.detach() for s in strategies],
        nash_conv=final,
        iterations=done_iterations,
        seconds=seconds,
        history=history,
        value=game.expected_payoffs(strategies).tolist() if joint is None else (joint * game.payoffs).flatten(1).sum(-1).tolist(),
        joint=joint,
        extra=extra,
    )


def _run_learner(
    learner: Any,
    measure: Callable[[Any], float],
    budget: int,
    every: int,
    target_nash_conv: float | None,
    callback: Callable[[int, float], None] | None,
) -> list[tuple[int, float]]:
    """Steps ``learner`` (a normal-form no-regret solver or a CFR solver) up to ``budget``
    iterations, measuring its average policy's NashConv at iteration 0 and every ``every``
    iterations; stops at ``target_nash_conv``. Returns the ``(iteration, NashConv)`` history."""
    history = [(0, measure(learner.average_policy()))]
    while learner.iteration < budget:
        learner.step()
        if learner.iteration % every == 0 or learner.iteration == budget:
            gap = measure(learner.average_policy())
            history.append((learner.iteration, gap))
            if callback is not None:
                callback(learner.iteration, gap)
            if target_nash_conv is not None and gap <= target_nash_conv:
                break
    return history


def _solve_extensive(
    game: ExtensiveFormGame,
    solver: str,
    budget: int,
    every: int,
    target_nash_conv: float | None,
    callback: Callable[[int, float], None] | None,
    seed: int = 0,
) -> SolveResult:
    """An iterative solver, or the sequence-form LP, on a compiled extensive-form game."""
    if solver == "lp":
        from solvers.lp import sequence_form_lp

        start = time.perf_counter()
        solution = sequence_form_lp(game)
        seconds = time.perf_counter() - start
        final = float(sequence_form.nash_conv(game, solution.strategy))
        return SolveResult(
            solver=solver, strategies=[solution.strategy], nash_conv=final, iterations=1, seconds=seconds,
            history=[(1, final)], value=sequence_form.expected_values(game, solution.strategy).tolist(),
        )
    if solver not in EXTENSIVE:
        raise SolverError(
            f"{solver} solves normal-form games; for extensive-form games use one of {', '.join(EXTENSIVE)} or lp"
        )
    start = time.perf_counter()
    learner = EXTENSIVE[solver][1](game, seed)
    history = _run_learner(
        learner, lambda s: float(sequence_form.nash_conv(game, s)), budget, every, target_nash_conv, callback
    )
    seconds = time.perf_counter() - start
    strategy = learner.average_policy()
    final = float(sequence_form.nash_conv(game, strategy))
    if history[-1][0] != learner.iteration:
        history.append((learner.iteration, final))
    return SolveResult(
        solver=solver,
        strategies=[strategy],
        nash_conv=final,
        iterations=learner.iteration,
        seconds=seconds,
        history=history,
        value=sequence_form.expected_values(game, strategy).tolist(),
    )
