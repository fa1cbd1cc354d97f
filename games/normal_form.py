"""Normal-form (matrix) games as payoff tensors.

A game of ``N`` players in which player ``i`` has ``A_i`` actions is one tensor

    payoffs[i, a_1, ..., a_N] = utility of player i under the pure profile (a_1, ..., a_N),

of shape ``(N, A_1, ..., A_N)``. A *batched* game carries a leading batch dimension,
``(B, N, A_1, ..., A_N)``: B games of the same shape that solvers treat in one call, on the
CPU or a GPU. Whether a tensor is batched is never guessed from its shape (``(3, 2, 4, 4)``
is both three 2-player games and one 3-player game); it is said with ``batched=True``.

A *strategy profile* is a sequence of N tensors; player i's entry has shape ``(A_i,)`` for
an unbatched game and ``(B, A_i)`` for a batched one, each row on the probability simplex.

Conventions, chosen to match OpenSpiel and Gambit:
- players are numbered from 0; Gambit's "Player 1" is player 0 here;
- payoffs are floating point (float64 unless asked otherwise), on the device given.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import torch

from games.errors import GameError

Tensor = torch.Tensor

# Letters for einsum subscripts: the batch takes "Z", players take a, b, c, ...
_EINSUM_LETTERS = string.ascii_lowercase


def _as_payoff_tensor(payoffs: Any, dtype: torch.dtype | None, device: Any) -> Tensor:
    try:
        tensor = torch.as_tensor(payoffs, device=device)
    except (ValueError, TypeError) as error:
        raise GameError(f"payoffs must be a rectangular array of numbers (ragged or non-numeric input: {error})") from None
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise GameError(f"payoffs must be real numbers, got {tensor.dtype}")
    if dtype is not None:
        tensor = tensor.to(dtype)
    elif not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    return tensor


def contract(table: Tensor, strategies: Sequence[Tensor], keep: tuple[int, ...], batch: bool = False) -> Tensor:
    """``table`` contracted with every player's strategy but ``keep``'s.

    One matrix-vector product per contracted player, last axis first: for the few players of
    a normal-form game this costs a fraction of a many-operand ``einsum``, whose parsing and
    contraction-path search (opt_einsum) took several times the arithmetic on 3-player games.

    Shapes: ``table`` ``(A_1, ..., A_N)`` with strategies ``(..., A_j)`` (one leading batch
    shape, shared by all), or with ``batch`` ``(B, A_1, ..., A_N)`` with strategies ``(B,
    A_j)``; returns ``(..., A_keep...)`` (``(B, A_keep...)``), the kept axes in order.
    """
    players = table.dim() - (1 if batch else 0)
    axes = list(range(players))  # the player axes ``result`` still has, in order
    result, lead = table, 1 if batch else 0  # ``lead``: leading batch dimensions of ``result``
    for player in reversed(range(players)):
        if player in keep:
            continue
        strategy = strategies[player]
        moved = result.movedim(lead + axes.index(player), -1)  # (batch..., rest..., A_j)
        rest = moved.shape[lead:-1]
        if lead == 0:
            flat = strategy @ moved.reshape(-1, moved.shape[-1]).T  # (..., prod(rest))
            lead = strategy.dim() - 1
        else:
            flat = (moved.reshape(*moved.shape[:lead], -1, moved.shape[-1]) @ strategy.unsqueeze(-1)).squeeze(-1)
        result = flat.reshape(*flat.shape[:-1], *rest)
        axes.remove(player)
    return result


class NormalFormGame:
    """An N-player normal-form game, optionally a batch of B games of one shape.

    Args:
        payoffs: array-like of shape ``(N, A_1, ..., A_N)``, or ``(B, N, A_1, ..., A_N)``
            with ``batched=True``. Integer input becomes float64.
        batched: whether ``payoffs`` has a leading batch dimension.
        player_names: N names; defaults to ``"Player 1"``, ``"Player 2"``, ...
        action_names: for each player, A_i names; defaults to ``"1"``, ``"2"``, ...
        title: a one-line description, kept through ``.nfg`` files.
        dtype, device: where the payoff tensor lives.

    Raises:
        GameError: if the shape is not that of a game, or a payoff is NaN or infinite.

    Shapes:
        - ``payoffs``: ``(N, A_1, ..., A_N)`` or ``(B, N, A_1, ..., A_N)``.
    """

    def __init__(
        self,
        payoffs: Any,
        *,
        batched: bool = False,
        player_names: Sequence[str] | None = None,
        action_names: Sequence[Sequence[str]] | None = None,
        title: str = "",
        dtype: torch.dtype | None = None,
        device: Any = None,
    ) -> None:
        tensor = _as_payoff_tensor(payoffs, dtype, device)
        offset = 1 if batched else 0
        if tensor.dim() < offset + 2:
            raise GameError(
                f"payoffs of shape {tuple(tensor.shape)} are not a game: expected "
                f"{'(B, N, A_1, ..., A_N)' if batched else '(N, A_1, ..., A_N)'}"
            )
        num_players = tensor.shape[offset]
        if num_players > len(_EINSUM_LETTERS):
            raise GameError(f"a normal-form game has at most {len(_EINSUM_LETTERS)} players, got {num_players}")
        if tensor.dim() != offset + 1 + num_players:
            raise GameError(
                f"payoffs of shape {tuple(tensor.shape)} do not fit {num_players} players: "
                f"a game of N players needs N action dimensions after the player dimension "
                f"(got {tensor.dim() - offset - 1})"
            )
        if any(size == 0 for size in tensor.shape):
            raise GameError(f"payoffs of shape {tuple(tensor.shape)} have an empty dimension")
        if not torch.isfinite(tensor).all():
            bad = torch.nonzero(~torch.isfinite(tensor))[0].tolist()
            raise GameError(f"payoff at index {bad} is not finite ({tensor[tuple(bad)].item()})")
        self.payoffs = tensor
        self.batched = batched
        self.num_players = int(num_players)
        self.num_actions = tuple(int(a) for a in tensor.shape[offset + 1 :])
        self.batch_size = int(tensor.shape[0]) if batched else None
        self.title = title
        self.player_names = tuple(player_names) if player_names is not None else tuple(
            f"Player {i + 1}" for i in range(self.num_players)
        )
        if len(self.player_names) != self.num_players:
            raise GameError(
                f"{len(self.player_names)} player names given for {self.num_players} players"
            )
        if action_names is None:
            action_names = [[str(a + 1) for a in range(n)] for n in self.num_actions]
        self.action_names = tuple(tuple(names) for names in action_names)
        if tuple(len(names) for names in self.action_names) != self.num_actions:
            raise GameError(
                f"action names of lengths {[len(n) for n in self.action_names]} do not fit "
                f"action counts {list(self.num_actions)}"
            )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def zero_sum(cls, matrix: Any, *, batched: bool = False, **kwargs: Any) -> NormalFormGame:
        """A 2-player zero-sum game: the row player receives ``matrix``, the column player its negation.

        Shapes: ``matrix`` is ``(A_1, A_2)``, or ``(B, A_1, A_2)`` with ``batched=True``.
        """
        row = _as_payoff_tensor(matrix, kwargs.pop("dtype", None), kwargs.pop("device", None))
        expected = 3 if batched else 2
        if row.dim() != expected:
            raise GameError(f"a zero-sum matrix needs {expected} dimensions, got shape {tuple(row.shape)}")
        return cls(torch.stack([row, -row], dim=1 if batched else 0), batched=batched, **kwargs)

    @classmethod
    def bimatrix(cls, row_payoffs: Any, column_payoffs: Any, *, batched: bool = False, **kwargs: Any) -> NormalFormGame:
        """A 2-player game from the row player's and the column player's payoff matrices.

        Shapes: both ``(A_1, A_2)``, or both ``(B, A_1, A_2)`` with ``batched=True``.
        """
        dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
        row = _as_payoff_tensor(row_payoffs, dtype, device)
        column = _as_payoff_tensor(column_payoffs, dtype, row.device).to(row.dtype)
        if row.shape != column.shape:
            raise GameError(
                f"row payoffs of shape {tuple(row.shape)} and column payoffs of shape "
                f"{tuple(column.shape)} differ"
            )
        expected = 3 if batched else 2
        if row.dim() != expected:
            raise GameError(f"bimatrix payoffs need {expected} dimensions, got shape {tuple(row.shape)}")
        return cls(torch.stack([row, column], dim=1 if batched else 0), batched=batched, **kwargs)

    @classmethod
    def stack(cls, games: Sequence[NormalFormGame]) -> NormalFormGame:
        """Stacks unbatched games of one shape into a batched game."""
        if not games:
            raise GameError("cannot stack an empty list of games")
        shapes = {game.payoffs.shape for game in games}
        if len(shapes) != 1 or any(game.batched for game in games):
            raise GameError(f"only unbatched games of one shape can be stacked, got shapes {sorted(map(tuple, shapes))}")
        first = games[0]
        return cls(
            torch.stack([game.payoffs for game in games]),
            batched=True,
            player_names=first.player_names,
            action_names=first.action_names,
            title=first.title,
        )

    @classmethod
    def from_openspiel(cls, game: Any, **kwargs: Any) -> NormalFormGame:
        """From an OpenSpiel normal-form game object or game string (``"matrix_rps"``)."""
        from games.adapters.openspiel import normal_form_from_openspiel

        return normal_form_from_openspiel(game, **kwargs)

    @classmethod
    def from_nfg(cls, path: Any, **kwargs: Any) -> NormalFormGame:
        """Reads a Gambit ``.nfg`` file (payoff or outcome version of the format)."""
        from games.nfg import read_nfg

        return read_nfg(path, **kwargs)

    def to_nfg(self, path: Any) -> None:
        """Writes the game as a Gambit ``.nfg`` file (outcome version), atomically."""
        from games.nfg import write_nfg

        write_nfg(self, path)

    # ------------------------------------------------------------------ views
    @property
    def device(self) -> torch.device:
        return self.payoffs.device

    @property
    def dtype(self) -> torch.dtype:
        return self.payoffs.dtype

    @property
    def batched_payoffs(self) -> Tensor:
        """The payoffs with a batch dimension, ``(B, N, A_1, ..., A_N)`` (B = 1 if unbatched)."""
        return self.payoffs if self.batched else self.payoffs.unsqueeze(0)

    def as_batched(self) -> NormalFormGame:
        """This game if it is batched, otherwise a batch of one game (sharing the payoff tensor)."""
        return self if self.batched else self._replace(self.payoffs.unsqueeze(0), batched=True)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> NormalFormGame:
        """The same game with its payoffs on another device or of another dtype."""
        return self._replace(self.payoffs.to(device=device, dtype=dtype))

    def __getitem__(self, index: int) -> NormalFormGame:
        """Game ``index`` of a batch, as an unbatched game."""
        if not self.batched:
            raise GameError("only a batched game can be indexed")
        return self._replace(self.payoffs[index], batched=False)

    def __len__(self) -> int:
        if not self.batched:
            raise GameError("an unbatched game has no length; use num_actions")
        return int(self.batch_size)

    def _replace(self, payoffs: Tensor, batched: bool | None = None) -> NormalFormGame:
        return NormalFormGame(
            payoffs,
            batched=self.batched if batched is None else batched,
            player_names=self.player_names,
            action_names=self.action_names,
            title=self.title,
        )

    def is_constant_sum(self, atol: float = 1e-9) -> bool:
        """Whether the players' payoffs add to the same constant in every profile (of every game)."""
        totals = self.batched_payoffs.sum(dim=1).flatten(1)
        return bool((totals - totals[:, :1]).abs().max() <= atol)

    def is_zero_sum(self, atol: float = 1e-9) -> bool:
        """Whether the players' payoffs add to zero in every profile."""
        return bool(self.payoffs.sum(dim=1 if self.batched else 0).abs().max() <= atol)

    # ------------------------------------------------------------------ strategies
    def uniform_strategies(self) -> list[Tensor]:
        """Every player mixes uniformly. Shapes: ``(A_i,)`` each, or ``(B, A_i)`` if batched."""
        lead = (self.batch_size,) if self.batched else ()
        return [
            torch.full(lead + (n,), 1.0 / n, dtype=self.dtype, device=self.device)
            for n in self.num_actions
        ]

    def pure_strategies(self, profile: Sequence[int]) -> list[Tensor]:
        """The pure profile ``profile`` as one-hot strategies (unbatched games)."""
        if len(profile) != self.num_players:
            raise GameError(f"a profile needs {self.num_players} actions, got {len(profile)}")
        out = []
        for player, (action, n) in enumerate(zip(profile, self.num_actions)):
            if not 0 <= action < n:
                raise GameError(f"player {player} has actions 0..{n - 1}, got {action}")
            onehot = torch.zeros(n, dtype=self.dtype, device=self.device)
            onehot[action] = 1.0
            out.append(onehot)
        return out

    def check_strategies(self, strategies: Sequence[Any], atol: float = 1e-6) -> list[Tensor]:
        """Validates a profile and returns it as tensors on the game's device and dtype.

        Raises:
            GameError: naming the player whose strategy has the wrong shape, a negative
                entry, or does not sum to one.
        """
        if len(strategies) != self.num_players:
            raise GameError(f"a profile needs {self.num_players} strategies, got {len(strategies)}")
        lead = (self.batch_size,) if self.batched else ()
        out = []
        for player, strategy in enumerate(strategies):
            tensor = torch.as_tensor(strategy, device=self.device).to(self.dtype)
            expected = lead + (self.num_actions[player],)
            if tuple(tensor.shape) != expected:
                raise GameError(
                    f"strategy of player {player} has shape {tuple(tensor.shape)}, expected {expected}"
                )
            if not torch.isfinite(tensor).all() or (tensor < -atol).any():
                raise GameError(f"strategy of player {player} has a negative or non-finite entry")
            if ((tensor.sum(-1) - 1).abs() > atol).any():
                raise GameError(f"strategy of player {player} does not sum to 1")
            out.append(tensor)
        return out

    # ------------------------------------------------------------------ payoffs
    def action_values(self, strategies: Sequence[Tensor]) -> list[Tensor]:
        """Each player's expected payoff for each of its actions against the others' strategies.

        ``action_values(s)[i][..., a] = E_{a_-i ~ s_-i} payoffs[i, a, a_-i]``: the payoff
        of deviating to pure action ``a`` while the others keep playing ``s``.

        Shapes:
            - ``strategies``: N tensors ``(A_i,)``, or ``(B, A_i)`` for a batched game.
            - returns: N tensors of the same shapes.
        """
        return [self.player_action_values(strategies, player) for player in range(self.num_players)]

    def player_action_values(self, strategies: Sequence[Tensor], player: int) -> Tensor:
        """Player ``player``'s entry of :meth:`action_values`; the player's own strategy is unused.

        Shapes: returns ``(A_player,)``, or ``(B, A_player)`` for a batched game.
        """
        payoffs = self.payoffs[:, player] if self.batched else self.payoffs[player]
        return contract(payoffs, strategies, (player,), batch=self.batched)

    def expected_payoffs(self, strategies: Sequence[Tensor]) -> Tensor:
        """Expected payoff of every player under a profile. Shape ``(N,)``, or ``(B, N)``."""
        values = self.action_values(strategies)
        return torch.stack([(v * s).sum(-1) for v, s in zip(values, strategies)], dim=-1)

    def __repr__(self) -> str:
        batch = f"batch_size={self.batch_size}, " if self.batched else ""
        title = f", title={self.title!r}" if self.title else ""
        return (
            f"NormalFormGame({batch}num_players={self.num_players}, "
            f"num_actions={self.num_actions}, dtype={self.dtype}, device={self.device}{title})"
        )
