"""The solver table, and every solver behind one call: ``solve(game, solver="auto", ...)``.

``SOLVERS`` is the one list of solvers: a :class:`SolverSpec` per name, with the kinds of
game it takes, whether it is iterative, whether it is exact, a one-line description and
a factory. ``solve`` dispatches on it, ``gamelab solve --solver`` and ``gamelab solvers``
read it, and PSRO's meta-solvers are picked from it by name.

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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from games.errors import SolverError, did_you_mean
from games.extensive_form import ExtensiveFormGame
from games.normal_form import NormalFormGame
from solvers import DEFAULT_ITERATIONS, cfr, ftrl, mccfr, regret, sequence_form
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


NORMAL_FORM = "normal-form"
EXTENSIVE_FORM = "extensive-form"


@dataclass(frozen=True)
class SolverSpec:
    """One row of the solver table.

    ``factory(game, seed)`` builds the solver for one game. What it returns is either a
    *learner* (``step()``, ``average_policy()``, ``iteration``: the regret dynamics and the
    CFR family), which :func:`solve` steps and measures, or a *run*,
    ``run(budget, every, target_nash_conv, callback) -> Outcome``, for the other methods.
    """

    name: str
    kinds: tuple[str, ...]
    """The kinds of game it takes: ``normal-form`` and/or ``extensive-form``."""
    iterative: bool
    """Whether it runs for an iteration budget (and shows progress)."""
    exact: bool
    """Whether its answer is an exact equilibrium (up to floating point), not an approximation."""
    description: str
    factory: Callable[[Any, int], Any]


@dataclass
class Outcome:
    """What a non-learner run found: strategies, iterations or pivots, and its own extras."""

    strategies: list[Tensor]
    iterations: int = 1
    history: list[tuple[int, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    joint: Tensor | None = None


def _run(function: Callable[..., Outcome]) -> Callable[[Any, int], Callable[..., Outcome]]:
    """A factory whose run is ``function(game, seed, budget, every, target, callback)``."""
    def factory(game: Any, seed: int) -> Callable[..., Outcome]:
        return lambda budget, every, target, callback: function(game, seed, budget, every, target, callback)

    return factory


def _zero_sum(game: NormalFormGame, seed: int, budget: int, every: int, target: float | None, callback: Any) -> Outcome:
    from solvers.zero_sum import solve_zero_sum

    solution, report = solve_zero_sum(game, tolerance=target or 1e-9)
    return Outcome(solution.strategies, report.iterations,
                   extra={"polished": report.polished, "lp_fallback": report.lp_fallback})


def _lemke_howson(game: NormalFormGame, seed: int, budget: int, every: int, target: float | None,
                  callback: Any) -> Outcome:
    from solvers.lemke_howson import lemke_howson

    found = lemke_howson(game)
    if bool(found.converged):
        return Outcome(found.strategies, found.pivots)
    if not has_pygambit():
        raise SolverError("Lemke-Howson ran out of pivots; install pygambit for its lcp fallback")
    from solvers.gambit import gambit_equilibria

    return Outcome(gambit_equilibria(game, "lcp")[0], found.pivots, extra={"fallback": "gambit-lcp"})


def _lp(game: Any, seed: int, budget: int, every: int, target: float | None, callback: Any) -> Outcome:
    if isinstance(game, ExtensiveFormGame):
        from solvers.lp import sequence_form_lp

        return Outcome([sequence_form_lp(game).strategy])
    from solvers.lp import zero_sum_lp

    return Outcome(zero_sum_lp(game).strategies)


def _support_enumeration(game: NormalFormGame, seed: int, budget: int, every: int, target: float | None,
                         callback: Any) -> Outcome:
    from solvers.support_enumeration import support_enumeration

    return Outcome(support_enumeration(game, seed=seed))


def _correlated(coarse: bool) -> Callable[..., Outcome]:
    def run(game: NormalFormGame, seed: int, budget: int, every: int, target: float | None, callback: Any) -> Outcome:
        from solvers.lp import coarse_correlated_equilibrium, correlated_equilibrium

        joint = (coarse_correlated_equilibrium if coarse else correlated_equilibrium)(game)
        gap = float((cce_gap if coarse else ce_gap)(game, joint))
        return Outcome(marginals(joint, game.num_players), extra={"gap": gap}, joint=joint)

    return run


def _nash_sgd(game: NormalFormGame, seed: int, budget: int, every: int, target: float | None, callback: Any) -> Outcome:
    from solvers.nash_sgd import nash_sgd

    history: list[tuple[int, float]] = []

    def report_progress(iteration: int, profile: list[Tensor]) -> None:
        gap = float(nash_conv(game, profile))
        history.append((iteration, gap))
        if callback is not None:
            callback(iteration, gap)

    strategies = nash_sgd(game, iterations=budget, seed=seed, callback=report_progress, callback_every=every)
    return Outcome(strategies, budget, history=history)


def _gambit(method: str) -> Callable[..., Outcome]:
    def run(game: NormalFormGame, seed: int, budget: int, every: int, target: float | None, callback: Any) -> Outcome:
        from solvers.gambit import gambit_equilibria

        equilibria = gambit_equilibria(game, method)
        if not equilibria:
            raise SolverError(f"gambit-{method} found no equilibrium")
        return Outcome(equilibria[0], extra={"equilibria_found": len(equilibria),
                                             "equilibria": [[s.tolist() for s in found] for found in equilibria]})

    return run


def _specs() -> list[SolverSpec]:
    normal, extensive = (NORMAL_FORM,), (EXTENSIVE_FORM,)
    no_regret = [
        ("rm", "regret matching, uniform averaging", lambda g, s: regret.RegretMatching(g)),
        ("rm+", "RM+ with alternating updates and linear averaging",
         lambda g, s: regret.RegretMatching(g, plus=True, alternating=True, averaging="linear")),
        ("prm+", "predictive RM+ with alternating updates and linear averaging",
         lambda g, s: regret.RegretMatching(g, plus=True, predictive=True, alternating=True, averaging="linear")),
        ("hedge", "Hedge (entropic FTRL), learning rate 0.1", lambda g, s: regret.Hedge(g)),
        ("optimistic-hedge", "optimistic Hedge, learning rate 0.1", lambda g, s: regret.OptimisticHedge(g)),
        ("ftrl-euclidean", "FTRL with the Euclidean regularizer, learning rate 0.1",
         lambda g, s: regret.FTRL(g, regularizer="euclidean")),
        ("fictitious-play", "fictitious play", lambda g, s: regret.FictitiousPlay(g)),
        ("replicator", "discrete replicator dynamics, step 0.01", lambda g, s: regret.ReplicatorDynamics(g)),
    ]
    one_shot = [
        ("zero-sum", normal, True, "2-player zero-sum: batched interior point + exact support polish (HiGHS fallback)",
         _zero_sum),
        ("lp", (NORMAL_FORM, EXTENSIVE_FORM), True,
         "2-player zero-sum: the minimax LP (sequence-form LP for extensive-form games), HiGHS", _lp),
        ("lemke-howson", normal, True, "2-player: batched Lemke-Howson in torch (exact)", _lemke_howson),
        ("ce", normal, True, "correlated equilibrium of maximum welfare (LP, HiGHS)", _correlated(coarse=False)),
        ("cce", normal, True, "coarse correlated equilibrium of maximum welfare (LP, HiGHS)", _correlated(coarse=True)),
        ("support-enumeration", normal, True,
         "any N: supports by size with Newton on the indifference equations (Porter et al. 2008), NashConv <= 1e-9",
         _support_enumeration),
    ]
    gambit = [
        ("gambit-lcp", True, "2-player: Lemke-Howson through pygambit (exact)"),
        ("gambit-enummixed", True, "2-player: all extreme equilibria through pygambit; returns the first"),
        ("gambit-enumpure", True, "any N: pure equilibria through pygambit; returns the first"),
        ("gambit-logit", False, "any N: logit QRE path-following through pygambit (approximate)"),
        ("gambit-gnm", False, "any N: global Newton through pygambit (approximate)"),
        ("gambit-enumpoly", True, "any N: support enumeration with polynomial solving through pygambit; the first"),
        ("gambit-ipa", False, "any N: iterated polymatrix approximation through pygambit (approximate)"),
        ("gambit-simpdiv", False, "any N: simplicial subdivision through pygambit (approximate)"),
    ]
    trees = [
        ("cfr", "CFR (Zinkevich et al. 2007), alternating updates", lambda g, s: cfr.CFRSolver(g, alternating=True)),
        ("cfr+", "CFR+ (Tammelin 2014): RM+, alternating, linear averaging", lambda g, s: cfr.CFRPlusSolver(g)),
        ("lcfr", "linear CFR (Brown and Sandholm 2019)", lambda g, s: cfr.LinearCFRSolver(g)),
        ("dcfr", "discounted CFR (1.5, 0, 2) (Brown and Sandholm 2019)", lambda g, s: cfr.DCFRSolver(g)),
        ("pcfr+", "predictive CFR+ (Farina et al. 2021)", lambda g, s: cfr.PCFRPlusSolver(g)),
        ("mccfr-es", "external-sampling Monte Carlo CFR (Lanctot et al. 2009), 16 traversals per iteration",
         lambda g, s: mccfr.ExternalSamplingMCCFR(g, samples=16, seed=s)),
        ("mccfr-os", "outcome-sampling Monte Carlo CFR (Lanctot et al. 2009), 256 trajectories per iteration",
         lambda g, s: mccfr.OutcomeSamplingMCCFR(g, samples=256, seed=s)),
        ("dilated-ftrl", "optimistic FTRL with the balanced dilated entropy, full information",
         lambda g, s: ftrl.DilatedFTRL(g)),
        ("balanced-ftrl", "Balanced FTRL (Fiegel et al. 2023) from 64 sampled trajectories per iteration",
         lambda g, s: ftrl.BalancedFTRL(g, seed=s)),
    ]
    return [
        *(SolverSpec(name, normal, True, False, text, build) for name, text, build in no_regret),
        *(SolverSpec(name, kinds, False, exact, text, _run(run)) for name, kinds, exact, text, run in one_shot),
        SolverSpec("nash-sgd", normal, True, False,
                   "approximate Nash by stochastic optimization of a Nash loss (Gemp et al. 2024)", _run(_nash_sgd)),
        *(SolverSpec(name, normal, False, exact, text, _run(_gambit(name.removeprefix("gambit-"))))
          for name, exact, text in gambit),
        *(SolverSpec(name, extensive, True, False, text, build) for name, text, build in trees),
    ]


SOLVERS: dict[str, SolverSpec] = {spec.name: spec for spec in _specs()}
"""The solver table: every solver by name (``auto`` is not a row; it picks one, see :func:`auto_solver`)."""



def names() -> list[str]:
    """Every solver name, ``auto`` first."""
    return ["auto", *SOLVERS]


def spec(name: str) -> SolverSpec:
    """The table row of solver ``name``.

    Raises:
        SolverError: for an unknown name, with the closest known one.
    """
    if name not in SOLVERS:
        raise SolverError(f"unknown solver {name!r}{did_you_mean(name, SOLVERS)}; known: {', '.join(names())}")
    return SOLVERS[name]


def describe() -> dict[str, str]:
    """Solver name -> one-line description (the table as ``gamelab solvers`` prints it)."""
    out = {"auto": "pick a sound method for the game (see solvers.registry)"}
    for row in SOLVERS.values():
        prefix = "extensive-form: " if row.kinds == (EXTENSIVE_FORM,) else ""
        out[row.name] = prefix + row.description
    return out


def has_pygambit() -> bool:
    try:
        import pygambit  # noqa: F401
    except ImportError:
        return False
    return True


POLISH_BELOW = 1e-9
"""Approximate normal-form solvers' answers above this NashConv are polished (Newton's method on the
support they suggest, ``solvers.support_enumeration.polish``) and kept when that is exact."""

LP_FINISH_SEQUENCES = 20_000
"""``auto`` finishes CFR+ with the sequence-form LP on 2-player zero-sum trees of at most this many
sequences (Leduc has 674), when CFR+ stops short of ``target_nash_conv``."""


def _lp_finishes(game: Any) -> bool:
    """Whether ``game`` is a 2-player zero-sum tree small enough for the sequence-form LP."""
    return isinstance(game, ExtensiveFormGame) and game.num_players == 2 and game.is_constant_sum() \
        and int(game.legal_mask.sum()) <= LP_FINISH_SEQUENCES


def auto_solver(game: NormalFormGame | ExtensiveFormGame) -> str:
    """The solver ``auto`` stands for on this game (on small 2-player zero-sum trees, :func:`solve`
    finishes CFR+ with the sequence-form LP when CFR+ misses ``target_nash_conv``)."""
    if isinstance(game, ExtensiveFormGame):
        return "cfr+"
    if game.num_players == 2 and game.is_constant_sum():
        return "zero-sum"
    if game.num_players == 2:
        return "lemke-howson"
    from solvers.support_enumeration import MAX_SUPPORT_PROFILES, support_profiles

    if support_profiles([int(count) for count in game.num_actions]) <= MAX_SUPPORT_PROFILES:
        return "support-enumeration"
    return "nash-sgd"


def solve(
    game: NormalFormGame | ExtensiveFormGame,
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
        game: one normal-form game (unbatched: use the solver classes directly for batches)
            or one compiled extensive-form game.
        solver: a name from :func:`names`.
        iterations: the iteration budget of iterative solvers (default 1000).
        target_nash_conv: stop an iterative solver once NashConv is at most this.
        seed: for solvers that sample.
        eval_every: iterations between NashConv checks. Default: solvers that step (regret
            dynamics, the CFR family) space their checks by measured cost, so checking takes
            at most about 10% of the run (see :func:`_run_learner`); the others check 200
            times per run.
        callback: ``callback(iteration, nash_conv)`` after every check, for progress bars.

    Raises:
        SolverError: for an unknown solver, one that does not take this kind of game, or a
            batch of games.
    """
    automatic = solver == "auto"
    if automatic:
        solver = auto_solver(game)
    row = spec(solver)
    if iterations is not None and iterations < 1:
        raise SolverError(f"iterations must be positive, got {iterations}")
    extensive = isinstance(game, ExtensiveFormGame)
    kind = EXTENSIVE_FORM if extensive else NORMAL_FORM
    if kind not in row.kinds:
        if extensive:
            takes = [name for name, other in SOLVERS.items() if EXTENSIVE_FORM in other.kinds]
            raise SolverError(f"{solver} solves normal-form games; for extensive-form games use one of "
                              f"{', '.join(takes)}")
        raise SolverError(f"{solver} solves extensive-form games; this is a normal-form game")
    if not extensive and game.batched:
        raise SolverError("solve() takes one game; index the batch, or use the solver classes for batches")
    budget = iterations or DEFAULT_ITERATIONS
    every = eval_every or max(1, budget // 200)
    measure = (lambda s: float(sequence_form.nash_conv(game, s[0]))) if extensive else \
        (lambda s: float(nash_conv(game, s)))
    start = time.perf_counter()
    built = row.factory(game, seed)
    if hasattr(built, "step"):
        learner_nash_conv = (lambda learner: learner.nash_conv()) if extensive else \
            (lambda learner: measure(learner.average_policy()))
        history = _run_learner(built, learner_nash_conv, budget, eval_every, target_nash_conv, callback)
        policy = built.average_policy()
        outcome = Outcome([policy] if extensive else policy, built.iteration, history)
        measured = history[-1][1] if history[-1][0] == built.iteration else None
    else:
        measured = None
        try:
            outcome = built(budget, every, target_nash_conv, callback)
        except SolverError:
            if not (automatic and solver == "support-enumeration"):
                raise
            solver = "nash-sgd"  # Newton missed every support (none seen on published examples): approximate
            row = spec(solver)
            outcome = row.factory(game, seed)(budget, every, target_nash_conv, callback)
    strategies = outcome.strategies
    final = measure(strategies) if measured is None else measured  # the last check measured this policy
    if not extensive and outcome.joint is None and not row.exact and final > POLISH_BELOW:
        # An approximate normal-form answer: Newton's method on the support it suggests may make it exact.
        from solvers.support_enumeration import polish

        polished = polish(game, [s.detach() for s in strategies], tolerance=POLISH_BELOW)
        polished_gap = math.inf if polished is None else measure(polished)
        if polished_gap < final:
            outcome = Outcome(polished, outcome.iterations, outcome.history,
                              extra={**outcome.extra, "polished_from_nash_conv": final})
            strategies, final = polished, polished_gap
    if automatic and target_nash_conv is not None and final > target_nash_conv and _lp_finishes(game):
        # CFR+ stopped short of the target on a tree the sequence-form LP solves exactly: finish with it.
        exact = _lp(game, seed, budget, budget, target_nash_conv, None)
        exact_gap = measure(exact.strategies)
        if exact_gap < final:
            solver = "lp"
            outcome = Outcome(exact.strategies, outcome.iterations, outcome.history,
                              extra={"finished_by_lp_after": "cfr+", "cfr_nash_conv": final})
            strategies, final = exact.strategies, exact_gap
    seconds = time.perf_counter() - start
    history = outcome.history
    if not history or history[-1][0] != outcome.iterations:
        history.append((outcome.iterations, final))
    if extensive:
        value = sequence_form.expected_values(game, strategies[0]).tolist()
    elif outcome.joint is not None:
        value = (outcome.joint * game.payoffs).flatten(1).sum(-1).tolist()
    else:
        value = game.expected_payoffs(strategies).tolist()
    return SolveResult(
        solver=solver,
        strategies=[s.detach() for s in strategies],
        nash_conv=final,
        iterations=outcome.iterations,
        seconds=seconds,
        history=history,
        value=value,
        joint=outcome.joint,
        extra=outcome.extra,
    )


CHECK_SHARE = 0.1
"""At most about this share of a run goes to NashConv checks when their spacing is measured."""
CHECK_SPACING = 0.02
"""With cheap checks, one at least every 2% of the iterations run, so a run stops within about 2%
of the first iteration that meets its target."""
NEAR_TARGET = 1.1
"""Within this factor of the target, checks may take up to ``NEAR_SHARE`` of the time, and the
2% spacing no longer applies: the NashConv of a CFR+ average wanders by a few percent from one
iteration to the next (on Leduc, below 1e-3 at iterations 637-647, above it until 689), and
sparse checks can skip the first stretch below the target."""
NEAR_SHARE = 0.5


def _run_learner(
    learner: Any,
    measure: Callable[[Any], float],
    budget: int,
    every: int | None,
    target_nash_conv: float | None,
    callback: Callable[[int, float], None] | None,
) -> list[tuple[int, float]]:
    """Steps ``learner`` (a normal-form no-regret solver or a CFR solver) up to ``budget``
    iterations, measuring its average policy's NashConv (``measure(learner)``) at iteration 0, then every ``every``
    iterations, and at the end; stops at ``target_nash_conv``. Returns the ``(iteration,
    NashConv)`` history.

    With ``every`` None, checks are spaced by their measured cost: with the fastest check so
    far taking ``c`` seconds (one slowed by a busy machine would space the rest too far, and
    overshoot the target), and steps taking ``s`` seconds (the fastest mean over the stretches
    between checks: a run's first steps record or compile the iteration, and a mean over the
    whole run would count that cost for hundreds of steps), the next comes ``9 c / s``
    iterations later (so checks take at most about ``CHECK_SHARE`` = 10% of the time), or
    ``CHECK_SPACING`` = 2% of the iterations run if that is later; the clock is read once per
    check, not per step. With a target, a check also comes where a ``1/T`` fall of NashConv
    would meet it, if that is sooner, and within ``NEAR_TARGET`` of the target checks may take
    half the time. The iteration a target stops at then depends on the
    machine's timing (every check passes the target); without a target, checks never change
    the result.
    """
    clock = time.perf_counter
    history = [(0, measure(learner))]
    cheapest = math.inf  # the fastest check so far: a busy machine only ever slows one down
    fastest_step = math.inf  # the fastest mean step between two checks: the first steps record or compile
    stepping_since, stepped_from = clock(), learner.iteration
    next_check = 1 if every is None else every
    while learner.iteration < budget:
        learner.step()
        iteration = learner.iteration
        if iteration < next_check and iteration != budget:
            continue
        before = clock()
        fastest_step = min(fastest_step, (before - stepping_since) / max(iteration - stepped_from, 1))
        gap = measure(learner)
        stepping_since, stepped_from = clock(), iteration
        cost = stepping_since - before
        history.append((iteration, gap))
        if callback is not None:
            callback(iteration, gap)
        if target_nash_conv is not None and gap <= target_nash_conv:
            break
        if every is not None:
            next_check = iteration + every
            continue
        step = max(fastest_step, 1e-9)
        cheapest = min(cheapest, cost)
        near = target_nash_conv is not None and gap <= NEAR_TARGET * target_nash_conv
        share, floor = (NEAR_SHARE, 1) if near else (CHECK_SHARE, math.ceil(CHECK_SPACING * iteration))
        spacing = (1 - share) / share * cheapest / step
        next_check = iteration + max(1, math.ceil(spacing), floor)
        if target_nash_conv is not None and target_nash_conv > 0:
            # NashConv of the average falls about as 1/T (CFR+ and RM+ in practice): check where
            # that puts the target if it comes before the next check (later when it falls slower).
            expected = math.ceil(iteration * gap / target_nash_conv)
            next_check = min(next_check, max(iteration + 1, expected))
    return history
