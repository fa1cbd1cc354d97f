"""gamelab's own error types.

Every error a user can cause (a malformed file, a wrong shape, an unknown name) is raised
as a ``GamelabError``, whose message names what was wrong and where. The CLI turns these
into a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable


class GamelabError(ValueError):
    """Base class of the errors a user's input can cause."""


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'CLOSEST'?)`` for an unknown ``name``, or ``""`` when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class GameError(GamelabError):
    """A game, strategy or profile that does not make sense (shape, values, names)."""


class GameFileError(GameError):
    """A malformed game file. The message names the file, the line and column, and what was expected."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, column: int | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.column = column
        self.reason = message
        where = self.path or "<string>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


class UnknownGameError(GameError):
    """A game name that nothing knows: not a file, a catalog game, a generator or an OpenSpiel game."""


class SolverError(GamelabError):
    """A solver asked to do something it cannot (an unknown name, a game it does not support)."""


class MissingDependencyError(GamelabError):
    """An optional extra that a feature needs is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the optional package {package!r}: "
            f"pip install 'gamelab[{extra}]' (or pip install {package})"
        )
