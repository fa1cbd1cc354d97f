"""Approximate Nash equilibria of N-player games by stochastic optimization of a Nash loss.

Gemp, Marris and Piliouras, "Approximating Nash Equilibria in Normal-Form Games via
Stochastic Optimization", ICLR 2024.

For a profile ``x`` and temperature ``tau > 0``, player k's entropy-regularized utility
has gradient ``g_k = u_k(., x_-k) - tau (log x_k + 1)``. Its projection onto the tangent
space of the simplex, ``Π(g_k) = g_k - mean(g_k)``, vanishes exactly at a quantal
response equilibrium (a logit QRE, which approaches a Nash equilibrium as tau -> 0). The
loss is

    L_tau(x) = sum_k ||Π(g_k)||^2 ,

and it has an unbiased estimator from two independent samples of the other players'
pure actions: ``sum_k Π(ĝ_k) . Π(ĝ'_k)``, where ``ĝ_k`` uses the sampled payoff row
``payoffs[k, :, a_-k]`` in place of ``u_k(., x_-k)``. One iteration consists of:

1) sample two independent joint actions of the others from ``x`` for every player (or,
   with ``samples=None``, use the exact action values: then the loss is deterministic);
2) evaluate the (estimated) loss and its gradient: with exact values in closed form
   (:func:`exact_loss_and_gradient`), with samples by autograd;
3) take an Adam step on the logits of ``x`` (every player's logits as one ``(B, sum_i A_i)``
   tensor, so one step is a few fused element-wise operations).

The closed form: with ``p_k = Π(g_k)``, and since ``Π`` is symmetric and ``p_k`` already
projected, ``dL/dx_l = 2 (sum_{k != l} T_kl^T p_k - tau p_l / x_l)`` where ``T_kl[a, c] =
u_k(a, c, x_-kl)``; ``T_kl^T p_k`` is player k's payoff tensor contracted with ``p_k`` on k's
axis and with the strategies of everyone but l, so no pair table is built. Through the
softmax, ``dL/dz_l = x_l (dL/dx_l - x_l . dL/dx_l)``.

NOTE: the paper runs projected SGD on the simplex; gamelab optimizes softmax logits with
Adam, which keeps ``x`` in the interior (where the entropy term is defined) without a
projection, and anneals ``tau`` geometrically from ``temperature`` to ``final_temperature``
(a fixed ``tau`` converges to a QRE, not a Nash equilibrium). The returned profile's
NashConv is measured exactly by the caller, and ``solvers.registry`` polishes it
(``solvers.support_enumeration.polish``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from games.errors import SolverError
from games.normal_form import NormalFormGame, contract
from solvers.recording import Recorder

Tensor = torch.Tensor


def _projected_gradients(strategies: list[Tensor], values: list[Tensor], temperature: float) -> list[Tensor]:
    """``Π(g_k)`` for every player, from its action values ``(B, A_k)`` (exact or sampled)."""
    out = []
    for value, strategy in zip(values, strategies):
        gradient = value - temperature * (torch.log(strategy) + 1)
        out.append(gradient - gradient.mean(-1, keepdim=True))
    return out


def _sampled_values(game: NormalFormGame, strategies: list[Tensor], samples: int, generator: torch.Generator) -> list[Tensor]:
    """Unbiased estimates of each player's action values, with unbiased gradients.

    The value of player k's estimate is the mean of ``payoffs[k, :, a_-k]`` over
    ``samples`` joint samples of the others' actions. Sampling is not differentiable, so
    for every other player l a term is added that is zero in value but carries the
    gradient with respect to ``x_l``: the estimate in which ``x_l`` is contracted exactly
    and only the remaining players are sampled, minus its own detached copy. Its gradient
    with respect to ``x_l`` is the sampled slice ``payoffs[k, :, :, a_-kl]``, an unbiased
    estimate of ``d u_k / d x_l``, which the loss's gradient needs.

    Shapes: strategies ``(B, A_i)``; returns ``(B, A_i)`` per player.
    """
    payoffs = game.batched_payoffs
    batch = payoffs.shape[0]
    draws = [
        torch.multinomial(s.detach(), samples, replacement=True, generator=generator) for s in strategies
    ]  # each (B, S)
    batch_index = torch.arange(batch, device=payoffs.device)[:, None]

    def sampled_table(player: int, sampled: list[int], kept: list[int]) -> Tensor:
        """payoffs[:, player] with the ``sampled`` players' axes indexed by their draws:
        shape (B, S, A_kept...) (S = 1 when nothing is sampled)."""
        table = payoffs[:, player].permute([0] + [1 + j for j in sampled] + [1 + j for j in kept])
        if not sampled:
            return table.unsqueeze(1)
        return table[(batch_index,) + tuple(draws[j] for j in sampled)]

    out = []
    for player in range(game.num_players):
        others = [j for j in range(game.num_players) if j != player]
        estimate = sampled_table(player, others, [player]).mean(1)  # (B, A_player)
        for exact in others:
            rest = [j for j in others if j != exact]
            table = sampled_table(player, rest, [exact, player])  # (B, S, A_exact, A_player)
            contracted = torch.einsum("bsea,be->ba", table, strategies[exact]) / table.shape[1]
            estimate = estimate + (contracted - contracted.detach())
        out.append(estimate)
    return out


def exact_loss_and_gradient(payoffs: Tensor, strategies: list[Tensor], temperature: float) -> tuple[Tensor, list[Tensor]]:
    """``L_tau`` with exact action values and its gradient with respect to each player's strategy.

    Shapes: ``payoffs`` ``(B, N, A_1, ..., A_N)``, strategies ``(B, A_i)``; returns ``(B,)`` and
    ``(B, A_i)`` per player.
    """
    players = len(strategies)
    values = [contract(payoffs[:, player], strategies, (player,), batch=True) for player in range(players)]
    projected = _projected_gradients(strategies, values, temperature)
    loss = sum((p * p).sum(-1) for p in projected)
    gradients = []
    for other in range(players):
        total = -temperature * projected[other] / strategies[other]
        for player in range(players):
            if player != other:
                mixed = [projected[player] if j == player else strategies[j] for j in range(players)]
                total = total + contract(payoffs[:, player], mixed, (other,), batch=True)
        gradients.append(2 * total)
    return loss, gradients


def nash_loss(
    game: NormalFormGame,
    strategies: list[Tensor],
    temperature: float,
    samples: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The Nash loss ``L_tau`` of each game, exact or as the two-sample unbiased estimate.

    Shapes: ``game`` must be batched, ``strategies`` are ``(B, A_i)``; returns ``(B,)``.
    """
    if samples is None:
        projected = _projected_gradients(strategies, game.action_values(strategies), temperature)
        return sum((p * p).sum(-1) for p in projected)
    first = _projected_gradients(strategies, _sampled_values(game, strategies, samples, generator), temperature)
    second = _projected_gradients(strategies, _sampled_values(game, strategies, samples, generator), temperature)
    return sum((p * q).sum(-1) for p, q in zip(first, second))


def _adam(logits: Tensor, first: Tensor, second: Tensor, gradient: Tensor, iteration: Tensor | float,
          learning_rate: float, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8) -> tuple[Tensor, Tensor, Tensor]:
    """One Adam step (Kingma and Ba 2015) on ``logits``: the new logits and moments."""
    first = beta1 * first + (1 - beta1) * gradient
    second = beta2 * second + (1 - beta2) * gradient * gradient
    corrected = second / (1 - beta2**iteration)
    return logits - learning_rate / (1 - beta1**iteration) * first / (corrected.sqrt() + eps), first, second


def nash_sgd(
    game: NormalFormGame,
    *,
    temperature: float = 0.01,
    final_temperature: float | None = 1e-4,
    iterations: int = 2000,
    learning_rate: float = 0.05,
    samples: int | None = None,
    seed: int = 0,
    callback: Callable[[int, list[Tensor]], None] | None = None,
    callback_every: int = 100,
    compile: bool = False,
    trace: bool = True,
) -> list[Tensor]:
    """Minimizes the Nash loss of Gemp et al. (2024) over the profiles of a (batched) game.

    Args:
        game: any N-player game, batched or not.
        temperature: tau, the entropy weight at the start; the target is the logit QRE at tau.
        final_temperature: tau at the last step, reached geometrically (annealing toward a Nash
            equilibrium, which the QRE approaches as tau -> 0); None keeps ``temperature``.
        iterations: Adam steps.
        learning_rate: Adam's step size on the logits.
        samples: joint-action samples per estimate; None for exact action values.
        seed: seeds the sampler and nothing else (the start is uniform play).
        callback: called as ``callback(iteration, profile)`` every ``callback_every`` steps.
        compile: fuse each exact-value iteration with ``torch.compile`` (measured on 2 cores,
            2x2x2 to 4x4x4 games: 111-177 us per iteration against 1.2-1.5 ms eager, after a
            compile of 6-17 s, so only long runs gain). NOTE: fused kernels add in another
            order, so iterates match the eager ones to rounding, not bit for bit. Sampled
            estimates (``samples``) are not compiled.
        trace: without ``compile``, replay a record of the first exact-value iteration's tensor
            operations (:class:`solvers.recording.Recorder`): the same iterates bit for bit,
            about 2.3x faster per iteration on a 3x3x3 game (measured).

    Returns:
        The profile: N tensors ``(A_i,)``, or ``(B, A_i)`` for a batched game.
    """
    if not temperature > 0 or (final_temperature is not None and not final_temperature > 0):
        raise SolverError(f"temperatures must be positive (the loss needs interior points), got {temperature} and "
                          f"{final_temperature}")
    final = temperature if final_temperature is None else final_temperature
    if samples is not None and samples < 1:
        raise SolverError(f"samples must be a positive count or None, got {samples}")
    batched = game.as_batched()
    generator = torch.Generator(device=game.device).manual_seed(seed)
    sizes = [int(n) for n in game.num_actions]
    logits = torch.zeros(batched.batch_size, sum(sizes), dtype=game.dtype, device=game.device)
    first, second = torch.zeros_like(logits), torch.zeros_like(logits)  # Adam's moments
    payoffs = batched.batched_payoffs

    def exact_step(logits: Tensor, first: Tensor, second: Tensor, iteration: Tensor,
                   tau: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        strategies = [torch.softmax(part, -1) for part in logits.split(sizes, -1)]
        _, gradients = exact_loss_and_gradient(payoffs, strategies, tau)
        gradient = torch.cat([x * (g - (x * g).sum(-1, keepdim=True)) for x, g in zip(strategies, gradients)], -1)
        return _adam(logits, first, second, gradient, iteration, learning_rate)

    recorder = Recorder(trace and not compile)
    if compile and samples is None:
        options = {"cpp_wrapper": True} if game.device.type == "cpu" else {}
        exact_step = torch.compile(exact_step, dynamic=False, options=options)
    for iteration in range(1, iterations + 1):
        tau = temperature * (final / temperature) ** ((iteration - 1) / max(iterations - 1, 1))
        if samples is None:
            count = torch.full((), iteration, dtype=game.dtype, device=game.device)
            now = torch.full((), tau, dtype=game.dtype, device=game.device)
            with torch.inference_mode(recorder.enabled):
                logits, first, second = recorder("step", exact_step, (logits, first, second, count, now))
        else:
            free = logits.detach().requires_grad_(True)
            strategies = [torch.softmax(part, -1) for part in free.split(sizes, -1)]
            nash_loss(batched, strategies, tau, samples, generator).sum().backward()
            logits, first, second = _adam(logits, first, second, free.grad, float(iteration), learning_rate)
        if callback is not None and iteration % callback_every == 0:
            profile = [torch.softmax(part, -1) for part in logits.split(sizes, -1)]
            callback(iteration, profile if game.batched else [s[0] for s in profile])
    profile = [torch.softmax(part, -1) for part in logits.split(sizes, -1)]
    return profile if game.batched else [s[0] for s in profile]
