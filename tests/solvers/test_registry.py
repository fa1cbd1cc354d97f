import pytest
import torch

from games import catalog
from games.errors import SolverError
from solvers import cfr, registry


@pytest.mark.parametrize("solver", [name for name, spec in registry.SOLVERS.items()
                                    if name not in ("gambit-gnm", "gambit-logit", "gambit-enumpure")
                                    and registry.NORMAL_FORM in spec.kinds])
def test_every_solver_runs_on_a_two_player_zero_sum_game(solver):
    game = catalog.load("matching_pennies")
    result = registry.solve(game, solver, iterations=200)
    assert result.iterations >= 1 and result.seconds >= 0
    assert len(result.strategies) == 2
    bound = 0.2 if registry.spec(solver).iterative else 1e-9
    if solver in ("ce", "cce"):
        assert result.extra["gap"] < 1e-9
    else:
        assert result.nash_conv <= bound


def test_auto_picks_exact_methods():
    assert registry.auto_solver(catalog.load("rps")) == "zero-sum"
    assert registry.auto_solver(catalog.load("battle_of_the_sexes")) == "lemke-howson"
    assert registry.auto_solver(catalog.load("three_player_matching_pennies")) == "support-enumeration"
    assert registry.auto_solver(catalog.random_game([12, 12, 12], seed=0)) == "nash-sgd"  # 4095^3 supports
    assert registry.solve(catalog.load("stag_hunt")).nash_conv == 0


def test_target_stops_early_and_history_is_recorded():
    game = catalog.random_zero_sum(10, 10, seed=0)
    result = registry.solve(game, "rm+", iterations=5000, target_nash_conv=1e-3, eval_every=10)
    assert result.iterations < 5000 and result.nash_conv <= 1e-3
    assert result.history[-1][0] == result.iterations
    assert all(a[0] < b[0] for a, b in zip(result.history, result.history[1:]))


def test_unknown_solver_and_batched_game():
    with pytest.raises(SolverError, match="unknown solver"):
        registry.solve(catalog.load("rps"), "simplex-magic")
    with pytest.raises(SolverError, match="one game"):
        registry.solve(catalog.random_zero_sum(2, 2, batch_size=2), "lp")
    with pytest.raises(SolverError, match="2-player"):
        registry.solve(catalog.load("three_player_matching_pennies"), "gambit-lcp")


def test_enumpure_finds_pure_equilibria_or_says_there_are_none():
    result = registry.solve(catalog.load("battle_of_the_sexes"), "gambit-enumpure")
    assert result.nash_conv == 0 and result.extra["equilibria_found"] == 2
    with pytest.raises(SolverError, match="no equilibrium"):
        registry.solve(catalog.load("matching_pennies"), "gambit-enumpure")


@pytest.mark.parametrize("solver", [name for name, spec in registry.SOLVERS.items()
                                    if spec.kinds == (registry.EXTENSIVE_FORM,)])
def test_every_extensive_form_solver_runs_on_kuhn_through_the_registry(solver):
    from games.loading import load_game

    game = load_game("kuhn_poker")
    result = registry.solve(game, solver, iterations=300, eval_every=50)
    bound = 0.15 if solver == "balanced-ftrl" else 0.05  # it learns from sampled trajectories only
    assert result.iterations == 300 and result.nash_conv < bound
    assert result.history[0][0] == 0 and result.history[-1] == (300, result.nash_conv)
    assert registry.auto_solver(game) == "cfr+"


def test_checks_spaced_by_cost_stop_close_to_where_the_target_is_met_for_good():
    """CFR+'s average on Kuhn dips below 1e-3 and rises again before it stays below. With checks spaced by
    cost, the run stops at a check that meets the target, no later than a few percent after the
    iteration from which every iteration meets it. Checks come densely only within
    ``NEAR_TARGET`` of the target; away from it they are a fraction of the iterations."""
    from games.adapters.openspiel import extensive_form_from_openspiel

    game = extensive_form_from_openspiel("kuhn_poker")
    dense = registry.solve(game, "cfr+", iterations=600, eval_every=1).history
    settled = next(iteration for iteration, _ in dense if all(gap <= 1e-3 for i, gap in dense if i >= iteration))
    spaced = registry.solve(game, "cfr+", iterations=5000, target_nash_conv=1e-3)
    assert spaced.nash_conv <= 1e-3 and spaced.iterations <= 1.05 * settled + 2


@pytest.mark.parametrize("check_cost, first_step_cost", [(0.5, 1.0), (3.0, 1.0), (0.5, 100.0)])
def test_checks_far_from_the_target_take_a_tenth_of_the_time(monkeypatch, check_cost, first_step_cost):
    """On a clock where a step takes 1 unit and a check ``check_cost`` units, the checks made while
    NashConv is far from the target take about CHECK_SHARE of the time (plus the 1/T prediction's
    few), and the run still stops at the first check below the target. A first step that costs
    more (it records the iteration) does not make later checks denser."""
    from games.adapters.openspiel import extensive_form_from_openspiel

    now = [0.0]
    monkeypatch.setattr(registry.time, "perf_counter", lambda: now[0])
    solver = cfr.CFRPlusSolver(extensive_form_from_openspiel("kuhn_poker"))
    step = solver.step

    def timed_step():
        now[0] += first_step_cost if solver.iteration == 0 else 1.0
        step()

    def timed_check(learner):
        now[0] += check_cost
        return learner.nash_conv()

    solver.step = timed_step
    history = registry._run_learner(solver, timed_check, 5000, None, 1e-3, None)
    assert history[-1][1] <= 1e-3 and all(gap > 1e-3 for _, gap in history[:-1])
    far = [gap for _, gap in history[1:] if gap > registry.NEAR_TARGET * 1e-3]
    assert len(far) * check_cost <= 0.15 * solver.iteration + 10 * check_cost


def test_checks_do_not_change_a_run_without_a_target():
    from games.adapters.openspiel import extensive_form_from_openspiel

    game = extensive_form_from_openspiel("kuhn_poker")
    spaced = registry.solve(game, "cfr+", iterations=300)
    dense = registry.solve(game, "cfr+", iterations=300, eval_every=1)
    assert torch.equal(spaced.strategies[0], dense.strategies[0])
    assert spaced.history[-1][0] == 300


def test_auto_finishes_a_small_zero_sum_tree_with_the_lp_when_cfr_misses_the_target():
    """4cards.efg (2-player zero-sum): CFR+ for 1,000 iterations stops near 1e-4; the sequence-form LP
    then gives the exact equilibrium, and the result says which solver finished it."""
    import torch

    from games.loading import load_game
    from tests.conftest import GAMBIT_DATA

    game = load_game(str(GAMBIT_DATA / "4cards.efg"), dtype=torch.float64)
    result = registry.solve(game, iterations=1000, target_nash_conv=1e-9)
    assert result.solver == "lp" and result.nash_conv <= 1e-9
    assert result.extra["finished_by_lp_after"] == "cfr+" and result.extra["cfr_nash_conv"] > 1e-9
    plain = registry.solve(game, iterations=1000)  # no target: CFR+'s answer stands
    assert plain.solver == "cfr+" and "finished_by_lp_after" not in plain.extra
