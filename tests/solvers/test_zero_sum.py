import pytest
import torch

from games import catalog
from solvers.exploitability import nash_conv
from solvers.interior_point import interior_point_zero_sum
from solvers.lp import zero_sum_lp
from solvers.zero_sum import polish, solve_zero_sum


@pytest.mark.parametrize("shape", [(2, 2), (7, 3), (40, 60), (150, 150)])
def test_values_equal_the_highs_lp(shape):
    game = catalog.random_zero_sum(*shape, seed=sum(shape))
    solution, _ = solve_zero_sum(game)
    assert float(nash_conv(game, solution.strategies)) <= 1e-9
    assert float(solution.value) == pytest.approx(float(zero_sum_lp(game).value), abs=1e-8)


def test_batched_equals_one_by_one(device):
    game = catalog.random_zero_sum(12, 9, batch_size=20, seed=4, device=device)
    batched, _ = solve_zero_sum(game)
    assert batched.value.device.type == device.type
    assert float(nash_conv(game, batched.strategies).max()) <= 1e-9
    for index in range(0, 20, 5):
        single, _ = solve_zero_sum(game[index])
        assert float(single.value) == pytest.approx(float(batched.value[index]), abs=1e-8)


def test_interior_point_reaches_its_tolerance_on_random_games():
    game = catalog.random_zero_sum(60, 80, batch_size=8, seed=1)
    rows, columns, gaps, iterations = interior_point_zero_sum(game.payoffs[:, 0], tolerance=1e-8)
    assert iterations < 60
    assert float(gaps.max()) <= 1e-8
    torch.testing.assert_close(gaps, nash_conv(game, [rows, columns]))


def test_polish_recovers_the_exact_equilibrium_from_a_rough_one():
    game = catalog.random_zero_sum(30, 30, seed=2)
    exact = zero_sum_lp(game)
    noisy_row = (exact.row_strategy + 1e-7).clamp_min(0)
    noisy_column = (exact.column_strategy + 1e-7).clamp_min(0)
    noisy_row[exact.row_strategy == 0] = 1e-9
    polished = polish(game.payoffs[0], noisy_row / noisy_row.sum(), noisy_column / noisy_column.sum(), 1e-12)
    assert polished is not None
    assert float(nash_conv(game, list(polished))) <= 1e-12


def test_constant_sum_games_are_solved_like_zero_sum():
    game = catalog.random_zero_sum(5, 5, seed=3)
    shifted = type(game)(game.payoffs + 1.0)
    solution, _ = solve_zero_sum(shifted)
    assert float(nash_conv(shifted, solution.strategies)) <= 1e-9


def test_degenerate_games_still_get_an_equilibrium():
    # Duplicate rows and columns: infinitely many equilibria, supports of unequal size.
    matrix = torch.tensor([[1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, 1.0]], dtype=torch.float64)
    game = catalog.load("rps").zero_sum(matrix)
    solution, _ = solve_zero_sum(game)
    assert float(nash_conv(game, solution.strategies)) <= 1e-9


def test_restricted_solve_equals_the_lp(device):
    game = catalog.random_zero_sum(120, 90, batch_size=3, seed=8, device=device)
    solution, report = solve_zero_sum(game, restrict_above=40)
    assert report.restricted_sizes and report.restricted_sizes[0][0] < 120
    assert float(nash_conv(game, solution.strategies).max()) <= 1e-9
    for index in range(3):
        assert float(solution.value[index]) == pytest.approx(float(zero_sum_lp(game[index].to("cpu")).value), abs=1e-8)


class _UselessRanking:
    """Stands in for RM+ with a ranking that knows nothing: the restriction starts wrong."""

    def __init__(self, game, **_):
        self.game = game

    def step(self):
        pass

    def average_policy(self):
        return self.game.uniform_strategies()

    def current_policy(self):
        return [torch.nn.functional.one_hot(torch.zeros(self.game.batch_size, dtype=torch.long), n).to(self.game.dtype)
                for n in self.game.num_actions]


def test_double_oracle_grows_a_wrong_restriction_until_it_is_right(monkeypatch):
    from solvers import zero_sum

    monkeypatch.setattr(zero_sum, "RegretMatching", _UselessRanking)
    game = catalog.random_zero_sum(80, 80, seed=5)
    solution, report = solve_zero_sum(game, restrict_above=10)
    assert len(report.restricted_sizes) > 1  # it had to grow
    assert report.restricted_sizes[0] == (17, 17)
    assert float(nash_conv(game, solution.strategies)) <= 1e-9
    assert float(solution.value) == pytest.approx(float(zero_sum_lp(game).value), abs=1e-8)
