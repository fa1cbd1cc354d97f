"""One entry point from a user's game specification to a game object.

``load_game(spec)`` accepts, in this order:

1) a path to a Gambit ``.nfg`` or ``.efg`` file;
2) a name from the classic-game catalog (``games.catalog.names()``);
3) ``random_zero_sum(M,N[,seed=S])`` or ``random(A1,A2,...[,seed=S])``: a seeded random game;
4) an OpenSpiel game string: one-shot simultaneous games (``"matrix_rps"``, ``"blotto"``)
   become a :class:`NormalFormGame`, sequential ones (``"kuhn_poker"``,
   ``"leduc_poker"``) an :class:`ExtensiveFormGame` compiled to tensors.

Gambit ``.efg`` paths load as compiled :class:`ExtensiveFormGame` objects. Anything else
raises :class:`GameError` listing what is accepted.
"""

from __future__ import annotations

import os
import re
from typing import Any

from games import catalog
from games.errors import GameError, UnknownGameError
from games.normal_form import NormalFormGame

_RANDOM = re.compile(r"^(random_zero_sum|random)\(([^)]*)\)$")


def _random_game(kind: str, arguments: str, **kwargs: Any) -> NormalFormGame:
    sizes, seed = [], 0
    for part in filter(None, (p.strip() for p in arguments.split(","))):
        if part.startswith("seed="):
            seed = int(part[5:])
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        else:
            raise GameError(f"{kind}(...) takes positive action counts and seed=S, got {part!r}")
    if kind == "random_zero_sum":
        if len(sizes) != 2:
            raise GameError(f"random_zero_sum needs two action counts, got {len(sizes)}")
        return catalog.random_zero_sum(*sizes, seed=seed, **kwargs)
    if len(sizes) < 2:
        raise GameError("random(...) needs an action count for each of at least two players")
    return catalog.random_game(sizes, seed=seed, **kwargs)


def load_game(spec: str, *, progress: Any = None, **kwargs: Any) -> Any:
    """The game that ``spec`` names; ``kwargs`` (``dtype``, ``device``) place its tensors.

    ``progress(nodes)`` is called while an OpenSpiel game tree is compiled (every 50,000 nodes).
    Returns a :class:`NormalFormGame` or an :class:`ExtensiveFormGame`.
    """
    if spec.endswith(".efg"):
        from games.efg import read_efg

        return read_efg(spec, **kwargs)
    if spec.endswith(".nfg") or os.path.isfile(spec):
        from games.nfg import read_nfg

        if not spec.endswith(".nfg"):
            raise GameError(f"{spec}: game files must be Gambit .nfg or .efg files")
        return read_nfg(spec, **kwargs)
    if spec in catalog.CLASSIC_GAMES:
        return catalog.load(spec, **kwargs)
    match = _RANDOM.match(spec.replace(" ", ""))
    if match:
        from games.memory import MemoryLimitError

        try:
            return _random_game(match.group(1), match.group(2), **kwargs)
        except MemoryLimitError:
            raise
        except ValueError as error:
            raise GameError(f"bad random game {spec!r}: {error}") from None
    if re.match(r"^[a-z_][a-z0-9_]*(\(.*\))?$", spec):
        from games.adapters.openspiel import (
            extensive_form_from_openspiel,
            is_openspiel_normal_form,
            load_openspiel_game,
            normal_form_from_openspiel,
        )

        try:
            spiel_game = load_openspiel_game(spec)
            if not is_openspiel_normal_form(spiel_game):
                return extensive_form_from_openspiel(spiel_game, progress=progress, **kwargs)
            return normal_form_from_openspiel(spiel_game, **kwargs)
        except UnknownGameError as error:
            import pyspiel

            from games.errors import did_you_mean

            known = [*catalog.names(), *(game.short_name for game in pyspiel.registered_games())]
            raise UnknownGameError(
                f"unknown game {spec!r}{did_you_mean(spec.split('(')[0], known)}: not a .nfg or .efg file, not a catalog game "
                f"({', '.join(catalog.names())}), not random(...)/random_zero_sum(...), "
                f"and {error}"
            ) from None
    raise UnknownGameError(f"unknown game {spec!r}: expected a .nfg or .efg path, a catalog name, random(...) or an "
                           "OpenSpiel game string")
