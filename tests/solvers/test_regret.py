import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games import catalog
from games.errors import SolverError
from solvers import regret
from solvers.exploitability import nash_conv
from tests import known_values as known

# (name, constructor, iterations, NashConv bound on the average strategy) on a seeded
# random 30x20 zero-sum game; each bound was met with a margin in development.
LEARNERS = [
    ("rm", lambda g: regret.RegretMatching(g), 2000, 0.05),
    ("rm+", lambda g: regret.RegretMatching(g, plus=True, alternating=True, averaging="linear"), 2000, 1e-3),
    ("prm+", lambda g: regret.RegretMatching(g, plus=True, predictive=True, alternating=True, averaging="linear"), 2000, 1e-3),
    ("hedge", lambda g: regret.Hedge(g, learning_rate=0.5), 2000, 0.05),
    ("optimistic-hedge", lambda g: regret.OptimisticHedge(g, learning_rate=0.5), 2000, 0.05),
    ("ftrl-euclidean", lambda g: regret.FTRL(g, regularizer="euclidean", learning_rate=0.5), 2000, 0.05),
    ("fictitious-play", lambda g: regret.FictitiousPlay(g), 2000, 0.15),
    ("replicator", lambda g: regret.ReplicatorDynamics(g, step_size=0.1), 2000, 0.05),
]


@pytest.mark.parametrize("name, make, iterations, bound", LEARNERS, ids=[l[0] for l in LEARNERS])
def test_average_strategies_approach_equilibrium_in_zero_sum_games(name, make, iterations, bound):
    game = catalog.random_zero_sum(30, 20, seed=11)
    learner = make(game)
    start = float(nash_conv(game, learner.average_policy()))
    for _ in range(iterations):
        learner.step()
    final = float(nash_conv(game, learner.average_policy()))
    assert final < bound < start


def test_optimistic_hedge_converges_in_the_last_iterate():
    game = catalog.load("matching_pennies")
    learner = regret.OptimisticHedge(game, learning_rate=0.1, initial_strategies=[torch.tensor([0.9, 0.1], dtype=torch.float64)] * 2)
    for _ in range(3000):
        learner.step()
    assert float(nash_conv(game, learner.current_policy())) < 1e-3
    plain = regret.Hedge(game, learning_rate=0.1, initial_strategies=[torch.tensor([0.9, 0.1], dtype=torch.float64)] * 2)
    for _ in range(3000):
        plain.step()
    assert float(nash_conv(game, plain.current_policy())) > 0.1  # Hedge's last iterate cycles


def test_fictitious_play_does_not_converge_in_shapleys_game():
    game = catalog.load("shapley")
    start = [torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)]
    learner = regret.FictitiousPlay(game, initial_strategies=start)
    late = []
    for iteration in range(1, 20_001):
        learner.step()
        if iteration > 10_000 and iteration % 500 == 0:
            late.append(float(nash_conv(game, learner.average_policy())))
    assert max(late) > known.SHAPLEY_FP_MIN_NASH_CONV


def test_regret_matching_learns_to_defect():
    game = catalog.load("prisoners_dilemma")
    learner = regret.RegretMatching(game)
    for _ in range(200):
        learner.step()
    for strategy in learner.current_policy():
        assert float(strategy[1]) == pytest.approx(1.0)


def test_no_regret_self_play_approaches_a_coarse_correlated_equilibrium():
    """Hannan consistency: the empirical joint play of no-regret learners is an approximate CCE."""
    from solvers.exploitability import cce_gap, product_distribution

    game = catalog.load("chicken")
    learner = regret.RegretMatching(game)
    joint = torch.zeros(2, 2, dtype=torch.float64)
    for _ in range(3000):
        learner.step()
        joint += product_distribution(learner.current_policy())
    assert float(cce_gap(game, joint / 3000)) < 0.05


@pytest.mark.parametrize("name, make, iterations, bound", LEARNERS, ids=[l[0] for l in LEARNERS])
def test_batched_runs_equal_one_game_at_a_time(name, make, iterations, bound, device):
    game = catalog.random_game([5, 4], batch_size=3, seed=2, device=device)
    batched = make(game)
    for _ in range(50):
        batched.step()
    for index in range(3):
        single = make(game[index])
        for _ in range(50):
            single.step()
        for a, b in zip(batched.average_policy(), single.average_policy()):
            torch.testing.assert_close(a[index], b)


@settings(max_examples=25, deadline=None)
@given(num_actions=st.lists(st.integers(1, 4), min_size=2, max_size=3), seed=st.integers(0, 1000),
       which=st.integers(0, len(LEARNERS) - 1))
def test_strategies_stay_on_the_simplex(num_actions, seed, which):
    game = catalog.random_game(num_actions, seed=seed)
    learner = LEARNERS[which][1](game)
    for _ in range(20):
        learner.step()
    for policy in (learner.current_policy(), learner.average_policy()):
        for strategy in policy:
            assert (strategy >= 0).all()
            assert float(strategy.sum()) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(points=st.lists(st.floats(-10, 10), min_size=1, max_size=6))
def test_simplex_projection_is_the_nearest_point(points):
    vector = torch.tensor(points, dtype=torch.float64)
    projected = regret.project_to_simplex(vector)
    assert (projected >= 0).all() and float(projected.sum()) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    for other in rng.dirichlet(np.ones(len(points)), size=20):
        assert float((projected - vector).norm()) <= float((torch.tensor(other) - vector).norm()) + 1e-9


def test_bad_options_are_clear_errors():
    game = catalog.load("rps")
    with pytest.raises(SolverError, match="averaging"):
        regret.RegretMatching(game, averaging="cubic")
    with pytest.raises(SolverError, match="regularizer"):
        regret.FTRL(game, regularizer="l7")
    with pytest.raises(SolverError, match="learning_rate"):
        regret.Hedge(game, learning_rate=0)
