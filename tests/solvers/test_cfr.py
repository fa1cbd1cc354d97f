import pyspiel
import pytest
import torch
from open_spiel.python.algorithms import cfr as openspiel_cfr
from open_spiel.python.algorithms import discounted_cfr as openspiel_discounted
from open_spiel.python.algorithms import exploitability as openspiel_exploitability

from games.adapters.openspiel import (
    extensive_form_from_openspiel,
    strategy_from_tabular_policy,
    strategy_to_tabular_policy,
)
from games.errors import SolverError
from solvers import cfr
from solvers.sequence_form import expected_values, nash_conv
from tests import known_values as known

SOLVERS = {
    "cfr": lambda g, **options: cfr.CFRSolver(g, **options),
    "cfr-alternating": lambda g, **options: cfr.CFRSolver(g, alternating=True, **options),
    "cfr+": cfr.CFRPlusSolver,
    "lcfr": cfr.LinearCFRSolver,
    "dcfr": cfr.DCFRSolver,
    "pcfr+": cfr.PCFRPlusSolver,
}

# (solver, iterations, NashConv bound of the average strategy) on Kuhn and on Leduc.
KUHN_BOUNDS = {"cfr": (2000, 2e-2), "cfr-alternating": (2000, 5e-3), "cfr+": (1000, 1e-3),
               "lcfr": (1000, 1e-3), "dcfr": (1000, 1e-3), "pcfr+": (1000, 1e-4)}
LEDUC_BOUNDS = {"cfr": (300, 0.3), "cfr-alternating": (300, 0.3), "cfr+": (300, 1e-2),
                "lcfr": (300, 5e-2), "dcfr": (300, 1e-2), "pcfr+": (300, 1e-2)}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_kuhn_value_and_convergence(name, kuhn):
    iterations, bound = KUHN_BOUNDS[name]
    solver = SOLVERS[name](kuhn)
    for _ in range(iterations):
        solver.step()
    average = solver.average_policy()
    assert float(nash_conv(kuhn, average)) < bound
    assert float(expected_values(kuhn, average)[0]) == pytest.approx(known.KUHN_VALUE, abs=bound)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_leduc_convergence(name, leduc):
    iterations, bound = LEDUC_BOUNDS[name]
    solver = SOLVERS[name](leduc)
    for _ in range(iterations):
        solver.step()
    assert float(nash_conv(leduc, solver.average_policy())) < bound


OPENSPIEL_TWINS = [
    ("cfr+", cfr.CFRPlusSolver, openspiel_cfr.CFRPlusSolver),
    ("cfr", lambda g: cfr.CFRSolver(g, alternating=True), openspiel_cfr.CFRSolver),
    ("lcfr", cfr.LinearCFRSolver, openspiel_discounted.LCFRSolver),
    ("dcfr", cfr.DCFRSolver, openspiel_discounted.DCFRSolver),
]


@pytest.mark.parametrize("game_name", ["kuhn_poker", "leduc_poker", "kuhn_poker(players=3)"])
@pytest.mark.parametrize("label, ours, theirs", OPENSPIEL_TWINS, ids=[t[0] for t in OPENSPIEL_TWINS])
def test_iterates_equal_openspiels_python_solvers(game_name, label, ours, theirs):
    """Same algorithm, independent implementation: current and average policies agree."""
    game = extensive_form_from_openspiel(game_name)
    spiel = pyspiel.load_game(game_name)
    a, b = ours(game), theirs(spiel)
    for _ in range(15):
        a.step()
        b.evaluate_and_update_policy()
    torch.testing.assert_close(a.current_policy(), strategy_from_tabular_policy(game, b.current_policy()), atol=1e-9, rtol=0)
    torch.testing.assert_close(a.average_policy(), strategy_from_tabular_policy(game, b.average_policy()), atol=1e-9, rtol=0)


@pytest.mark.parametrize("game_name", ["leduc_poker", "kuhn_poker(players=3)"])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_nash_conv_from_average_plans_equals_openspiels(game_name, name):
    """The solver's NashConv, taken from its summed realization plans without building the
    average strategy, equals OpenSpiel's exploitability code on that strategy."""
    game = extensive_form_from_openspiel(game_name)
    spiel = pyspiel.load_game(game_name)
    solver = SOLVERS[name](game)
    assert solver.nash_conv() == pytest.approx(float(nash_conv(game, solver.average_policy())), abs=1e-12)
    for _ in range(7):
        solver.step()
    average = solver.average_policy()
    theirs = openspiel_exploitability.nash_conv(spiel, strategy_to_tabular_policy(game, average, spiel))
    assert solver.nash_conv() == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize("game_name", ["leduc_poker", "kuhn_poker(players=3)"])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_traced_iterations_equal_eager_ones_bit_for_bit(game_name, name):
    """Replaying the recorded iteration runs the same operations as Python does."""
    game = extensive_form_from_openspiel(game_name)
    traced, eager = SOLVERS[name](game), SOLVERS[name](game, trace=False)
    for _ in range(25):
        traced.step()
        eager.step()
    assert "iterate" in traced._recorder and "iterate" not in eager._recorder
    assert torch.equal(traced.current_policy(), eager.current_policy())
    assert torch.equal(traced.average_policy(), eager.average_policy())
    assert traced.nash_conv() == eager.nash_conv()


def test_policies_are_ordinary_tensors(kuhn):
    """Iterations run in inference mode; what a solver hands out can still enter autograd."""
    solver = cfr.CFRPlusSolver(kuhn)
    for _ in range(3):
        solver.step()
    weights = torch.ones_like(solver.average_policy(), requires_grad=True)
    (solver.average_policy() * weights).sum().backward()
    torch.testing.assert_close(weights.grad, solver.average_policy())
    (solver.current_policy() * weights).sum().backward()


def test_same_iterates_on_every_device(kuhn, device):
    a, b = cfr.CFRPlusSolver(kuhn), cfr.CFRPlusSolver(kuhn.to(device))
    for _ in range(50):
        a.step()
        b.step()
    torch.testing.assert_close(a.average_policy(), b.average_policy().cpu())


def test_policies_are_distributions_over_legal_actions(leduc):
    solver = cfr.PCFRPlusSolver(leduc)
    for _ in range(20):
        solver.step()
    for policy in (solver.current_policy(), solver.average_policy()):
        leduc.check_strategy(policy)


def test_bad_options(kuhn):
    with pytest.raises(SolverError, match="cuda_graph needs a game on a CUDA device"):
        cfr.CFRPlusSolver(kuhn, cuda_graph=True)
    with pytest.raises(SolverError, match="choose one"):
        cfr.CFRPlusSolver(kuhn, cuda_graph=True, compile=True)
    with pytest.raises(SolverError, match="averaging"):
        cfr.CFRSolver(kuhn, averaging="cubic")
    with pytest.raises(SolverError, match="discount"):
        cfr.CFRSolver(kuhn, discount=(1.0, 2.0))


def test_compiled_iterations_equal_eager_ones_to_rounding(kuhn):
    eager, fused = cfr.PCFRPlusSolver(kuhn), cfr.PCFRPlusSolver(kuhn, compile=True)
    for _ in range(10):
        eager.step()
        fused.step()
    torch.testing.assert_close(fused.current_policy(), eager.current_policy(), atol=1e-10, rtol=0)
    torch.testing.assert_close(fused.average_policy(), eager.average_policy(), atol=1e-10, rtol=0)
