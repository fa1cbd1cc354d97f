"""CPU == CUDA: the same seeded inputs give the same results on both devices.

Matrix and tree solvers agree in float64 to rounding; particle worlds (float32) play the
same episodes to 1e-4.

Skipped when CUDA is absent; every other test also runs on CUDA through the ``device``
fixture when it is present.
"""

import numpy as np
import pytest
import torch

from games import catalog
from solvers import regret
from solvers.exploitability import nash_conv
from solvers.lemke_howson import lemke_howson
from solvers.nash_sgd import nash_sgd
from solvers.zero_sum import solve_zero_sum

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_zero_sum_solutions_agree():
    cpu = catalog.random_zero_sum(300, 250, batch_size=4, seed=0)
    cuda = catalog.random_zero_sum(300, 250, batch_size=4, seed=0, device="cuda")
    a, _ = solve_zero_sum(cpu)
    b, _ = solve_zero_sum(cuda)
    torch.testing.assert_close(a.value, b.value.cpu(), atol=1e-8, rtol=0)
    assert float(nash_conv(cuda, b.strategies).max()) <= 1e-9


def test_lemke_howson_agrees():
    cpu = catalog.random_game([8, 8], batch_size=512, seed=1)
    a = lemke_howson(cpu)
    b = lemke_howson(cpu.to("cuda"))
    torch.testing.assert_close(a.row_strategy, b.row_strategy.cpu())
    torch.testing.assert_close(a.column_strategy, b.column_strategy.cpu())


@pytest.mark.parametrize("make", [
    lambda g: regret.RegretMatching(g, plus=True, alternating=True, averaging="linear"),
    lambda g: regret.Hedge(g),
    lambda g: regret.FictitiousPlay(g),
])
def test_regret_dynamics_agree(make):
    cpu = catalog.random_game([6, 5, 4], batch_size=8, seed=2)
    a, b = make(cpu), make(cpu.to("cuda"))
    for _ in range(100):
        a.step()
        b.step()
    for x, y in zip(a.average_policy(), b.average_policy()):
        torch.testing.assert_close(x, y.cpu())


def test_nash_sgd_exact_loss_agrees():
    cpu = catalog.random_game([3, 3, 3], seed=3)
    for x, y in zip(nash_sgd(cpu, iterations=200), nash_sgd(cpu.to("cuda"), iterations=200)):
        torch.testing.assert_close(x, y.cpu())


# ----------------------------------------------------------------------------------------
# Extensive-form games: the CFR family and exploitability (float64)

DETERMINISTIC_TREE_SOLVERS = ["cfr", "cfr+", "lcfr", "dcfr", "pcfr+", "dilated-ftrl"]


@pytest.mark.parametrize("name", DETERMINISTIC_TREE_SOLVERS)
def test_tree_solvers_take_the_same_iterates_on_cuda(name, leduc):
    from solvers.registry import EXTENSIVE
    from solvers.sequence_form import nash_conv as tree_nash_conv

    make, on_cuda = EXTENSIVE[name][1], leduc.to("cuda")
    a, b = make(leduc, 0), make(on_cuda, 0)
    for _ in range(30):
        a.step()
        b.step()
    torch.testing.assert_close(a.average_policy(), b.average_policy().cpu(), atol=1e-10, rtol=0)
    cpu_value = float(tree_nash_conv(leduc, a.average_policy()))
    cuda_value = float(tree_nash_conv(on_cuda, b.average_policy()))
    assert cuda_value == pytest.approx(cpu_value, abs=1e-10)


def test_compiled_cfr_on_cuda_equals_eager_cfr_on_the_cpu(leduc):
    from solvers import cfr

    eager, fused = cfr.PCFRPlusSolver(leduc), cfr.PCFRPlusSolver(leduc.to("cuda"), compile=True)
    for _ in range(20):
        eager.step()
        fused.step()
    torch.testing.assert_close(eager.average_policy(), fused.average_policy().cpu(), atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------------------
# Markov games (float32): the same seed plays the same episodes on both devices


@pytest.mark.parametrize("name", ["spread", "tag", "adversary", "navigation"])
def test_particle_worlds_play_the_same_episodes_on_cuda(name):
    import scenarios
    from tests.games.test_markov import _random_actions

    games = [scenarios.make(name, num_envs=64, seed=5, device=device, max_cycles=10) for device in ("cpu", "cuda")]
    observed = [game.reset()[0] for game in games]
    generators = [torch.Generator().manual_seed(0) for _ in games]
    for step in range(25):
        for agent in games[0].possible_agents:
            torch.testing.assert_close(observed[1][agent].cpu(), observed[0][agent], atol=1e-4, rtol=1e-4,
                                       msg=f"{name} {agent} step {step}")
        results = [game.step(_random_actions(game, generator)) for game, generator in zip(games, generators)]
        observed = [result[0] for result in results]
        for agent in games[0].possible_agents:
            torch.testing.assert_close(results[1][1][agent].cpu(), results[0][1][agent], atol=1e-4, rtol=1e-4)
            assert torch.equal(results[1][3][agent].cpu(), results[0][3][agent])


def test_tag_tournament_payoffs_agree_on_cuda(tmp_path):
    from marl.tournaments.config import parse_config
    from marl.tournaments.run import run_tournament

    players = [
        {"name": "pursuit", "kind": "scripted"},
        {"name": "lead", "kind": "scripted", "arguments": {"lead": 0.3}},
    ]
    tables = []
    for device in ("cpu", "cuda"):
        config = parse_config({"game": "tag", "matches_per_pair": 64, "batch_size": 64, "device": device,
                               "players": players})
        tables.append(run_tournament(config, tmp_path / f"{device}.sqlite").tables.payoffs)
    np.testing.assert_allclose(tables[1], tables[0], atol=1e-3)


@pytest.mark.parametrize("name", ["leduc_poker", "kuhn_poker(players=3)"])
def test_cfr_replayed_as_a_cuda_graph_follows_the_cpu(name):
    """One iteration captured as a CUDA graph and replayed: the iterates follow the CPU's to rounding
    (CUDA's scatter-adds add in any order), and NashConv and the policies read the graph's buffers."""
    from games.adapters.openspiel import extensive_form_from_openspiel
    from solvers.cfr import CFRPlusSolver

    game = extensive_form_from_openspiel(name)
    cpu, graphed = CFRPlusSolver(game), CFRPlusSolver(game.to("cuda"), cuda_graph=True)
    for _ in range(60):
        cpu.step()
        graphed.step()
    assert graphed._graph is not None
    torch.testing.assert_close(graphed.average_policy().cpu(), cpu.average_policy(), atol=1e-9, rtol=0)
    assert graphed.nash_conv() == pytest.approx(cpu.nash_conv(), abs=1e-9)

