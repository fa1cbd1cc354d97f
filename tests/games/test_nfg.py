import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from games import catalog
from games.errors import GameFileError
from games.nfg import format_nfg, parse_nfg, read_nfg, write_nfg
from solvers.gambit import gambit_payoffs
from tests.conftest import gambit_files
from tests.fuzzing import mutate

NFG_FILES = gambit_files(".nfg")


@pytest.mark.parametrize("path", NFG_FILES, ids=lambda p: p.name)
def test_every_gambit_nfg_file_matches_pygambits_reading(path):
    game = read_nfg(path)
    reference = gambit_payoffs(str(path))
    assert game.payoffs.shape == reference.shape
    np.testing.assert_array_equal(game.payoffs.numpy(), reference)


@pytest.mark.parametrize("path", NFG_FILES, ids=lambda p: p.name)
def test_write_then_read_is_exact(path, tmp_path):
    game = read_nfg(path)
    target = tmp_path / "copy.nfg"
    write_nfg(game, target)
    again = read_nfg(target)
    assert torch.equal(again.payoffs, game.payoffs)
    assert again.player_names == game.player_names
    assert again.action_names == game.action_names
    assert again.title == game.title
    np.testing.assert_array_equal(gambit_payoffs(str(target)), game.payoffs.numpy())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    num_actions=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    seed=st.integers(0, 10_000),
    title=st.text(max_size=12),
)
def test_round_trip_of_random_games_and_labels(num_actions, seed, title):
    game = catalog.random_game(num_actions, seed=seed, distribution="normal")
    game.title = title
    again = parse_nfg(format_nfg(game))
    assert torch.equal(again.payoffs, game.payoffs)
    assert again.title == title


def test_payoff_version_with_counts_and_rationals():
    game = parse_nfg('NFG 1 R "t" { "A" "B" } { 2 1 }\n"comment"\n1/2 -3 .25 1e1\n')
    np.testing.assert_array_equal(game.payoffs.numpy(), [[[0.5], [0.25]], [[-3.0], [10.0]]])


def test_outcome_zero_is_the_null_outcome():
    game = parse_nfg('NFG 1 R "" { "A" "B" } { { "x" "y" } { "z" } }\n{ { "o" 1, 2 } }\n0 1\n')
    np.testing.assert_array_equal(game.payoffs.numpy(), [[[0.0], [1.0]], [[0.0], [2.0]]])


@pytest.mark.parametrize(
    "text, line, message",
    [
        ('NFG 1 R "t" { "A" "B" } { 2 2 }\n1 2 3\n', 2, "payoff 2 of profile 2"),
        ('NFG 1 R "t" { "A" "B" } { 2 }\n', 1, "2 players but strategies are given for 1"),
        ('EFG 2 R "t" { "A" }', 1, "expected 'NFG'"),
        ('NFG 1 Q "t" { "A" } { 1 }', 1, "expected 'R' or 'D'"),
        ('NFG 1 R "t { "A" } { 1 }', 1, "never closed"),
        ('NFG 1 R "t" { "A" "B" } { { "1" } { "1" } }\n{ { "o" 1 2 } }\n\n2\n', 4, "outcome 2 does not exist"),
        ('NFG 1 R "t" { "A" "B" } { { "1" } { "1" } }\n{ { "o" 1 } }\n1\n', 2, "payoff 2 of 2 in outcome 1"),
        ('NFG 1 R "t" { "A" } { 1 }\n5 6\n', 2, "end of the file"),
        ('NFG 1 R "t" { "A" } { 1 }\n1/0\n', 2, "not a number"),
        ('NFG 1 R "t" { "A" } { 1 }\n"unterminated\n', 2, "never closed"),
        ('NFG 1 R "t" { "A" } { 0 }\n', 1, "no strategies"),
        ('NFG 1 R "t" { "A" } { 1 }\n1e400\n', 2, "too large for a float"),
    ],
)
def test_malformed_files_name_line_and_problem(text, line, message):
    with pytest.raises(GameFileError, match=message) as error:
        parse_nfg(text, "bad.nfg")
    assert error.value.path == "bad.nfg"
    assert error.value.line == line
    assert str(error.value).startswith(f"bad.nfg:{line}")


def test_missing_and_binary_files_are_clear_errors(tmp_path):
    with pytest.raises(GameFileError, match="No such file"):
        read_nfg(tmp_path / "absent.nfg")
    binary = tmp_path / "binary.nfg"
    binary.write_bytes(b"\xff\xfe\x00NFG")
    with pytest.raises(GameFileError, match="not a text file"):
        read_nfg(binary)


VALID = 'NFG 1 R "t" { "P1" "P2" } { { "a" "b" } { "c" } }\n""\n{ { "" 1, 2 } { "" 3/4, -1 } }\n1 2\n'


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzzed_files_raise_only_game_file_errors(data):
    """Deleting, inserting or replacing characters of a valid file never crashes the parser."""
    text = mutate(data, VALID, list('{}"0123456789/-., \nRDNFGab') + ["1e400", "{ {", "}}"])
    try:
        game = parse_nfg(text)
    except GameFileError:
        return
    except Exception as error:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"{type(error).__name__} escaped the parser for {text!r}") from error
    assert torch.isfinite(game.payoffs).all()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_game_file_errors(text):
    try:
        parse_nfg(text)
    except GameFileError:
        pass


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "game.nfg"
    target.write_text("old content")
    write_nfg(catalog.load("rps"), target)
    assert read_nfg(target).num_actions == (3, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["game.nfg"]
