"""Support enumeration with Newton's method: exact equilibria of N-player games."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.loading import load_game
from solvers import registry
from solvers.exploitability import nash_conv
from solvers.support_enumeration import pure_equilibria, support_enumeration, support_profiles
from tests.conftest import GAMBIT_DATA

N_PLAYER_FILES = ["2x2x2.nfg", "2x2x2x2.nfg", "2x2x2x2x2.nfg", "3x3x3.nfg", "5x4x3.nfg", "8x2x2.nfg", "coord333.nfg",
                  "g1.nfg", "g2.nfg", "g3.nfg", "perfect3.nfg"]


@pytest.mark.parametrize("name", N_PLAYER_FILES)
def test_auto_solves_every_n_player_gambit_example_to_machine_precision(name):
    """Gambit's published N-player examples (gambitproject/gambit, contrib/games), where Nash-SGD's
    fixed temperature stopped at NashConv 1e-2 to 3."""
    game = load_game(str(GAMBIT_DATA / name), dtype=torch.float64)
    result = registry.solve(game)
    assert result.solver == "support-enumeration"
    assert result.nash_conv <= 1e-9
    assert float(nash_conv(game, result.strategies)) <= 1e-9


def test_the_unique_mixed_equilibrium_of_van_der_laans_game_equals_pygambits():
    """g1.nfg (van der Laan, Talman and van der Heyden): a 2x2x2 game with no pure equilibrium; its
    equilibrium is (1/5, 4/5), (3/7, 4/7), (2/3, 1/3), which pygambit's enumpoly finds too."""
    game = load_game(str(GAMBIT_DATA / "g1.nfg"), dtype=torch.float64)
    found = support_enumeration(game)
    expected = [[0.2, 0.8], [3 / 7, 4 / 7], [2 / 3, 1 / 3]]
    for strategy, known in zip(found, expected):
        assert torch.allclose(strategy, torch.tensor(known, dtype=torch.float64), atol=1e-12)
    pytest.importorskip("pygambit")
    from solvers.gambit import gambit_equilibria

    (theirs,) = gambit_equilibria(game, "enumpoly")
    for ours, other in zip(found, theirs):
        assert torch.allclose(ours, other.to(ours), atol=1e-9)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from([(2, 2, 2), (3, 2, 2), (2, 2, 2, 2)]), st.integers(0, 10_000))
def test_random_n_player_games_get_an_equilibrium(shape, seed):
    game = load_game(f"random({','.join(map(str, shape))},seed={seed})", dtype=torch.float64)
    assert float(nash_conv(game, support_enumeration(game))) <= 1e-9


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_pure_equilibria_are_the_profiles_where_nobody_gains_by_deviating(seed):
    generator = torch.Generator().manual_seed(seed)
    payoffs = torch.randint(0, 3, (3, 2, 3, 2), generator=generator).to(torch.float64)
    found = {tuple(row) for row in pure_equilibria(payoffs).tolist()}
    brute = set()
    for profile in itertools.product(range(2), range(3), range(2)):
        stable = all(payoffs[(player, *profile)] >= payoffs[player].select(player, choice)[
            tuple(a for j, a in enumerate(profile) if j != player)] for player in range(3)
            for choice in range(payoffs.shape[1 + player]))
        if stable:
            brute.add(profile)
    assert found == brute


def test_support_profiles_are_counted_before_any_work():
    assert support_profiles([2, 2, 2]) == 27 and support_profiles([5, 4, 3]) == 31 * 15 * 7


@pytest.mark.parametrize("method", ["gambit-enumpoly", "gambit-ipa", "gambit-simpdiv"])
def test_more_gambit_methods_by_name(method):
    pytest.importorskip("pygambit")
    game = load_game(str(GAMBIT_DATA / "g1.nfg"), dtype=torch.float64)
    assert registry.solve(game, method).nash_conv <= 1e-6


def test_an_approximate_answer_close_to_an_equilibrium_is_polished_to_exact():
    """Nash-SGD on van der Laan's g1 stops near 1e-4 (annealed) or 6e-3 (fixed temperature); Newton's
    method on the support it suggests lands on the exact equilibrium, and the result says what it was
    polished from."""
    game = load_game(str(GAMBIT_DATA / "g1.nfg"), dtype=torch.float64)
    result = registry.solve(game, "nash-sgd", iterations=300)
    assert result.nash_conv <= 1e-12
    assert result.extra["polished_from_nash_conv"] > 1e-6


def test_a_polish_from_the_wrong_support_reports_failure_instead_of_a_bad_profile():
    from solvers.support_enumeration import polish

    game = load_game(str(GAMBIT_DATA / "g1.nfg"), dtype=torch.float64)  # no pure equilibrium
    pure_guess = [torch.tensor([1.0, 0.0], dtype=torch.float64)] * 3
    assert polish(game, pure_guess) is None


def test_newton_converges_quadratically_near_an_equilibrium():
    """From 1e-2 off van der Laan's g1 equilibrium, each Newton step roughly squares the residual."""
    from solvers.support_enumeration import _newton, _Supports

    game = load_game(str(GAMBIT_DATA / "g1.nfg"), dtype=torch.float64)
    system = _Supports(game.payoffs.to(torch.float64), [torch.tensor([[0, 1]])] * 3)
    start = torch.tensor([[[0.2 + 1e-2, 3 / 7 - 1e-2, 2 / 3 + 1e-2]]], dtype=torch.float64)
    norms = [float(_newton(system, start, iterations=steps)[1][0, 0]) for steps in range(4)]
    for before, after in zip(norms, norms[1:]):
        if before > 1e-12:
            assert after <= 10 * before**2 + 1e-14
    assert norms[3] < 1e-12
    point = _newton(system, start)[0][0, 0]
    assert torch.allclose(point, torch.tensor([0.2, 3 / 7, 2 / 3], dtype=torch.float64), atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(2, 4), min_size=2, max_size=4))
def test_the_closed_form_jacobian_equals_autograds(seed, actions):
    """Every profile of a batch: the closed-form Jacobian of the indifference equations equals autograd's."""
    from solvers.support_enumeration import _Supports

    generator = torch.Generator().manual_seed(seed)
    payoffs = torch.randn(len(actions), *actions, generator=generator, dtype=torch.float64)
    sizes = [int(torch.randint(1, count + 1, (1,), generator=generator)) for count in actions]
    sizes[0] = max(sizes[0], 2)
    profiles = []
    for _ in range(3):
        profiles.append(tuple(tuple(sorted(torch.randperm(count, generator=generator)[:size].tolist()))
                              for count, size in zip(actions, sizes)))
    system = _Supports(payoffs, [torch.tensor([profile[player] for profile in profiles])
                                 for player in range(len(actions))])
    points = torch.rand(3, 2, system.dim, generator=generator, dtype=torch.float64)
    _, jacobian = system.residual(points, jacobian=True)
    expected = torch.autograd.functional.jacobian(lambda free: system.residual(free).sum((0, 1)), points)
    assert torch.allclose(jacobian, expected.permute(1, 2, 0, 3), atol=1e-10)
