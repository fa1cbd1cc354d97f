import pyspiel
import pytest
import torch
from open_spiel.python.algorithms import exploitability

from games.adapters.openspiel import (
    extensive_form_from_openspiel,
    strategy_from_tabular_policy,
    strategy_to_tabular_policy,
)
from games.errors import GameError
from games.extensive_form import TreeCompiler
from solvers import sequence_form
from tests import known_values as known

GAMES = ["kuhn_poker", "leduc_poker", "kuhn_poker(players=3)", "goofspiel(num_cards=3)"]


def spiel_game(name):
    game = pyspiel.load_game(name)
    if game.get_type().dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
        game = pyspiel.convert_to_turn_based(game)
    return game


def random_strategy(game, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(game.num_infosets, game.max_actions, generator=generator, dtype=torch.float64)
    return torch.softmax(logits.masked_fill(~game.legal_mask.cpu(), -torch.inf), -1).to(game.device)


@pytest.fixture(scope="module")
def compiled():
    return {name: extensive_form_from_openspiel(name) for name in GAMES}


def test_tree_sizes_match_openspiel(compiled):
    for name, sizes in (("kuhn_poker", known.KUHN_SIZES), ("leduc_poker", known.LEDUC_SIZES)):
        game = compiled[name]
        assert (game.num_nodes, game.num_terminals, game.num_infosets) == tuple(sizes.values())


def test_uniform_nash_conv_known_values(compiled):
    for name, expected in (("kuhn_poker", known.KUHN_UNIFORM_NASH_CONV), ("leduc_poker", known.LEDUC_UNIFORM_NASH_CONV)):
        game = compiled[name]
        assert float(sequence_form.nash_conv(game, game.uniform_strategy())) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("name", GAMES)
def test_nash_conv_and_best_responses_equal_openspiel(name, compiled, device):
    game = compiled[name].to(device)
    spiel = spiel_game(name)
    for seed in range(3):
        strategy = random_strategy(game, seed)
        policy = strategy_to_tabular_policy(game, strategy, spiel)
        ours = float(sequence_form.nash_conv(game, strategy))
        assert ours == pytest.approx(exploitability.nash_conv(spiel, policy), abs=1e-9)
        values = sequence_form.best_response_values(game, strategy)
        for player in range(game.num_players):
            from open_spiel.python.algorithms import best_response

            reference = best_response.BestResponsePolicy(spiel, player, policy).value(spiel.new_initial_state())
            assert float(values[player]) == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("name", GAMES)
def test_best_response_strategy_achieves_the_best_response_value(name, compiled):
    game = compiled[name]
    strategy = random_strategy(game, 7)
    values = sequence_form.best_response_values(game, strategy)
    for player in range(game.num_players):
        responded = sequence_form.best_response(game, strategy, player)
        achieved = sequence_form.expected_values(game, responded)[player]
        assert float(achieved) == pytest.approx(float(values[player]), abs=1e-12)


@pytest.mark.parametrize("name", GAMES)
def test_policy_round_trip_is_exact(name, compiled):
    game = compiled[name]
    strategy = random_strategy(game, 1)
    back = strategy_from_tabular_policy(game, strategy_to_tabular_policy(game, strategy, spiel_game(name)))
    assert torch.equal(back, strategy)


def test_expected_values_of_zero_sum_games_sum_to_zero(compiled):
    game = compiled["leduc_poker"]
    assert float(sequence_form.expected_values(game, random_strategy(game, 3)).sum()) == pytest.approx(0, abs=1e-12)


def test_hand_written_tree_matching_pennies_in_sequence():
    """Player 0 picks, player 1 picks without seeing it: the matching-pennies tree."""
    compiler = TreeCompiler(2)
    root = compiler.decision(-1, -1, 0, "p0", [0, 1])
    for first in range(2):
        node = compiler.decision(root, first, 1, "p1", [0, 1])
        for second in range(2):
            win = 1.0 if first == second else -1.0
            compiler.terminal(node, second, [win, -win])
    game = compiler.compile()
    assert game.num_infosets == 2 and game.num_terminals == 4
    assert float(sequence_form.nash_conv(game, game.uniform_strategy())) == pytest.approx(0, abs=1e-15)
    pure = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    assert float(sequence_form.nash_conv(game, pure)) == pytest.approx(1.0)  # player 1 gains 1 by matching


def test_bad_trees_are_clear_errors():
    compiler = TreeCompiler(2)
    with pytest.raises(GameError, match="do not form a distribution"):
        compiler.chance(-1, -1, [0.5, 0.6])
    compiler = TreeCompiler(1)
    root = compiler.decision(-1, -1, 0, "I", [0, 1])
    compiler.decision(root, 0, 0, "J", [0, 1])
    with pytest.raises(GameError, match="perfect recall"):
        compiler.decision(root, 1, 0, "J", [0, 1])
    with pytest.raises(GameError, match="not finite"):
        TreeCompiler(1).terminal(-1, -1, [float("nan")])
    with pytest.raises(GameError, match="more than 2 nodes"):
        small = TreeCompiler(1, max_nodes=2)
        small.decision(-1, -1, 0, "I", [0, 1])
        small.terminal(0, 0, [1.0])
        small.terminal(0, 1, [0.0])


def test_unknown_openspiel_game():
    with pytest.raises(GameError, match="cannot load"):
        extensive_form_from_openspiel("no_such_game")


def test_strategy_validation_names_the_infoset(compiled):
    game = compiled["kuhn_poker"]
    bad = game.uniform_strategy().clone()
    bad[3] = torch.tensor([0.9, 0.3], dtype=torch.float64)
    with pytest.raises(GameError, match=repr(game.infoset_keys[3])):
        game.check_strategy(bad)


def test_strategy_dict_round_trip_and_validation(compiled, tmp_path):
    import json

    from games.errors import GameFileError
    from games.extensive_form import read_strategy, strategy_from_dict, strategy_to_dict

    game = compiled["leduc_poker"]
    strategy = random_strategy(game, 4)
    mapping = strategy_to_dict(game, strategy)
    assert torch.equal(strategy_from_dict(game, mapping), strategy)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(mapping))
    assert torch.equal(read_strategy(game, path), strategy)

    key = game.infoset_keys[0]
    broken = dict(mapping)
    del broken[key]
    with pytest.raises(GameError, match="is missing"):
        strategy_from_dict(game, broken)
    with pytest.raises(GameError, match="not in this game"):
        strategy_from_dict(game, {**mapping, "nonsense": {"0": 1.0}})
    with pytest.raises(GameError, match="no legal action"):
        strategy_from_dict(game, {**mapping, key: {"99": 1.0}})
    with pytest.raises(GameError, match="not a distribution"):
        strategy_from_dict(game, {**mapping, key: {a: 0.9 for a in mapping[key]}})
    path.write_text("{ not json")
    with pytest.raises(GameFileError, match="not valid JSON") as error:
        read_strategy(game, path)
    assert error.value.line == 1


def test_knuths_estimate_of_a_tree_size_is_unbiased():
    """Kuhn poker has 58 histories and Leduc 9,457 (OpenSpiel's trees, compiled here): the mean of many
    random-path estimates (Knuth 1975) comes close to both."""
    import pyspiel

    from games.adapters.openspiel import estimate_tree_size, extensive_form_from_openspiel, load_turn_based

    for name, probes in (("kuhn_poker", 4000), ("leduc_poker", 4000)):
        exact = extensive_form_from_openspiel(name).num_nodes
        estimate = estimate_tree_size(load_turn_based(pyspiel.load_game(name)), probes=probes, seed=1)
        assert abs(estimate - exact) / exact < 0.1, (name, estimate, exact)


def test_a_tree_too_large_for_memory_is_refused_before_its_walk(capsys):
    """oshi_zumo(coins=5,size=2) would take tens of GB: refused at once, naming the parameters to change."""
    from marl.cli import main

    assert main(["solve", "oshi_zumo(coins=5,size=2)", "--max-memory", "2GB"]) == 2
    error = capsys.readouterr().err
    assert "estimated from 200 random plays" in error and "coins=" in error and "--max-memory" in error


@pytest.mark.parametrize("sizes", [(3, 3), (2, 4), (2, 3, 2)])
def test_a_normal_form_game_as_a_tree_keeps_its_payoffs_and_nash_conv(sizes):
    from games.catalog import random_game
    from games.extensive_form import tree_from_normal_form
    from solvers.exploitability import nash_conv

    game = random_game(list(sizes), seed=sum(sizes))
    tree = tree_from_normal_form(game)
    assert tree.num_infosets == len(sizes) and tree.num_terminals == torch.tensor(sizes).prod()
    strategy = random_strategy(tree, seed=3)
    mixed = [strategy[player, : sizes[player]] for player in range(len(sizes))]
    assert torch.allclose(sequence_form.expected_values(tree, strategy), game.expected_payoffs(mixed))
    assert torch.isclose(sequence_form.nash_conv(tree, strategy), nash_conv(game, mixed))


def test_information_state_tensors_are_openspiels_at_every_infoset():
    import numpy as np

    from games.adapters.openspiel import information_state_tensors

    game = extensive_form_from_openspiel("leduc_poker")
    tensors = information_state_tensors(game, "leduc_poker")
    spiel = pyspiel.load_game("leduc_poker")
    assert tensors.shape == (game.num_infosets, spiel.information_state_tensor_size())
    index = {key: infoset for infoset, key in enumerate(game.infoset_keys)}
    rng = np.random.default_rng(0)
    for _ in range(300):  # random plays: every decision met is checked against OpenSpiel's own tensor
        state = spiel.new_initial_state()
        while not state.is_terminal():
            if state.is_chance_node():
                actions, probabilities = zip(*state.chance_outcomes())
                state.apply_action(int(rng.choice(actions, p=probabilities)))
                continue
            player = state.current_player()
            row = tensors[index[state.information_state_string(player)]]
            assert torch.equal(row, torch.tensor(state.information_state_tensor(player), dtype=torch.float32))
            state.apply_action(int(rng.choice(state.legal_actions())))
    assert information_state_tensors(extensive_form_from_openspiel("kuhn_poker"), "kuhn_poker").unique(dim=0).shape[0] \
        == 12
