"""Ratings on tables with known answers, and against OpenSpiel's alpha-rank and Nash averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from games.errors import SolverError
from solvers import ratings

RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


def random_table(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n))


# --------------------------------------------------------------------------------------
# alpha-rank: OpenSpiel's open_spiel.python.egt.alpharank.compute is the reference


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 7), alpha=st.floats(0.01, 20.0),
       local=st.booleans(), zero_sum=st.booleans())
def test_alpha_rank_equals_openspiel(seed, n, alpha, local, zero_sum):
    from open_spiel.python.egt import alpharank

    table = random_table(seed, n)
    if zero_sum:  # exercises OpenSpiel's constant-sum closed form of the global model
        table = table - table.T
    ours = ratings.alpha_rank(table, alpha=alpha, local_selection=local)
    try:
        _, _, reference, _, _ = alpharank.compute([table], alpha=alpha, use_local_selection_model=local)
    except ValueError:  # OpenSpiel's eigenvector test fails on nearly reducible chains
        assume(False)
    # On stiff chains both are only float64-accurate: for seed 341, n 4, alpha 13 (global),
    # against a 40-digit mpmath solve of OpenSpiel's own transition matrix, ours is off by
    # 1.2e-9 and OpenSpiel's by 2.6e-9, so they differ by 3.8e-9.
    np.testing.assert_allclose(ours.values, reference, atol=1e-8)


def test_alpha_rank_of_a_cycle_is_uniform_and_of_a_dominant_player_is_one_hot():
    np.testing.assert_allclose(ratings.alpha_rank(RPS).values, np.full(3, 1 / 3), atol=1e-12)
    transitive = np.array([[0.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [-1.0, -1.0, 0.0]])
    mass = ratings.alpha_rank(transitive, alpha=50.0).values
    assert mass[0] > 0.999 and math.isclose(mass.sum(), 1.0)


def test_alpha_rank_does_not_overflow_on_large_payoff_gaps():
    table = np.array([[0.0, 1e4], [-1e4, 0.0]])
    mass = ratings.alpha_rank(table, alpha=100.0).values
    assert np.isfinite(mass).all() and mass[0] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------
# Nash averaging (Balduzzi et al. 2018): OpenSpiel's nash_averaging (cvxpy) is the reference


@pytest.mark.parametrize("seed", range(6))
def test_nash_averaging_equals_openspiel_on_zero_sum_tables(seed):
    import pyspiel
    from open_spiel.python.algorithms.nash_averaging import nash_averaging

    n = 3 + seed
    table = random_table(seed, n)
    table = table - table.T
    if seed % 2:  # a copy of player 0 makes the equilibrium set a polytope, not a point
        copies = [*range(n), 0]
        table = table[np.ix_(copies, copies)]
    reference_mixture, reference_ratings = nash_averaging(pyspiel.create_matrix_game(table.tolist(), (-table).tolist()))
    ours = ratings.nash_averaging(table)
    np.testing.assert_allclose(ours.distribution, reference_mixture.ravel(), atol=2e-6)
    np.testing.assert_allclose(ours.values, reference_ratings.ravel(), atol=2e-6)


def test_rock_paper_scissors_gives_equal_nash_averaging_ratings():
    result = ratings.nash_averaging(RPS)
    np.testing.assert_allclose(result.values, 0.0, atol=1e-9)
    np.testing.assert_allclose(result.distribution, np.full(3, 1 / 3), atol=1e-9)


def test_nash_averaging_is_invariant_to_copies_of_a_player():
    """Balduzzi et al. 2018, Section 3: adding a copy of rock splits rock's mass and changes no rating."""
    with_copy = np.array([
        [0.0, 0.0, -1.0, 1.0],
        [0.0, 0.0, -1.0, 1.0],
        [1.0, 1.0, 0.0, -1.0],
        [-1.0, -1.0, 1.0, 0.0],
    ])
    result = ratings.nash_averaging(with_copy)
    np.testing.assert_allclose(result.distribution, [1 / 6, 1 / 6, 1 / 3, 1 / 3], atol=1e-7)
    np.testing.assert_allclose(result.values, 0.0, atol=1e-9)


def test_nash_averaging_rates_a_dominated_player_below_zero():
    table = np.array([[0.0, 1.0, 1.0], [-1.0, 0.0, 0.5], [-1.0, -0.5, 0.0]])
    result = ratings.nash_averaging(table)
    np.testing.assert_allclose(result.distribution, [1.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(result.values, [0.0, -1.0, -1.0], atol=1e-9)


def test_max_entropy_nash_refuses_a_table_that_is_not_antisymmetric():
    with pytest.raises(SolverError, match="antisymmetric"):
        ratings.max_entropy_nash(np.ones((2, 2)))


# --------------------------------------------------------------------------------------
# Bradley-Terry / Elo


def test_bradley_terry_of_two_players_is_the_log_odds():
    """Two players, w wins of n: the MLE gap is log(w / (n - w)) nats, 400 log10(w / (n - w)) Elo."""
    scores = np.array([[0.0, 750.0], [250.0, 0.0]])
    counts = np.array([[0.0, 1000.0], [1000.0, 0.0]])
    result = ratings.bradley_terry(scores, counts, ridge=0.0)
    assert result.values[0] - result.values[1] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert result.values.mean() == pytest.approx(ratings.ELO_MEAN)
    # Fisher information n p (1 - p) of the gap, split over two centred ratings.
    gap_error = 1 / math.sqrt(1000 * 0.75 * 0.25)
    assert result.errors[0] == pytest.approx(ratings.ELO_PER_NAT * gap_error / 2, rel=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 8))
def test_bradley_terry_recovers_the_ratings_behind_expected_scores(seed, n):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n)
    counts = np.full((n, n), 10_000.0)
    np.fill_diagonal(counts, 0.0)
    scores = counts / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    result = ratings.bradley_terry(scores, counts, ridge=0.0)
    expected = ratings.ELO_MEAN + ratings.ELO_PER_NAT * (theta - theta.mean())
    np.testing.assert_allclose(result.values, expected, atol=1e-6)


def test_bradley_terry_orders_a_transitive_table_and_stays_finite_when_one_player_wins_everything():
    counts = np.full((4, 4), 100.0)
    np.fill_diagonal(counts, 0.0)
    scores = np.triu(counts)  # player i beats every j > i in every match
    result = ratings.bradley_terry(scores, counts)
    assert np.all(np.diff(result.values) < 0)
    assert np.isfinite(result.values).all() and np.isfinite(result.errors).all()


def test_bradley_terry_refuses_inconsistent_tables():
    with pytest.raises(SolverError, match="symmetric"):
        ratings.bradley_terry(np.zeros((2, 2)), np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(SolverError, match="between 0"):
        ratings.bradley_terry(np.array([[0.0, 3.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]))


def test_win_probability_is_the_elo_curve():
    assert ratings.win_probability(0.0) == 0.5
    assert ratings.win_probability(400.0) == pytest.approx(10 / 11)


# --------------------------------------------------------------------------------------
# Meta-game Nash


def test_meta_nash_of_rock_paper_scissors_is_uniform_and_pure_strategies_are_exploitable():
    result = ratings.meta_nash(RPS)
    np.testing.assert_allclose(result.mixture, np.full(3, 1 / 3), atol=1e-8)
    assert result.value == pytest.approx(0.0, abs=1e-9)
    assert result.exploitability == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(result.player_exploitability, [1.0, 1.0, 1.0])


def test_meta_nash_of_a_general_sum_table_is_an_equilibrium():
    table = random_table(3, 5) + 2.0  # not constant-sum
    result = ratings.meta_nash(table)
    assert result.exploitability <= 1e-7
    assert (table @ result.column_mixture).max() - result.value <= 1e-7


@pytest.mark.parametrize("sizes, seed", [((3, 4), 0), ((2, 3, 2), 1), ((5, 5), 3), ((4, 1), 3)])
def test_multi_population_alpha_rank_equals_openspiels(sizes, seed):
    """The marginals of multi-population alpha-rank equal OpenSpiel's alpharank.compute with
    one payoff table per population (alpha 100, 50 agents), which alpha-PSRO uses."""
    from open_spiel.python.algorithms.psro_v2 import utils
    from open_spiel.python.egt import alpharank

    from solvers.ratings import multi_population_alpha_rank

    tables = np.random.default_rng(seed).normal(size=(len(sizes), *sizes)) * 0.1
    stationary, marginals = multi_population_alpha_rank(tables)
    assert stationary.shape == sizes and stationary.sum() == pytest.approx(1.0, abs=1e-12)
    if np.prod(sizes) > 1 and all(size > 1 for size in sizes):
        _, _, pi, _, _ = alpharank.compute([tables[k] for k in range(len(sizes))], alpha=100, m=50)
        for ours, theirs in zip(marginals, utils.get_alpharank_marginals([tables[k] for k in range(len(sizes))], pi)):
            np.testing.assert_allclose(ours, theirs, atol=1e-10)
