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
3) take an Adam step on the logits of ``x`` (every player's logits as one ``(B, N, A)`` tensor,
   padded to the largest action count ``A``, so one step is a few element-wise operations).

The closed form: with ``p_k = Π(g_k)``, and since ``Π`` is symmetric and ``p_k`` already
projected, ``dL/dx_l = 2 (sum_{k != l} T_kl^T p_k - tau p_l / x_l)`` where ``T_kl[a, c] =
u_k(a, c, x_-kl)``; ``T_kl^T p_k`` is player k's payoff tensor contracted with ``p_k`` on k's
axis and with the strategies of everyone but l, so no pair table is built. Through the
softmax, ``dL/dz_l = x_l (dL/dx_l - x_l . dL/dx_l)``. :class:`StackedPayoffs` holds every
player's table with its own axis first, so each of these contractions is one call for all
players at once: about 40 tensor calls an iteration for 2 to 4 players, where a table per
player takes one matrix-vector product per player pair and axis (measured below).

NOTE: the paper runs projected SGD on the simplex; gamelab optimizes softmax logits with
Adam, which keeps ``x`` in the interior (where the entropy term is defined) without a
projection, and anneals ``tau`` geometrically from ``temperature`` to ``final_temperature``
(a fixed ``tau`` converges to a QRE, not a Nash equilibrium). The returned profile's
NashConv is measured exactly by the caller, and ``solvers.registry`` polishes it
(``solvers.support_enumeration.polish``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from games.errors import SolverError
from games.normal_form import NormalFormGame, contract
from solvers.exploitability import product_distribution
from solvers.recording import Recorder

Tensor = torch.Tensor

_MAX_STACKED = 2**26  # entries of StackedPayoffs.by_slot: 512 MiB in float64
_SMALL_STACK = 2**16  # entries below which padding costs less than a tensor call


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


class StackedPayoffs:
    """Every player's payoff table with its own axis first, stacked, so that one tensor call
    serves all players and all their opponents: the exact loss's gradient is then about 40
    tensor calls for 2 to 4 players, where a table per player takes one matrix-vector product
    per player pair and axis.

    Players with fewer actions than the largest count ``A`` are padded with actions of payoff 0
    that softmax gives probability 0 (a logit bias of -inf). The stack holds N-1 copies of the
    payoffs (one per opponent axis, below). ``ValueError`` is raised, and the caller keeps the
    per-player form, for a one-player game, and when the stack would exceed ``_MAX_STACKED``
    entries, or ``_SMALL_STACK`` entries and four times the payoffs' own size times N-1 (padding
    that costs more work than the calls it saves).

    Shapes (M = N-1 opponents, each player's opponents in increasing order, called slots):
        - ``by_slot``: ``(B, N, M, A, A^M)``; ``by_slot[b, k, s, a]`` is player k's payoff for its
          action ``a`` against the opponents' joint actions, flattened with slot s's axis last
          and the other slots before it in order;
        - ``tables``: ``(B, N, A, A^M)``, ``by_slot[:, :, M-1]``: the slots in order;
        - ``others``: ``(N M,)``, the opponents of player 0, then of player 1, ...;
        - ``leave_one_out``: M-1 index tensors ``(M,)``: entry s of the j-th lists the j-th slot
          other than s;
        - ``sources``: ``(N (N-1),)``, for each player l in turn the flat indices ``k M + s`` of the
          pairs (k, s) whose slot s is l;
        - ``bias``: ``(N, A)``, 0 at real actions and -inf at padded ones (None without padding);
          ``padded``, ``ones_at_padding``: the padded actions as booleans and as 1.0;
        - ``counts``: ``(N, 1)``, each player's real action count.
    """

    def __init__(self, payoffs: Tensor, sizes: Sequence[int]) -> None:
        batch, players = payoffs.shape[:2]
        if players < 2:
            raise ValueError("stacking serves games of two players or more")
        width, slots = max(sizes), players - 1
        padded_size = batch * players * slots * width**players
        wasteful = padded_size > 4 * batch * players * slots * math.prod(sizes) and padded_size > _SMALL_STACK
        if wasteful or padded_size > _MAX_STACKED:
            raise ValueError(f"stacking {list(sizes)} actions would take {padded_size} entries")
        device = payoffs.device
        opponents = [[j for j in range(players) if j != k] for k in range(players)]
        rows = []
        for player in range(players):
            table = payoffs[:, player].permute([0, 1 + player] + [1 + j for j in opponents[player]])
            padding = [side for j in reversed([player] + opponents[player]) for side in (0, width - sizes[j])]
            table = torch.nn.functional.pad(table, padding)  # (B, A, A, ..., A): own axis, then slots
            rows.append(torch.stack([table.movedim(2 + slot, -1).reshape(batch, width, -1) for slot in range(slots)], 1))
        self.by_slot = torch.stack(rows, 1)
        self.tables = self.by_slot[:, :, slots - 1]
        self.others = torch.tensor(sum(opponents, []), device=device)
        rest = [[j for j in range(slots) if j != slot] for slot in range(slots)]
        self.leave_one_out = [torch.tensor([rest[slot][j] for slot in range(slots)], device=device) for j in range(slots - 1)]
        self.sources = torch.tensor([k * slots + opponents[k].index(l) for l in range(players) for k in opponents[l]],
                                    device=device)
        padded = torch.arange(width) >= torch.tensor(sizes)[:, None]  # (N, A)
        self.bias = self.padded = self.ones_at_padding = None
        if bool(padded.any()):
            self.padded = padded.to(device)
            self.bias = torch.zeros(players, width, dtype=payoffs.dtype).masked_fill(padded, -math.inf).to(device)
            self.ones_at_padding = padded.to(payoffs.dtype).to(device)
        self.counts = torch.tensor(sizes, dtype=payoffs.dtype, device=device)[:, None]
        self.sizes = list(sizes)

    def strategies(self, logits: Tensor) -> Tensor:
        """Every player's softmax strategy, ``(B, N, A)``, from logits ``(B, N, A)``."""
        return torch.softmax(logits if self.bias is None else logits + self.bias, -1)

    def unstack(self, stacked: Tensor) -> list[Tensor]:
        """``(B, N, A)`` as N tensors ``(B, A_i)``."""
        return [stacked[:, player, :count] for player, count in enumerate(self.sizes)]

    def loss_and_gradient(self, strategies: Tensor, temperature: Tensor | float) -> tuple[Tensor, Tensor]:
        """``L_tau`` and its gradient with respect to every strategy, as :func:`exact_loss_and_gradient`.

        Shapes: ``strategies`` ``(B, N, A)`` (0 at padded actions); returns ``(B,)`` and ``(B, N, A)``.
        """
        players, width = len(self.sizes), max(self.sizes)  # Python numbers, so a recorded step reads no shapes
        slots = players - 1
        others = strategies.index_select(1, self.others).view(-1, players, slots, width)
        joint = product_distribution(others.unbind(2), flat=True)  # the opponents' joint distribution, (B, N, A^M)
        values = (self.tables @ joint.unsqueeze(-1)).squeeze(-1)  # (B, N, A)
        # Pi removes constants, so tau's "+ 1" is left out of the entropy term's gradient.
        gradient = values - temperature * torch.log(strategies)
        if self.padded is None:
            projected = gradient - gradient.mean(-1, keepdim=True)
        else:
            gradient = torch.where(self.padded, 0.0, gradient)  # log 0 = -inf at padded actions
            projected = torch.where(self.padded, 0.0, gradient - gradient.sum(-1, keepdim=True) / self.counts)
        # Player k's table contracted with p_k, then with every slot but s: T_kl^T p_k for l in slot s.
        rest = (projected.view(-1, players, 1, 1, width) @ self.by_slot).view(
            -1, players, slots, width ** (slots - 1), width)  # (B, N, M, A^(M-1), A)
        if slots > 1:
            others_but = product_distribution([others.index_select(2, index) for index in self.leave_one_out],
                                              flat=True)  # (B, N, M, A^(M-1))
            rest = others_but.unsqueeze(-2) @ rest  # (B, N, M, 1, A)
        cross = rest.view(-1, players * slots, width).index_select(1, self.sources)
        cross = cross.view(-1, players, slots, width).sum(2)  # (B, N, A)
        safe = strategies if self.padded is None else strategies + self.ones_at_padding  # padded: 0 / 1
        return (projected * projected).sum((1, 2)), 2 * (cross - temperature * projected / safe)


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


def _schedule(iterations: int, first: int, count: int, temperature: float, final: float, learning_rate: float,
              dtype: torch.dtype, device: torch.device, beta1: float = 0.9, beta2: float = 0.999) -> list[tuple[Tensor, ...]]:
    """For iterations ``first`` to ``first + count - 1``: tau, Adam's step size ``lr / (1 - beta1^t)`` and
    ``1 - beta2^t``, each a 0-d tensor, made in three calls for the whole stretch."""
    t = torch.arange(first, first + count, dtype=torch.float64)
    tau = temperature * (final / temperature) ** ((t - 1) / max(iterations - 1, 1))
    rows = torch.stack([tau, learning_rate / (1 - beta1**t), 1 - beta2**t]).to(dtype=dtype, device=device)
    return list(zip(*(row.unbind() for row in rows)))


def _adam(logits: Tensor, first: Tensor, second: Tensor, gradient: Tensor, step_size: Tensor, bias2: Tensor,
          beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> tuple[Tensor, Tensor, Tensor]:
    """One Adam step (Kingma and Ba 2015) on ``logits``: the new logits and moments. The moments are
    updated by ``lerp``, as ``torch.optim.Adam`` does; ``step_size`` and ``bias2`` come from :func:`_schedule`."""
    first = torch.lerp(first, gradient, 1 - beta1)
    second = torch.lerp(second, gradient * gradient, 1 - beta2)
    return logits - step_size * first / ((second / bias2).sqrt() + eps), first, second


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
        compile: fuse each exact-value iteration with ``torch.compile``. Measured on 2 cores, 2x2x2
            and 4x4x4 games: 55 us per iteration, after a compile of 4-8 s, against 70 us
            replayed (``trace``), so it rarely pays on the CPU. NOTE: fused kernels add in
            another order, so iterates match the eager ones to rounding, not bit for bit.
            Sampled estimates (``samples``) are not compiled.
        trace: without ``compile``, replay a record of the first exact-value iteration's tensor
            operations (:class:`solvers.recording.Recorder`): the same iterates bit for bit.
            Measured on 2 cores: 69-85 us per iteration on 2x2x2 to 3x3x3x3 games
            against 116-147 us eager, over two runs (``benchmarks/matrix.py --nash-sgd``).

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
    payoffs = batched.batched_payoffs
    stacked = None
    if samples is None:
        try:
            stacked = StackedPayoffs(payoffs, sizes)
        except ValueError:  # padding would cost more than the per-player form saves
            pass
    if stacked is not None:
        logits = torch.zeros(batched.batch_size, len(sizes), max(sizes), dtype=game.dtype, device=game.device)
    else:
        logits = torch.zeros(batched.batch_size, sum(sizes), dtype=game.dtype, device=game.device)

    def profile_of(logits: Tensor) -> list[Tensor]:
        if stacked is not None:
            return stacked.unstack(stacked.strategies(logits))
        return [torch.softmax(part, -1) for part in logits.split(sizes, -1)]

    def exact_step(logits: Tensor, first: Tensor, second: Tensor, tau: Tensor, step_size: Tensor,
                   bias2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if stacked is not None:
            strategies = stacked.strategies(logits)
            _, gradient = stacked.loss_and_gradient(strategies, tau)
            gradient = strategies * (gradient - (strategies * gradient).sum(-1, keepdim=True))
        else:
            parts = [torch.softmax(part, -1) for part in logits.split(sizes, -1)]
            _, gradients = exact_loss_and_gradient(payoffs, parts, tau)
            gradient = torch.cat([x * (g - (x * g).sum(-1, keepdim=True)) for x, g in zip(parts, gradients)], -1)
        return _adam(logits, first, second, gradient, step_size, bias2)

    recorder = Recorder(trace and not compile)
    if compile and samples is None:
        options = {"cpp_wrapper": True} if game.device.type == "cpu" else {}
        exact_step = torch.compile(exact_step, dynamic=False, options=options)
    first, second = torch.zeros_like(logits), torch.zeros_like(logits)  # Adam's moments
    stretch = 1024  # iterations whose schedule is made at once
    for start in range(1, iterations + 1, stretch):
        rows = _schedule(iterations, start, min(stretch, iterations + 1 - start), temperature, final, learning_rate,
                         game.dtype, game.device)
        for iteration, (tau, step_size, bias2) in enumerate(rows, start):
            if samples is None:
                with torch.inference_mode(recorder.enabled):
                    logits, first, second = recorder("step", exact_step, (logits, first, second, tau, step_size, bias2))
            else:
                free = logits.detach().requires_grad_(True)
                strategies = [torch.softmax(part, -1) for part in free.split(sizes, -1)]
                nash_loss(batched, strategies, tau, samples, generator).sum().backward()
                logits, first, second = _adam(logits, first, second, free.grad, step_size, bias2)
            if callback is not None and iteration % callback_every == 0:
                profile = profile_of(logits)
                callback(iteration, profile if game.batched else [s[0] for s in profile])
    profile = profile_of(logits)
    return profile if game.batched else [s[0] for s in profile]
