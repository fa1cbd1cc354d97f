"""What is played: game representations, file formats and adapters."""

from games.errors import (
    GameError,
    GameFileError,
    GamelabError,
    MissingDependencyError,
    SolverError,
)
from games.loading import load_game
from games.normal_form import NormalFormGame

__all__ = [
    "GameError",
    "GameFileError",
    "GamelabError",
    "MissingDependencyError",
    "NormalFormGame",
    "SolverError",
    "load_game",
]
