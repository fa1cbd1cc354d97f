"""CPU == CUDA: the same seeded inputs give the same results on both devices (float64).

Skipped when CUDA is absent; every other test also runs on CUDA through the ``device``
fixture when it is present.
"""

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
