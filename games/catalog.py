"""A catalog of classic normal-form games, and seeded random-game generators.

Every classic game names its source, and the equilibria the tests check are stated in
its docstring. ``load(name)`` builds one by name; ``names()`` lists them.

Random generators draw on the CPU from a ``torch.Generator`` seeded with ``seed`` and
then move the payoffs to ``device``, so a seed gives the same games on every device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from games.errors import GameError
from games.normal_form import NormalFormGame


def rock_paper_scissors() -> NormalFormGame:
    """Rock-paper-scissors, zero-sum, win 1 and lose -1. Unique equilibrium: uniform, value 0."""
    return NormalFormGame.zero_sum(
        [[0, -1, 1], [1, 0, -1], [-1, 1, 0]],
        action_names=[["Rock", "Paper", "Scissors"]] * 2,
        title="Rock-paper-scissors",
    )


def matching_pennies() -> NormalFormGame:
    """Matching pennies: the row player wins 1 on a match. Unique equilibrium: uniform, value 0."""
    return NormalFormGame.zero_sum(
        [[1, -1], [-1, 1]], action_names=[["Heads", "Tails"]] * 2, title="Matching pennies"
    )


def prisoners_dilemma() -> NormalFormGame:
    """Prisoner's dilemma with Axelrod's payoffs (T=5, R=3, P=1, S=0).

    Defect strictly dominates Cooperate, so (Defect, Defect) is the unique equilibrium.
    Source: R. Axelrod, *The Evolution of Cooperation* (1984).
    """
    row = [[3, 0], [5, 1]]
    return NormalFormGame.bimatrix(
        row, torch.tensor(row).T, action_names=[["Cooperate", "Defect"]] * 2, title="Prisoner's dilemma"
    )


def battle_of_the_sexes() -> NormalFormGame:
    """Battle of the sexes (Luce and Raiffa, *Games and Decisions*, 1957), payoffs 3/2/0.

    Three equilibria: (Opera, Opera), (Football, Football), and the mixed
    x = (3/5, 2/5), y = (2/5, 3/5) in which each player receives 6/5.
    """
    return NormalFormGame.bimatrix(
        [[3, 0], [0, 2]], [[2, 0], [0, 3]],
        action_names=[["Opera", "Football"]] * 2, title="Battle of the sexes",
    )


def stag_hunt() -> NormalFormGame:
    """Stag hunt (Skyrms, *The Stag Hunt and the Evolution of Social Structure*, 2004).

    Equilibria: (Stag, Stag), (Hare, Hare), and both playing Stag with probability 3/4.
    """
    row = [[4, 0], [3, 3]]
    return NormalFormGame.bimatrix(
        row, torch.tensor(row).T, action_names=[["Stag", "Hare"]] * 2, title="Stag hunt"
    )


def chicken() -> NormalFormGame:
    """Chicken with Aumann's payoffs (Aumann, "Subjectivity and correlation in randomized
    strategies", J. Math. Econ. 1974; the example of Wikipedia's "Correlated equilibrium").

    Nash equilibria: (Chicken, Dare), (Dare, Chicken), and both playing Chicken with
    probability 2/3. The correlated equilibrium of maximum welfare puts 1/2 on
    (Chicken, Chicken) and 1/4 on each of (Chicken, Dare) and (Dare, Chicken), paying
    5.25 to each player.
    """
    row = [[6, 2], [7, 0]]
    return NormalFormGame.bimatrix(
        row, torch.tensor(row).T, action_names=[["Chicken", "Dare"]] * 2, title="Chicken"
    )


def pure_coordination() -> NormalFormGame:
    """Two players receive 1 if they choose the same of two actions, else 0."""
    eye = torch.eye(2, dtype=torch.float64)
    return NormalFormGame.bimatrix(eye, eye, action_names=[["A", "B"]] * 2, title="Pure coordination")


def shapley() -> NormalFormGame:
    """Shapley's 3x3 game (L. S. Shapley, "Some topics in two-person games", 1964).

    Its unique equilibrium is uniform play, and fictitious play does not converge to it:
    the empirical frequencies cycle with growing period.
    """
    row = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    column = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    return NormalFormGame.bimatrix(row, column, title="Shapley's game")


def three_player_matching_pennies() -> NormalFormGame:
    """Jordan's three-player matching pennies (J. S. Jordan, "Three problems in learning
    mixed-strategy Nash equilibria", Games Econ. Behav. 1993).

    Player 1 wants to match player 2, player 2 wants to match player 3, and player 3
    wants to mismatch player 1; each wins 1 or loses 1. The unique equilibrium is uniform.
    """
    payoffs = torch.zeros(3, 2, 2, 2, dtype=torch.float64)
    for a in range(2):
        for b in range(2):
            for c in range(2):
                payoffs[0, a, b, c] = 1 if a == b else -1
                payoffs[1, a, b, c] = 1 if b == c else -1
                payoffs[2, a, b, c] = 1 if c != a else -1
    return NormalFormGame(payoffs, action_names=[["Heads", "Tails"]] * 3, title="Three-player matching pennies")


CLASSIC_GAMES: dict[str, Callable[[], NormalFormGame]] = {
    "rps": rock_paper_scissors,
    "rock_paper_scissors": rock_paper_scissors,
    "matching_pennies": matching_pennies,
    "prisoners_dilemma": prisoners_dilemma,
    "battle_of_the_sexes": battle_of_the_sexes,
    "stag_hunt": stag_hunt,
    "chicken": chicken,
    "pure_coordination": pure_coordination,
    "shapley": shapley,
    "three_player_matching_pennies": three_player_matching_pennies,
}


def names() -> list[str]:
    """The names ``load`` accepts."""
    return sorted(CLASSIC_GAMES)


def load(name: str, **kwargs: Any) -> NormalFormGame:
    """A classic game by name; ``kwargs`` (``dtype``, ``device``) move it."""
    try:
        game = CLASSIC_GAMES[name]()
    except KeyError:
        raise GameError(f"unknown classic game {name!r}; known: {', '.join(names())}") from None
    return game.to(kwargs.get("device"), kwargs.get("dtype")) if kwargs else game


# ---------------------------------------------------------------------- random games
def _draw(shape: Sequence[int], seed: int, distribution: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if distribution == "uniform":
        return torch.rand(tuple(shape), generator=generator, dtype=torch.float64) * 2 - 1
    if distribution == "normal":
        return torch.randn(tuple(shape), generator=generator, dtype=torch.float64)
    raise GameError(f"unknown payoff distribution {distribution!r}; use 'uniform' or 'normal'")


def random_zero_sum(
    num_rows: int,
    num_columns: int,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    distribution: str = "uniform",
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> NormalFormGame:
    """Random 2-player zero-sum games, payoffs i.i.d. uniform on [-1, 1] or standard normal.

    Shapes: payoffs ``(2, num_rows, num_columns)``, or ``(B, 2, num_rows, num_columns)``.
    """
    from games import memory

    lead = () if batch_size is None else (batch_size,)
    memory.check(f"the payoffs of random_zero_sum({num_rows},{num_columns})",
                 1.5 * memory.payoff_bytes([num_rows, num_columns], batch_size or 1), "use fewer actions")
    matrix = _draw(lead + (num_rows, num_columns), seed, distribution)
    return NormalFormGame.zero_sum(
        matrix.to(device=device, dtype=dtype), batched=batch_size is not None,
        title=f"random zero-sum {num_rows}x{num_columns} (seed {seed})",
    )


def random_game(
    num_actions: Sequence[int],
    *,
    batch_size: int | None = None,
    seed: int = 0,
    distribution: str = "uniform",
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> NormalFormGame:
    """Random general-sum games of ``len(num_actions)`` players, payoffs i.i.d.

    Shapes: payoffs ``(N, A_1, ..., A_N)``, or ``(B, N, A_1, ..., A_N)``.
    """
    if len(num_actions) < 1 or any(int(n) < 1 for n in num_actions):
        raise GameError(f"num_actions must list at least one positive count per player, got {list(num_actions)}")
    from games import memory

    lead = () if batch_size is None else (batch_size,)
    memory.check(f"the payoffs of random({','.join(str(int(n)) for n in num_actions)})",
                 2 * memory.payoff_bytes(list(num_actions), batch_size or 1), "use fewer actions or players")
    payoffs = _draw(lead + (len(num_actions),) + tuple(num_actions), seed, distribution)
    shape = "x".join(map(str, num_actions))
    return NormalFormGame(
        payoffs.to(device=device, dtype=dtype), batched=batch_size is not None,
        title=f"random {shape} (seed {seed})",
    )
