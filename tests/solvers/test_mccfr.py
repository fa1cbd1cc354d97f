import pytest
import torch

from games.adapters.openspiel import extensive_form_from_openspiel
from games.errors import SolverError
from solvers.mccfr import ExternalSamplingMCCFR, OutcomeSamplingMCCFR
from solvers.sequence_form import (
    counterfactual_values,
    expected_values,
    flat_realization_plans,
    nash_conv,
    terminal_own_reach,
)
from tests import known_values as known


def exact_regrets(game, strategy, player):
    """CFR's instantaneous counterfactual regrets of ``player`` (0 on other rows)."""
    own_reach = terminal_own_reach(game, flat_realization_plans(game, strategy))
    values, infoset_values, _ = counterfactual_values(game, strategy, player, own_reach)
    mine = (game.infoset_player == player)[:, None]
    return (values - infoset_values[:, None]) * game.legal_mask * mine


def skewed_strategy(game, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.rand(game.num_infosets, game.max_actions, generator=generator, dtype=game.dtype) + 0.05
    weights = weights.to(game.device) * game.legal_mask
    return weights / weights.sum(-1, keepdim=True)


@pytest.mark.parametrize("solver_class, samples", [(ExternalSamplingMCCFR, 20_000), (OutcomeSamplingMCCFR, 400_000)])
@pytest.mark.parametrize("player", [0, 1])
def test_sampled_regrets_are_unbiased(solver_class, samples, player, kuhn, device):
    """Lanctot et al. 2009, Lemma 1: the sampled counterfactual regrets' mean is CFR's."""
    game = kuhn.to(device)
    solver = solver_class(game, samples=samples, seed=1)
    solver._strategy = skewed_strategy(game)
    solver._traverse(player)
    expected = exact_regrets(game, solver._strategy, player)
    torch.testing.assert_close(solver._regrets / samples, expected, atol=0.02, rtol=0)
    assert float(expected.abs().max()) > 0.1  # the check has something to find


@pytest.mark.parametrize("make, iterations, bound", [
    # OpenSpiel's external sampling reaches 0.055 after 2000 iterations with its seed 0.
    (lambda g: ExternalSamplingMCCFR(g, seed=0), 2000, 0.06),
    (lambda g: OutcomeSamplingMCCFR(g, samples=64, seed=0), 500, 0.05),
], ids=["external", "outcome"])
def test_sampling_converges_on_kuhn(make, iterations, bound, kuhn):
    solver = make(kuhn)
    for _ in range(iterations):
        solver.step()
    average = solver.average_policy()
    kuhn.check_strategy(average)
    assert float(nash_conv(kuhn, average)) < bound
    assert float(expected_values(kuhn, average)[0]) == pytest.approx(known.KUHN_VALUE, abs=0.01)


@pytest.mark.parametrize("solver_class, samples, iterations, bound", [
    (ExternalSamplingMCCFR, 16, 500, 1.0),
    (OutcomeSamplingMCCFR, 1024, 300, 1.0),
])
def test_batched_samples_converge_on_leduc(solver_class, samples, iterations, bound, leduc):
    solver = solver_class(leduc, samples=samples, seed=0)
    for _ in range(iterations):
        solver.step()
    gap = float(nash_conv(leduc, solver.average_policy()))
    assert gap < bound < known.LEDUC_UNIFORM_NASH_CONV


def test_three_players(device):
    game = extensive_form_from_openspiel("kuhn_poker(players=3)").to(device)
    start = float(nash_conv(game, game.uniform_strategy()))
    solver = ExternalSamplingMCCFR(game, samples=8, seed=0)
    for _ in range(300):
        solver.step()
    assert float(nash_conv(game, solver.average_policy())) < start / 4


def test_seeds_reproduce(kuhn):
    runs = []
    for seed in (3, 3, 4):
        solver = OutcomeSamplingMCCFR(kuhn, seed=seed)
        for _ in range(50):
            solver.step()
        runs.append(solver.average_policy())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_bad_options(kuhn):
    with pytest.raises(SolverError, match="epsilon"):
        OutcomeSamplingMCCFR(kuhn, epsilon=0.0)
    with pytest.raises(SolverError, match="samples"):
        ExternalSamplingMCCFR(kuhn, samples=0)
