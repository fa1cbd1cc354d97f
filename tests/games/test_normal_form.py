import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games import catalog
from games.errors import GameError
from games.loading import load_game
from games.normal_form import NormalFormGame


def brute_force_action_values(payoffs: np.ndarray, strategies: list[np.ndarray], player: int) -> np.ndarray:
    """Sums over every pure profile explicitly: the definition, as an oracle."""
    num_players = payoffs.shape[0]
    values = np.zeros(payoffs.shape[1 + player])
    for profile in itertools.product(*[range(n) for n in payoffs.shape[1:]]):
        weight = np.prod([strategies[j][profile[j]] for j in range(num_players) if j != player])
        values[profile[player]] += weight * payoffs[(player,) + profile]
    return values


def random_profile(num_actions, rng):
    return [rng.dirichlet(np.ones(n)) for n in num_actions]


@settings(max_examples=40, deadline=None)
@given(
    num_actions=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
)
def test_action_values_equal_the_definition(num_actions, seed):
    rng = np.random.default_rng(seed)
    game = catalog.random_game(num_actions, seed=seed % 1000)
    profile = random_profile(num_actions, rng)
    values = game.action_values([torch.tensor(s) for s in profile])
    payoffs = game.payoffs.numpy()
    for player in range(len(num_actions)):
        np.testing.assert_allclose(values[player].numpy(), brute_force_action_values(payoffs, profile, player), atol=1e-12)


def test_batched_action_values_equal_one_game_at_a_time(device):
    game = catalog.random_game([3, 4, 2], batch_size=5, seed=3, device=device)
    rng = np.random.default_rng(0)
    profile = [torch.tensor(np.stack([rng.dirichlet(np.ones(n)) for _ in range(5)]), device=device) for n in (3, 4, 2)]
    batched = game.action_values(profile)
    for index in range(5):
        single = game[index].action_values([s[index] for s in profile])
        for a, b in zip(batched, single):
            torch.testing.assert_close(a[index], b)
    assert batched[0].device.type == device.type


def test_stack_and_index_round_trip():
    games = [catalog.random_game([2, 3], seed=s) for s in range(4)]
    stacked = NormalFormGame.stack(games)
    assert stacked.batch_size == 4 and len(stacked) == 4
    for index, game in enumerate(games):
        assert torch.equal(stacked[index].payoffs, game.payoffs)


def test_zero_sum_and_bimatrix_constructors():
    game = NormalFormGame.zero_sum([[1, -2], [3, 0]])
    assert game.is_zero_sum() and game.num_actions == (2, 2)
    assert torch.equal(game.payoffs[1], -game.payoffs[0])
    general = NormalFormGame.bimatrix([[1, 2]], [[3, 4]])
    assert general.num_actions == (1, 2) and not general.is_constant_sum()
    assert NormalFormGame.bimatrix([[1, 2]], [[3, 2]]).is_constant_sum()


@pytest.mark.parametrize(
    "payoffs, message",
    [
        (np.zeros((3, 2, 2)), "do not fit 3 players"),
        (np.zeros((2,)), "not a game"),
        (np.array([[[1.0, np.nan]], [[0.0, 0.0]]]), "not finite"),
        (np.array([[[1.0, np.inf]], [[0.0, 0.0]]]), "not finite"),
        (np.zeros((2, 0, 2)), "empty dimension"),
        ([[[1, 2], [3]], [[1, 2], [3, 4]]], "rectangular"),
        ("payoffs", "rectangular"),
        (np.ones((2, 2, 2), dtype=bool), "real numbers"),
    ],
)
def test_bad_payoffs_name_the_problem(payoffs, message):
    with pytest.raises(GameError, match=message):
        NormalFormGame(payoffs)


def test_bad_strategies_name_the_player():
    game = catalog.load("rps")
    with pytest.raises(GameError, match="player 1 has shape"):
        game.check_strategies([torch.ones(3) / 3, torch.ones(2) / 2])
    with pytest.raises(GameError, match="player 0 does not sum to 1"):
        game.check_strategies([torch.ones(3), torch.ones(3) / 3])
    with pytest.raises(GameError, match="player 0 has a negative"):
        game.check_strategies([torch.tensor([1.5, -0.5, 0.0]), torch.ones(3) / 3])
    with pytest.raises(GameError, match="names"):
        NormalFormGame(np.zeros((2, 2, 2)), player_names=["only one"])


def test_openspiel_matrix_games_match_the_catalog():
    for spiel_name, name in [("matrix_rps", "rps"), ("matrix_mp", "matching_pennies")]:
        converted = NormalFormGame.from_openspiel(spiel_name)
        assert torch.equal(converted.payoffs, catalog.load(name).payoffs), spiel_name
    assert NormalFormGame.from_openspiel("matrix_rps").action_names[0] == ("Rock", "Paper", "Scissors")


def test_openspiel_one_shot_simultaneous_game_is_tabulated():
    game = load_game("blotto")
    assert game.num_players == 2 and game.num_actions == (66, 66)
    assert game.is_zero_sum()


def test_sequential_openspiel_game_is_not_a_normal_form_game():
    with pytest.raises(GameError, match="sequential"):
        NormalFormGame.from_openspiel("kuhn_poker")
    assert type(load_game("kuhn_poker")).__name__ == "ExtensiveFormGame"


@pytest.mark.parametrize("spec", ["no_such_game", "random(3)", "random_zero_sum(2,x)"])
def test_unknown_specs_are_clear_errors(spec):
    with pytest.raises(GameError):
        load_game(spec)


def test_random_games_are_seeded_and_device_independent(device):
    a = catalog.random_zero_sum(5, 6, seed=7, device=device)
    b = catalog.random_zero_sum(5, 6, seed=7)
    assert torch.equal(a.payoffs.cpu(), b.payoffs)
    assert not torch.equal(b.payoffs, catalog.random_zero_sum(5, 6, seed=8).payoffs)
    assert catalog.random_game([2, 2, 2], batch_size=3, seed=1).payoffs.shape == (3, 3, 2, 2, 2)


def test_every_catalog_game_loads():
    for name in catalog.names():
        game = catalog.load(name)
        assert game.title and game.num_players >= 2
