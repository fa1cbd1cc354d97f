"""The errors of ``marl/``: training runs, checkpoints and tournaments.

Each is a ``games.errors.GamelabError``, so the CLI prints its message on one line and
exits with code 2. They live in one module that imports nothing else of ``marl/``, so
a tournament can raise a training error without loading the trainer.
"""

from __future__ import annotations

from games.errors import GamelabError


class TrainingError(GamelabError):
    """A trainer asked to do something it cannot: a bad setting, a game it does not support."""


class CheckpointError(GamelabError):
    """A checkpoint that cannot be read, is not gamelab's, or does not fit the game."""


class TournamentConfigError(GamelabError):
    """A tournament file that cannot be used, naming the file, line and field."""


class TournamentDatabaseError(GamelabError):
    """A database that is not a gamelab tournament, or belongs to another tournament."""


__all__ = ["CheckpointError", "TournamentConfigError", "TournamentDatabaseError", "TrainingError"]
