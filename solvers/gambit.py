"""Exact and path-following Nash equilibria through pygambit (the optional ``gambit`` extra).

Gambit (McKelvey, McLennan and Turocy, *Gambit: Software Tools for Game Theory*) does
these well, so gamelab calls it instead of re-implementing it:

- ``lcp``: Lemke-Howson (Lemke and Howson 1964) on 2-player games, as pygambit's
  ``lcp_solve``;
- ``enummixed``: every extreme equilibrium of a 2-player game (Avis et al. vertex
  enumeration), as ``enummixed_solve``;
- ``enumpure``: every pure equilibrium, any number of players;
- ``logit``: the principal branch of the logit quantal-response correspondence traced to
  its limit (McKelvey and Palfrey 1995), any number of players;
- ``gnm``: global Newton (Govindan and Wilson 2003), any number of players.

Results are lists of profiles; each profile is a list of per-player ``(A_i,)`` tensors
on the game's device. ``pygambit`` is imported only inside this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from games.errors import MissingDependencyError, SolverError
from games.normal_form import NormalFormGame

METHODS = ("lcp", "enummixed", "enumpure", "logit", "gnm", "enumpoly", "ipa", "simpdiv")
TWO_PLAYER_METHODS = ("lcp", "enummixed")


def _pygambit():
    try:
        import pygambit
    except ImportError:
        raise MissingDependencyError("pygambit", "gambit", "Solving with Gambit") from None
    return pygambit


def to_pygambit(game: NormalFormGame) -> Any:
    """The game as a pygambit strategic-form game (float payoffs)."""
    if game.batched:
        raise SolverError("pygambit solves one game at a time; index the batch first")
    gbt = _pygambit()
    payoffs = game.payoffs.detach().to("cpu", torch.float64).numpy()
    return gbt.Game.from_arrays(*[payoffs[i] for i in range(game.num_players)], title=game.title or "gamelab game")


def profile_to_tensors(profile: Any, game: NormalFormGame) -> list[torch.Tensor]:
    """A pygambit mixed-strategy profile as per-player probability tensors."""
    return [
        torch.tensor([float(p) for _, p in profile[player]], dtype=game.dtype, device=game.device)
        for player in profile.game.players
    ]


def gambit_equilibria(game: NormalFormGame, method: str = "lcp") -> list[list[torch.Tensor]]:
    """Nash equilibria of an (unbatched) game found by pygambit's ``method``.

    Raises:
        SolverError: for an unknown method, or a 2-player method on an N-player game.
        MissingDependencyError: when pygambit is not installed.
    """
    if method not in METHODS:
        raise SolverError(f"unknown Gambit method {method!r}; use one of {', '.join(METHODS)}")
    if method in TWO_PLAYER_METHODS and game.num_players != 2:
        raise SolverError(f"Gambit's {method} solves 2-player games; this game has {game.num_players} players")
    gbt = _pygambit()
    gambit_game = to_pygambit(game)
    if method == "lcp":
        result = gbt.nash.lcp_solve(gambit_game, rational=False, stop_after=1)
    elif method == "enummixed":
        result = gbt.nash.enummixed_solve(gambit_game, rational=False)
    elif method == "enumpure":
        result = gbt.nash.enumpure_solve(gambit_game)
    elif method == "logit":
        result = gbt.nash.logit_solve(gambit_game)
    elif method == "enumpoly":
        result = gbt.nash.enumpoly_solve(gambit_game, stop_after=1)
    elif method == "ipa":
        result = gbt.nash.ipa_solve(gambit_game)
    elif method == "simpdiv":
        result = gbt.nash.simpdiv_solve(gambit_game.mixed_strategy_profile(rational=True))  # from the centroid
    else:
        result = gbt.nash.gnm_solve(gambit_game)
    return [profile_to_tensors(profile, game) for profile in result.equilibria]


def gambit_payoffs(path: str) -> np.ndarray:
    """The payoff tensor ``(N, A_1, ..., A_N)`` of a ``.nfg`` file as pygambit reads it."""
    gbt = _pygambit()
    gambit_game = gbt.read_nfg(path)
    return np.stack([np.asarray(a, dtype=np.float64) for a in gambit_game.to_arrays()])
