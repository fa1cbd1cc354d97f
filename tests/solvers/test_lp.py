import numpy as np
import pytest

from games import catalog
from games.errors import SolverError
from games.nfg import read_nfg
from solvers.exploitability import cce_gap, ce_gap, nash_conv
from solvers.gambit import to_pygambit
from solvers.lp import (
    coarse_correlated_equilibrium,
    correlated_equilibrium,
    zero_sum_lp,
)
from tests import known_values as known
from tests.conftest import gambit_files


def test_rps_value_and_strategies():
    solution = zero_sum_lp(catalog.load("rps"))
    assert float(solution.value) == pytest.approx(known.RPS_VALUE, abs=1e-12)
    for strategy in solution.strategies:
        np.testing.assert_allclose(strategy.numpy(), [1 / 3] * 3, atol=1e-9)


def test_zero_sum_lp_agrees_with_pygambit_lp():
    import pygambit

    for seed in range(3):
        game = catalog.random_zero_sum(7, 5, seed=seed)
        ours = zero_sum_lp(game)
        assert float(nash_conv(game, ours.strategies)) < 1e-9
        result = pygambit.nash.lp_solve(to_pygambit(game), rational=False)
        profile = result.equilibria[0]
        value = float(profile.payoff(list(profile.game.players)[0]))
        assert float(ours.value) == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("path", [p for p in gambit_files(".nfg") if read_nfg(p).num_players == 2 and read_nfg(p).is_constant_sum()], ids=lambda p: p.name)
def test_constant_sum_gambit_files(path):
    game = read_nfg(path)
    solution = zero_sum_lp(game)
    assert float(nash_conv(game, solution.strategies)) < 1e-9


def test_batched_lp_equals_one_by_one():
    game = catalog.random_zero_sum(4, 6, batch_size=3, seed=9)
    batched = zero_sum_lp(game)
    for index in range(3):
        assert float(batched.value[index]) == pytest.approx(float(zero_sum_lp(game[index]).value), abs=1e-12)


def test_general_sum_is_refused():
    with pytest.raises(SolverError, match="general-sum"):
        zero_sum_lp(catalog.load("battle_of_the_sexes"))
    with pytest.raises(SolverError, match="2-player"):
        zero_sum_lp(catalog.load("three_player_matching_pennies"))


def test_chicken_best_correlated_equilibrium():
    game = catalog.load("chicken")
    joint = correlated_equilibrium(game)
    expected = [[float(p) for p in row] for row in known.CHICKEN_BEST_CE]
    np.testing.assert_allclose(joint.numpy(), expected, atol=1e-9)
    np.testing.assert_allclose((joint * game.payoffs).sum((1, 2)).numpy(), float(known.CHICKEN_BEST_CE_PAYOFF), atol=1e-9)


@pytest.mark.parametrize("name", ["chicken", "battle_of_the_sexes", "shapley", "three_player_matching_pennies"])
def test_correlated_equilibria_have_zero_gap_and_beat_nash_welfare(name):
    game = catalog.load(name)
    for solve, gap in ((correlated_equilibrium, ce_gap), (coarse_correlated_equilibrium, cce_gap)):
        joint = solve(game)
        assert float(joint.sum()) == pytest.approx(1.0) and (joint >= 0).all()
        assert float(gap(game, joint)) < 1e-9


def test_player_objective_and_bad_objective():
    game = catalog.load("battle_of_the_sexes")
    best_for_row = correlated_equilibrium(game, objective=0)
    assert float((best_for_row * game.payoffs[0]).sum()) == pytest.approx(3.0)
    with pytest.raises(SolverError, match="objective"):
        correlated_equilibrium(game, objective="fairness")
