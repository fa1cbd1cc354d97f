"""OpenSpiel normal-form games as gamelab :class:`NormalFormGame` objects.

Accepted: OpenSpiel ``MatrixGame`` and ``TensorGame`` objects, and any one-shot
simultaneous-move game or game string (``"matrix_rps"``, ``"matrix_pd"``,
``"blotto"``, ...), converted with ``pyspiel.extensive_to_tensor_game``. Sequential
(turn-based) games are extensive-form games and are refused here with a clear error.

``pyspiel`` is imported only inside this module.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from games.errors import GameError, MissingDependencyError
from games.normal_form import NormalFormGame

# The most pure profiles a converted game may have before conversion is refused.
MAX_PROFILES = 10_000_000


def _pyspiel():
    try:
        import pyspiel
    except ImportError:  # pragma: no cover - open_spiel is a core dependency
        raise MissingDependencyError("open_spiel", "openspiel", "OpenSpiel games") from None
    return pyspiel


def load_openspiel_game(spec: Any) -> Any:
    """A pyspiel game from a game object or a game string, with a GameError for unknown strings."""
    pyspiel = _pyspiel()
    if not isinstance(spec, str):
        return spec
    if spec.split("(")[0] not in pyspiel.registered_names():
        raise GameError(f"OpenSpiel cannot load {spec!r}: no game of that name is registered")
    try:
        return pyspiel.load_game(spec)
    except pyspiel.SpielError as error:
        raise GameError(f"OpenSpiel cannot load {spec!r}: {error}") from None


def is_openspiel_normal_form(game: Any) -> bool:
    """Whether a pyspiel game is a one-shot simultaneous-move (normal-form) game."""
    pyspiel = _pyspiel()
    if isinstance(game, (pyspiel.MatrixGame, pyspiel.TensorGame)):
        return True
    game_type = game.get_type()
    return game_type.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS and game.max_game_length() == 1


def normal_form_from_openspiel(game: Any, **game_kwargs: Any) -> NormalFormGame:
    """Converts an OpenSpiel normal-form game (object or string) to a :class:`NormalFormGame`.

    Raises:
        GameError: for unknown game strings, sequential games, or games too large to tabulate.
    """
    pyspiel = _pyspiel()
    name = game if isinstance(game, str) else game.get_type().short_name
    game = load_openspiel_game(game)
    if not is_openspiel_normal_form(game):
        raise GameError(
            f"OpenSpiel game {name!r} is sequential (turn-based), not a normal-form game; "
            "it is an extensive-form game"
        )
    if not isinstance(game, (pyspiel.MatrixGame, pyspiel.TensorGame)):
        num_actions = [game.num_distinct_actions()] * game.num_players()
        if math.prod(num_actions) > MAX_PROFILES:
            raise GameError(f"OpenSpiel game {name!r} has more than {MAX_PROFILES:,} pure profiles")
        game = pyspiel.extensive_to_tensor_game(game)
    num_players = game.num_players()
    if isinstance(game, pyspiel.MatrixGame):
        payoffs = np.stack([np.asarray(game.row_utilities()), np.asarray(game.col_utilities())])
        action_names = [
            [game.row_action_name(a) for a in range(game.num_rows())],
            [game.col_action_name(a) for a in range(game.num_cols())],
        ]
    else:
        payoffs = np.stack([np.asarray(game.player_utilities(p)) for p in range(num_players)])
        action_names = [
            [game.action_name(p, a) for a in range(payoffs.shape[1 + p])] for p in range(num_players)
        ]
    return NormalFormGame(
        payoffs, action_names=action_names, title=f"OpenSpiel {name}", **game_kwargs
    )
