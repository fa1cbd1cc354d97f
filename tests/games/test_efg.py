import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.efg import parse_efg, read_efg
from games.errors import GameError, GameFileError
from solvers.lp import sequence_form_lp
from solvers.sequence_form import expected_values, nash_conv
from tests import known_values as known
from tests.conftest import gambit_files
from tests.fuzzing import mutate

EFG_FILES = gambit_files(".efg")
# Gambit's own tools report these as lacking perfect recall (holdout.efg's labels are
# also rejected by pygambit 16.7); sequence-form methods do not apply to them.
IMPERFECT_RECALL = {"e09.efg", "myerson.efg", "holdout.efg"}


def pygambit_game(path):
    """pygambit's reading of a file, or None where pygambit 16.7 refuses it (duplicate labels)."""
    import pygambit

    try:
        return pygambit.read_efg(str(path))
    except ValueError:
        return None


@pytest.mark.parametrize("path", EFG_FILES, ids=lambda p: p.name)
def test_every_gambit_efg_file_compiles_or_is_refused_for_imperfect_recall(path):
    if path.name in IMPERFECT_RECALL:
        with pytest.raises(GameFileError, match="perfect recall"):
            read_efg(path)
        return
    game = read_efg(path)
    assert game.num_terminals >= 1 and torch.isfinite(game.terminal_utilities).all()


@pytest.mark.parametrize("path", [p for p in EFG_FILES if p.name not in IMPERFECT_RECALL], ids=lambda p: p.name)
def test_uniform_play_pays_what_pygambit_computes(path):
    """Checks chance probabilities, outcomes at inner nodes and player numbering together."""
    reference = pygambit_game(path)
    if reference is None:
        pytest.skip("pygambit 16.7 cannot read this file")
    game = read_efg(path)
    ours = expected_values(game, game.uniform_strategy())
    profile = reference.mixed_behavior_profile()
    for index, player in enumerate(reference.players):
        assert float(ours[index]) == pytest.approx(float(profile.payoff(player)), abs=1e-9)


def _zero_sum_two_player(path):
    if path.name in IMPERFECT_RECALL:
        return False
    game = read_efg(path)
    totals = game.terminal_utilities.sum(-1)
    return game.num_players == 2 and float((totals - totals[0]).abs().max()) <= 1e-9


ZERO_SUM = [p for p in EFG_FILES if _zero_sum_two_player(p)]


@pytest.mark.parametrize("path", ZERO_SUM, ids=lambda p: p.name)
def test_zero_sum_game_values_equal_pygambits_lp(path):
    import pygambit

    game = read_efg(path)
    solution = sequence_form_lp(game)
    assert float(nash_conv(game, solution.strategy)) < 1e-8
    assert float(expected_values(game, solution.strategy)[0]) == pytest.approx(solution.value, abs=1e-8)
    reference = pygambit_game(path)
    if reference is None:
        pytest.skip("pygambit 16.7 cannot read this file; NashConv above is the check")
    profile = pygambit.nash.lp_solve(reference, rational=False).equilibria[0]
    assert solution.value == pytest.approx(float(profile.payoff(list(reference.players)[0])), abs=1e-8)


def test_zero_sum_files_exist():
    assert len(ZERO_SUM) >= 5


def test_outcomes_at_inner_nodes_add_up():
    text = '''EFG 2 R "t" { "A" "B" }
""
p "" 1 1 "" { "x" "y" } 1 "bonus" { 10, -10 }
t "" 2 "left" { 1, 2 }
t "" 3 "right" { 3, 4 }
'''
    game = parse_efg(text)
    assert game.terminal_utilities.tolist() == [[11.0, -8.0], [13.0, -6.0]]


@pytest.mark.parametrize("text, message", [
    ('EFG 2 R "t" { "A" }\n""\nq "" 1\n', "expected a node"),
    ('EFG 2 R "t" { "A" }\n""\np "" 2 1 "" { "x" } 0\nt "" 0\n', "player 2 does not exist"),
    ('EFG 2 R "t" { "A" }\n""\np "" 1 1 "" { "x" } 0\nt "" 4\n', "outcome 4 is used before"),
    ('EFG 2 R "t" { "A" }\n""\np "" 1 1 "" { "x" } 0\n', "end of the file"),
    ('EFG 2 R "t" { "A" }\n""\np "" 1 1 0\nt "" 0\n', "without its actions"),
    ('EFG 2 R "t" { "A" }\n""\nt "" 0\nt "" 0\n', "end of the file after the last node"),
])
def test_malformed_files_name_the_line(text, message):
    with pytest.raises(GameFileError, match=message) as error:
        parse_efg(text, "bad.efg")
    assert error.value.line is not None


def test_chance_probabilities_must_sum_to_one():
    text = 'EFG 2 R "t" { "A" }\n""\nc "" 1 "" { "h" 1/2 "t" 1/3 } 0\nt "" 0\nt "" 0\n'
    with pytest.raises(GameError, match="do not form a distribution"):
        parse_efg(text)


VALID = '''EFG 2 R "t" { "A" "B" }
""
c "" 1 "" { "h" 1/2 "t" 1/2 } 0
p "" 1 1 "" { "x" "y" } 0
t "" 1 "o" { 1, -1 }
t "" 2 "o2" { -1, 1 }
p "" 1 2 "" { "x" "y" } 0
t "" 1
t "" 2
'''


def test_the_fuzzing_seed_file_is_valid():
    game = parse_efg(VALID)
    assert game.num_terminals == 4 and game.num_infosets == 2


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzzed_files_raise_only_gamelab_errors(data):
    text = mutate(data, VALID, list('{}"0123456789/-., \npct') + ["1e400", "1/0", "t \"\" 0\n"])
    try:
        parse_efg(text)
    except GameError:
        pass
    except Exception as error:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"{type(error).__name__} escaped the parser for {text!r}") from error


SAME_GAME_FIELDS = ("infoset_player", "infoset_parent", "infoset_parent_slot", "legal_mask", "terminal_utilities",
                    "terminal_chance", "terminal_last_infoset", "terminal_last_slot", "node_parent", "node_player",
                    "node_probability")


def assert_same_tree(a, b):
    for name in SAME_GAME_FIELDS:
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=1e-15, msg=name)


@pytest.mark.parametrize("path", [p for p in EFG_FILES if p.name not in IMPERFECT_RECALL], ids=lambda p: p.name)
def test_writing_a_gambit_file_back_gives_the_same_game(path, tmp_path):
    from games.efg import write_efg

    game = read_efg(path)
    out = tmp_path / "copy.efg"
    write_efg(game, out)
    again = read_efg(out)
    assert_same_tree(game, again)
    assert again.infoset_keys == game.infoset_keys and again.action_labels == game.action_labels
    assert again.title == game.title


@pytest.mark.parametrize("name", ["kuhn_poker", "kuhn_poker(players=3)", "leduc_poker"])
def test_openspiel_games_written_as_efg_read_back_as_the_same_tree(name):
    from games.adapters.openspiel import extensive_form_from_openspiel
    from games.efg import format_efg

    game = extensive_form_from_openspiel(name)
    again = parse_efg(format_efg(game))
    assert_same_tree(game, again)
    # Labels carry OpenSpiel's information-state strings and action names.
    assert [key.split(" ", 1)[1] for key in again.infoset_keys] == game.infoset_keys
    assert again.action_labels == game.action_labels


def test_pygambit_reads_our_kuhn_poker_and_finds_its_value(tmp_path):
    """Kuhn poker's value -1/18 (Kuhn 1950), from pygambit's sequence-form LP on the file we wrote."""
    pygambit = pytest.importorskip("pygambit")
    from fractions import Fraction

    from games.adapters.openspiel import extensive_form_from_openspiel
    from games.efg import write_efg

    write_efg(extensive_form_from_openspiel("kuhn_poker"), tmp_path / "kuhn.efg")
    gambit_game = pygambit.read_efg(str(tmp_path / "kuhn.efg"))
    profile = pygambit.nash.lp_solve(gambit_game, rational=True).equilibria[0]
    assert Fraction(str(profile.payoff(list(gambit_game.players)[0]))) == known.KUHN_VALUE_FRACTION


def test_a_doubled_sign_is_a_malformed_number():
    """Found by the fuzzer: ``--1`` as an outcome number escaped the parser as a ValueError."""
    text = 'EFG 2 R "t" { "A" "B" }\n""\np "" 1 1 "" { "x" "y" } 0\nt "" --1 "o" { 1, -1 }\nt "" 0\n'
    with pytest.raises(GameFileError, match="whole number"):
        parse_efg(text)
