import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games import catalog
from games.errors import SolverError
from games.nfg import read_nfg
from solvers.exploitability import nash_conv
from solvers.gambit import gambit_equilibria
from solvers.lemke_howson import lemke_howson
from tests import known_values as known
from tests.conftest import gambit_files

TWO_PLAYER_FILES = [p for p in gambit_files(".nfg") if read_nfg(p).num_players == 2]


@pytest.mark.parametrize("path", TWO_PLAYER_FILES, ids=lambda p: p.name)
def test_every_two_player_gambit_file_from_every_label(path):
    game = read_nfg(path)
    for label in range(sum(game.num_actions)):
        result = lemke_howson(game, missing_label=label)
        assert bool(result.converged)
        assert float(nash_conv(game, result.strategies)) < 1e-9


def test_each_label_reaches_an_equilibrium_that_gambit_enumerates():
    game = catalog.load("battle_of_the_sexes")
    everything = gambit_equilibria(game, "enummixed")
    assert len(everything) == known.BOS_NUM_EQUILIBRIA
    for label in range(4):
        found = lemke_howson(game, missing_label=label).strategies
        assert any(all(torch.allclose(a, b, atol=1e-9) for a, b in zip(found, e)) for e in everything)


def test_nondegenerate_random_games_match_pygambit_enumeration():
    for seed in range(5):
        game = catalog.random_game([4, 5], seed=seed)
        found = lemke_howson(game).strategies
        everything = gambit_equilibria(game, "enummixed")
        assert any(all(torch.allclose(a, b, atol=1e-9) for a, b in zip(found, e)) for e in everything)


def test_batched_equals_one_by_one(device):
    game = catalog.random_game([6, 5], batch_size=64, seed=3, device=device)
    batched = lemke_howson(game, missing_label=2)
    assert bool(batched.converged.all())
    assert float(nash_conv(game, batched.strategies).max()) < 1e-9
    for index in range(0, 64, 9):
        single = lemke_howson(game[index], missing_label=2)
        torch.testing.assert_close(single.row_strategy, batched.row_strategy[index])
        torch.testing.assert_close(single.column_strategy, batched.column_strategy[index])


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), columns=st.integers(1, 6), seed=st.integers(0, 10_000),
       integer=st.booleans())
def test_random_and_integer_games_are_solved(rows, columns, seed, integer):
    game = catalog.random_game([rows, columns], seed=seed, batch_size=4)
    if integer:  # small integer payoffs: many ties, i.e. degenerate games
        game = type(game)((game.payoffs * 2).round(), batched=True)
    result = lemke_howson(game)
    assert bool(result.converged.all())
    assert float(nash_conv(game, result.strategies).max()) < 1e-9


def test_bad_input():
    with pytest.raises(SolverError, match="2-player"):
        lemke_howson(catalog.load("three_player_matching_pennies"))
    with pytest.raises(SolverError, match="missing_label"):
        lemke_howson(catalog.load("rps"), missing_label=6)
