"""Games that the trainers run on, by name.

A name is a gamelab scenario (``spread``, see ``gamelab scenarios``) or
``pettingzoo:MODULE`` for any PettingZoo environment module with a ``parallel_env``
factory, such as ``pettingzoo:mpe2.simple_spread_v3``; those are driven through
``games.adapters.pettingzoo.from_parallel_env`` (copies stepped one by one on the CPU).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

from games.errors import GamelabError, MissingDependencyError
from marl.errors import TrainingError

PETTINGZOO_PREFIX = "pettingzoo:"

# Optional packages a user may name, and the extra of gamelab that installs them.
OPTIONAL_EXTRAS = {"mpe2": "bench", "vmas": "bench", "ray": "ray", "pygambit": "gambit"}


def import_callable(module_name: str, attribute: str) -> Callable:
    """``module_name.attribute``, imported and checked to be callable (user code named on a command line or in a config).

    Modules are found as ``python -m`` finds them: in the current folder first, then in the
    installed packages (the ``gamelab`` console script alone would not look in the current
    folder).

    Raises:
        GamelabError: ``cannot import 'MODULE': why (looked in ...)`` or ``MODULE has no
            callable 'ATTRIBUTE'``; callers prefix where the name came from.
        MissingDependencyError: for an optional package gamelab knows (``mpe2``), with the
            ``pip install`` line.
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        missing = getattr(error, "name", None) or ""
        top = missing.split(".")[0]
        if top in OPTIONAL_EXTRAS and top == module_name.split(".")[0]:
            raise MissingDependencyError(top, OPTIONAL_EXTRAS[top], f"{module_name!r}") from None
        raise GamelabError(f"cannot import {module_name!r}: {error} (looked in the current folder {here} "
                           "and the installed packages)") from None
    target = getattr(module, attribute, None)
    if not callable(target):
        raise GamelabError(f"{module_name} has no callable {attribute!r}")
    return target


def is_markov_game(name: str) -> bool:
    """Whether ``name`` names a Markov game (a scenario, or ``pettingzoo:MODULE``) rather than a game
    that ``gamelab solve`` loads."""
    import scenarios

    return name in scenarios.names() or name.startswith(PETTINGZOO_PREFIX)


def make_game(name: str, num_envs: int, *, device: torch.device | str = "cpu", seed: int = 0,
              settings: dict[str, Any] | None = None) -> Any:
    """``num_envs`` copies of a scenario (``spread``) or of ``pettingzoo:MODULE`` as a ``MarkovGame``.

    For ``pettingzoo:MODULE`` the settings are passed to ``MODULE.parallel_env`` and the
    copies run on the CPU (the trainer moves tensors to its device).
    """
    settings = dict(settings or {})
    if not name.startswith(PETTINGZOO_PREFIX):
        import scenarios

        return scenarios.make(name, num_envs=num_envs, device=device, seed=seed, **settings)
    from games.adapters.pettingzoo import from_parallel_env

    try:
        factory = import_callable(name[len(PETTINGZOO_PREFIX):], "parallel_env")
    except GamelabError as error:
        raise TrainingError(f"game {name!r}: {error}") from None
    try:
        factory(**settings).close()
    except TypeError as error:
        raise TrainingError(f"game {name!r}: bad settings {settings}: {error}") from None
    return from_parallel_env(lambda: factory(**settings), num_envs, seed=seed)


def resolved_settings(name: str, settings: dict[str, Any] | None) -> dict[str, Any]:
    """Every setting of a scenario, defaults filled in (so ``{}`` equals the explicit defaults).

    PettingZoo environments' settings are returned as given.
    """
    settings = dict(settings or {})
    if name.startswith(PETTINGZOO_PREFIX):
        return settings
    import dataclasses

    import scenarios

    return dataclasses.asdict(scenarios.configure(name, settings))
