"""Cross-checks against pygambit's equilibria of every Gambit .nfg file."""

import itertools

import pytest
import torch

from games.nfg import read_nfg
from solvers.exploitability import nash_conv
from solvers.gambit import gambit_equilibria
from solvers.lemke_howson import lemke_howson
from tests.conftest import gambit_files

GAMES = {path.name: read_nfg(path) for path in gambit_files(".nfg")}
TWO_PLAYER = [name for name, game in GAMES.items() if game.num_players == 2]


@pytest.mark.parametrize("name", TWO_PLAYER)
def test_lemke_howson_finds_an_extreme_equilibrium_that_pygambit_enumerates(name):
    """Lemke-Howson ends at a vertex pair of the best-response polytopes, so its
    equilibrium is one of the extreme equilibria that enummixed lists, from every label."""
    game = GAMES[name]
    extreme = gambit_equilibria(game, "enummixed")
    assert extreme, "pygambit found no equilibrium"
    for profile in extreme:  # pygambit's answers are equilibria under our payoffs and NashConv
        assert float(nash_conv(game, profile)) < 1e-9
    for label in range(sum(game.num_actions)):
        found = lemke_howson(game, missing_label=label).strategies
        assert any(all(torch.allclose(a, b, atol=1e-7) for a, b in zip(found, e)) for e in extreme), label


@pytest.mark.parametrize("name", list(GAMES))
def test_pure_equilibria_equal_pygambits(name):
    """Every pure profile with zero NashConv under our reading, and nothing else, is one
    of pygambit's enumpure equilibria."""
    game = GAMES[name]
    ours = set()
    for profile in itertools.product(*[range(n) for n in game.num_actions]):
        if float(nash_conv(game, game.pure_strategies(profile))) <= 1e-12:
            ours.add(profile)
    theirs = {tuple(int(s.argmax()) for s in e) for e in gambit_equilibria(game, "enumpure")}
    assert ours == theirs
