import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games import catalog
from games.errors import SolverError
from solvers.exploitability import nash_conv
from solvers.nash_sgd import StackedPayoffs, nash_loss, nash_sgd


def test_three_player_matching_pennies_reaches_its_unique_uniform_equilibrium():
    game = catalog.load("three_player_matching_pennies")
    start = [torch.tensor([0.8, 0.2], dtype=torch.float64)] * 3
    profile = nash_sgd(game, iterations=500)
    assert float(nash_conv(game, profile)) < 1e-6
    assert float(nash_conv(game, start)) > 0.1


def test_exact_loss_finds_battle_of_the_sexes_mixed_equilibrium_approximately():
    game = catalog.load("battle_of_the_sexes")
    profile = nash_sgd(game, iterations=2000)
    assert float(nash_conv(game, profile)) < 0.01  # the QRE at tau = 0.01 is near (3/5, 2/5)
    assert float(profile[0][0]) == pytest.approx(0.6, abs=0.01)


def test_sampled_loss_is_an_unbiased_estimate_of_the_exact_loss():
    """The estimator of Gemp et al. (2024), eq. for L-hat: its mean is the exact loss."""
    game = catalog.random_game([3, 4, 2], seed=1, batch_size=1)
    generator = torch.Generator().manual_seed(0)
    profile = [torch.softmax(torch.randn(1, n, generator=generator, dtype=torch.float64), -1) for n in (3, 4, 2)]
    exact = float(nash_loss(game, profile, 0.05))
    estimates = torch.stack([nash_loss(game, profile, 0.05, samples=1, generator=generator) for _ in range(4000)])
    standard_error = float(estimates.std()) / 4000**0.5
    assert abs(float(estimates.mean()) - exact) < 4 * standard_error


def test_sgd_lowers_the_exact_loss_with_sampled_gradients():
    game = catalog.random_game([3, 3, 3], seed=1, batch_size=4)
    before = nash_loss(game, game.uniform_strategies(), 0.01)
    profile = nash_sgd(game, iterations=600, samples=64, seed=0, learning_rate=0.01)
    after = nash_loss(game, profile, 0.01)
    assert float(after.sum()) < 0.5 * float(before.sum())


def test_same_seed_same_result():
    game = catalog.random_game([3, 3], seed=2)
    a = nash_sgd(game, iterations=50, samples=8, seed=5)
    b = nash_sgd(game, iterations=50, samples=8, seed=5)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_bad_options():
    game = catalog.load("rps")
    with pytest.raises(SolverError, match="temperature"):
        nash_sgd(game, temperature=0)
    with pytest.raises(SolverError, match="samples"):
        nash_sgd(game, samples=0)


def test_annealing_the_temperature_moves_from_the_qre_toward_the_nash_equilibrium():
    """At a fixed tau Nash-SGD converges to a logit QRE (NashConv 6e-3 on van der Laan's g1); annealing
    tau to 1e-4 brings it within 1e-4 of the Nash equilibrium, close enough for the polish."""
    import torch

    from games.loading import load_game
    from solvers.exploitability import nash_conv
    from tests.conftest import GAMBIT_DATA

    game = load_game(str(GAMBIT_DATA / "g1.nfg"), dtype=torch.float64)
    fixed = float(nash_conv(game, nash_sgd(game, final_temperature=None, iterations=1000)))
    annealed = float(nash_conv(game, nash_sgd(game, iterations=1000)))
    assert annealed < fixed / 20 and annealed < 1e-4


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(2, 4), min_size=2, max_size=4), st.floats(1e-4, 0.5))
def test_the_closed_form_gradient_equals_autograds(seed, actions, temperature):
    """exact_loss_and_gradient's gradient of L_tau against autograd through nash_loss, on a batch of games."""
    from games.normal_form import NormalFormGame
    from solvers.nash_sgd import exact_loss_and_gradient, nash_loss

    generator = torch.Generator().manual_seed(seed)
    game = NormalFormGame(torch.randn(3, len(actions), *actions, generator=generator, dtype=torch.float64),
                          batched=True)
    strategies = [torch.softmax(torch.randn(3, count, generator=generator, dtype=torch.float64), -1).requires_grad_(True)
                  for count in actions]
    loss = nash_loss(game, strategies, temperature)
    expected = torch.autograd.grad(loss.sum(), strategies)
    value, gradients = exact_loss_and_gradient(game.batched_payoffs, [s.detach() for s in strategies], temperature)
    assert torch.allclose(value, loss.detach(), atol=1e-12)
    for mine, theirs in zip(gradients, expected):
        assert torch.allclose(mine, theirs, atol=1e-10)
    # The stacked form (all players in one call, unequal counts padded) gives the same loss and gradient.
    stacked = StackedPayoffs(game.batched_payoffs, actions)
    padded = torch.zeros(3, len(actions), max(actions), dtype=torch.float64)
    for player, strategy in enumerate(strategies):
        padded[:, player, :actions[player]] = strategy.detach()
    value, gradient = stacked.loss_and_gradient(padded, temperature)
    assert torch.allclose(value, loss.detach(), atol=1e-12)
    for player, (mine, theirs) in enumerate(zip(stacked.unstack(gradient), expected)):
        assert torch.allclose(mine, theirs, atol=1e-10)
        assert torch.all(gradient[:, player, actions[player]:] == 0)


def test_stacking_refuses_padding_that_would_dwarf_the_game_and_nash_sgd_keeps_the_per_player_form():
    """Counts (2, 2, 40) padded to 40 each would hold 64,000 entries per table for 160 payoffs."""
    game = catalog.random_game([2, 2, 40], seed=4)
    with pytest.raises(ValueError, match="stacking"):
        StackedPayoffs(game.as_batched().batched_payoffs, [2, 2, 40])
    StackedPayoffs(catalog.random_game([2, 2, 9], seed=4).as_batched().batched_payoffs, [2, 2, 9])  # small: padded
    replayed = nash_sgd(game, iterations=100)
    eager = nash_sgd(game, iterations=100, trace=False)
    for mine, theirs in zip(replayed, eager):
        assert torch.equal(mine, theirs)
        assert torch.allclose(mine.sum(), torch.tensor(1.0, dtype=mine.dtype))


@pytest.mark.slow
def test_a_compiled_run_follows_the_eager_one():
    """torch.compile fuses an iteration; the fused sums add in another order, so iterates agree to rounding."""
    game = catalog.random_game([2, 2, 2], seed=1)
    eager = nash_sgd(game, iterations=300)
    compiled = nash_sgd(game, iterations=300, compile=True)
    for mine, theirs in zip(compiled, eager):
        assert torch.allclose(mine, theirs, atol=1e-9)


@pytest.mark.parametrize("actions, batch", [([2, 2, 2], None), ([3, 4, 2], None), ([3, 3, 3], 5)])
def test_a_replayed_run_equals_the_eager_one_bit_for_bit(actions, batch):
    """The recorded iteration replays the same tensor operations, so its iterates are the eager ones exactly,
    on single and batched games, and what the callback sees is an ordinary tensor."""
    game = catalog.random_game(actions, seed=3) if batch is None else catalog.random_game(actions, seed=3, batch_size=batch)
    seen = []
    replayed = nash_sgd(game, iterations=150, callback=lambda i, profile: seen.append(profile), callback_every=50)
    eager = nash_sgd(game, iterations=150, trace=False)
    assert len(seen) == 3 and not seen[-1][0].is_inference()
    for mine, theirs in zip(replayed, eager):
        assert torch.equal(mine, theirs)


def test_a_one_player_game_keeps_the_per_player_form_and_finds_the_best_action():
    game = catalog.random_game([3], seed=0)  # payoffs 0.94, 0.42, -0.08
    with pytest.raises(ValueError, match="two players"):
        StackedPayoffs(game.as_batched().batched_payoffs, [3])
    (profile,) = nash_sgd(game, iterations=300)
    assert int(profile.argmax()) == int(game.payoffs[0].argmax()) and float(profile.max()) > 0.99
