import pytest
import torch

from games.adapters.openspiel import extensive_form_from_openspiel
from games.errors import SolverError
from solvers.ftrl import (
    BalancedFTRL,
    DilatedFTRL,
    balanced_weights,
    dilated_entropy_strategy,
)
from solvers.sequence_form import expected_values, nash_conv, player_plans, treeplexes
from tests import known_values as known


def regularized_objective(game, player, gains, rates, strategy):
    """<G, x> - sum_I (1 / eta_I) x_parent(I) sum_a s log s over ``player``'s infosets."""
    treeplex = treeplexes(game)[player]
    plan = player_plans(game, strategy)[player]
    entropy = treeplex.segment_sums(torch.special.xlogy(treeplex.pack(strategy), treeplex.pack(strategy)))
    penalty = (plan[treeplex.infoset_parent] * entropy / rates).sum()
    return (gains * plan)[:-1].sum() - penalty


@pytest.mark.parametrize("player", [0, 1])
def test_dilated_strategy_maximises_the_regularized_objective(kuhn, player, device):
    """The bottom-up fold is FTRL's argmax: no other strategy scores higher."""
    game = kuhn.to(device)
    treeplex = treeplexes(game)[player]
    generator = torch.Generator().manual_seed(player)
    gains = (torch.randn(treeplex.size + 1, generator=generator, dtype=game.dtype) * 3).to(device)
    rates = (torch.rand(treeplex.num_infosets, generator=generator, dtype=game.dtype) + 0.5).to(device)
    best = treeplex.unpack_into(game.uniform_strategy(), dilated_entropy_strategy(treeplex, gains, rates))
    top = regularized_objective(game, player, gains, rates, best)
    for _ in range(200):
        other = torch.rand(game.num_infosets, game.max_actions, generator=generator, dtype=game.dtype).to(device)
        other = other * game.legal_mask
        other = other / other.sum(-1, keepdim=True)
        assert float(regularized_objective(game, player, gains, rates, other)) <= float(top) + 1e-9
        nudged = (0.99 * best + 0.01 * other)
        assert float(regularized_objective(game, player, gains, rates, nudged)) <= float(top) + 1e-9


def test_balanced_weights_by_hand(kuhn):
    """Kuhn poker, player 0 at card c: pass/bet, and after pass-bet a call/fold infoset.
    A(c) = 2 + 2, A(c, pass) = 1 + 2, A(c, bet) = 1: the balanced policy is (3/4, 1/4) and
    the balanced transition into ``c pb`` is A(c pb) / A(c, pass) = 2 / 3. Player 1's
    infosets have no infosets below them: policy (1/2, 1/2), transition 1."""
    transitions, policy = balanced_weights(kuhn)
    for infoset, key in enumerate(kuhn.infoset_keys):
        player = int(kuhn.infoset_player[infoset])
        history = key.split()[-1] if player == 0 else key
        if player == 0 and len(key) == 1:
            assert policy[infoset].tolist() == [0.75, 0.25]
            assert float(transitions[infoset]) == 1.0
        elif player == 0:
            assert policy[infoset].tolist() == [0.5, 0.5], history
            assert float(transitions[infoset]) == pytest.approx(2 / 3)
        else:
            assert policy[infoset].tolist() == [0.5, 0.5]
            assert float(transitions[infoset]) == 1.0


@pytest.mark.parametrize("weights", ["uniform", "balanced"])
def test_dilated_ftrl_converges(kuhn, weights):
    solver = DilatedFTRL(kuhn, weights=weights)
    for _ in range(1000):
        solver.step()
    average = solver.average_policy()
    assert float(nash_conv(kuhn, average)) < 3e-3
    assert float(expected_values(kuhn, average)[0]) == pytest.approx(known.KUHN_VALUE, abs=1e-3)


def test_dilated_ftrl_on_leduc_and_three_players():
    leduc = extensive_form_from_openspiel("leduc_poker")
    solver = DilatedFTRL(leduc)
    for _ in range(500):
        solver.step()
    assert float(nash_conv(leduc, solver.average_policy())) < 0.05
    three = extensive_form_from_openspiel("kuhn_poker(players=3)")
    solver = DilatedFTRL(three)
    for _ in range(300):
        solver.step()
    assert float(nash_conv(three, solver.average_policy())) < 0.05


def test_balanced_ftrl_learns_from_trajectories(kuhn):
    solver = BalancedFTRL(kuhn, seed=0)
    for _ in range(2000):
        solver.step()
    average = solver.average_policy()
    kuhn.check_strategy(average)
    assert float(nash_conv(kuhn, average)) < 0.06 < known.KUHN_UNIFORM_NASH_CONV


def test_first_iterate_of_balanced_ftrl_is_the_balanced_policy(kuhn):
    """With no losses yet, FTRL plays the regularizer's maximiser: the balanced policy."""
    _, policy = balanced_weights(kuhn)
    torch.testing.assert_close(BalancedFTRL(kuhn).current_policy(), policy)


def test_bad_options(kuhn):
    with pytest.raises(SolverError, match="weights"):
        DilatedFTRL(kuhn, weights="heavy")
    with pytest.raises(SolverError, match="learning rate"):
        DilatedFTRL(kuhn, learning_rate=0.0)
    with pytest.raises(SolverError, match="episodes"):
        BalancedFTRL(kuhn, episodes=0)


@pytest.mark.parametrize("options", [{}, {"optimistic": False}, {"weights": "uniform"}])
def test_replayed_iterations_equal_eager_ones_bit_for_bit(leduc, options):
    """Dilated FTRL's iteration is recorded once and replayed (solvers.recording): the same iterates."""
    replayed, eager = DilatedFTRL(leduc, **options), DilatedFTRL(leduc, trace=False, **options)
    for _ in range(20):
        replayed.step()
        eager.step()
    assert "iterate" in replayed._recorder and "iterate" not in eager._recorder
    assert torch.equal(replayed.current_policy(), eager.current_policy())
    assert torch.equal(replayed.average_policy(), eager.average_policy())
