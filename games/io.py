"""Atomic file writes: a temporary file in the destination's folder, then a rename.

A reader never sees a half-written file, and a crash mid-write leaves the old file intact.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], mode: str = "w") -> None:
    """Calls ``write(handle)`` on a temporary file beside ``path``, then renames it over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (UTF-8)."""
    atomic_write(path, lambda handle: handle.write(text))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(data), mode="wb")


def read_text_file(path: str | os.PathLike) -> str:
    """The UTF-8 text of a file a user handed us.

    Raises:
        GameFileError: naming the file, for a missing or unreadable file or one that is not text.
    """
    from games.errors import GameFileError

    try:
        with open(path, encoding="utf-8", errors="strict") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise GameFileError(path, None, None, f"not a text file ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise GameFileError(path, None, None, error.strerror or str(error)) from None
