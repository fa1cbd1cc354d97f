"""What is played: game representations, file formats and adapters.

The names below load on first use (PEP 562), so that importing ``games.errors`` (as the
command line does before it knows which subcommand runs) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "GameError": "games.errors",
    "GameFileError": "games.errors",
    "GamelabError": "games.errors",
    "MissingDependencyError": "games.errors",
    "SolverError": "games.errors",
    "load_game": "games.loading",
    "NormalFormGame": "games.normal_form",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'games' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = sorted(_WHERE)
