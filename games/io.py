"""Atomic file writes: a temporary file in the destination's folder, then a rename.

A reader never sees a half-written file, and a crash mid-write leaves the old file intact.
The temporary file is named ``.NAME.PID.XXXX.tmp`` after the process that writes it; a
process killed mid-write (``kill -9``) leaves one behind, and the next write of ``NAME``
removes those whose process is gone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO, Any


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Removes the temporary files that killed writers of ``path`` left beside it; returns them."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], mode: str = "w") -> None:
    """Calls ``write(handle)`` on a temporary file beside ``path``, then renames it over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.{os.getpid()}.",
                                             suffix=".tmp")
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


# YAML that a user hands us: aliases can make a few hundred bytes expand into billions of
# values (and refer to themselves), so the document is measured before it is built.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000


def read_yaml(path: str | os.PathLike) -> tuple[Any, Any]:
    """``(data, root node)`` of a YAML file a user handed us, read with PyYAML's safe loader.

    Before anything is built, the document is composed once (aliases stay references) and
    its size with every alias expanded is counted, without expanding it. ``root`` is the
    composed node tree (``None`` for an empty document), for callers that report lines.

    Raises:
        GameFileError: naming the file, for a missing or unreadable file, YAML that does not
            parse (with its line), a file over ``MAX_YAML_BYTES``, nesting deeper than Python
            can follow, an alias that contains itself, or a document that expands to more than
            ``MAX_YAML_VALUES`` values.
    """
    import yaml

    from games.errors import GameFileError

    source = os.fspath(path)
    try:
        size = os.path.getsize(source)
    except OSError as error:
        raise GameFileError(source, None, None, error.strerror or str(error)) from None
    if size > MAX_YAML_BYTES:
        raise GameFileError(source, None, None, f"{size:,} bytes; a config of more than {MAX_YAML_BYTES:,} bytes "
                                                "is not read")
    text = read_text_file(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_expansion(root, source)
        data = yaml.safe_load(text)
    except RecursionError:
        raise GameFileError(source, None, None, "the YAML nests too deeply to be read") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise GameFileError(source, None if mark is None else mark.line + 1, None if mark is None else mark.column + 1,
                            f"not valid YAML: {problem}") from None
    return data, root


def _check_expansion(root: Any, source: str) -> None:
    """Counts the values of the composed document with aliases expanded (memoized, never expanded)."""
    import yaml

    from games.errors import GameFileError

    def children(node: Any) -> list[Any]:
        if isinstance(node, yaml.MappingNode):
            return [part for pair in node.value for part in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    sizes: dict[int, int] = {}
    started: set[int] = set()  # nodes being counted: the path from the root to the current node
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            started.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children(node))
            if sizes[key] > MAX_YAML_VALUES:
                raise GameFileError(source, node.start_mark.line + 1, node.start_mark.column + 1,
                                    f"through its aliases this expands to more than {MAX_YAML_VALUES:,} values; "
                                    "a config needs far fewer")
            continue
        if key in sizes:
            continue
        started.add(key)
        stack.append((node, True))
        for child in children(node):
            if id(child) in started:
                raise GameFileError(source, child.start_mark.line + 1, child.start_mark.column + 1,
                                    "an alias refers to a value that contains it")
            if id(child) not in sizes:
                stack.append((child, False))


# What torch's weights-only unpickler says of a pickle that names objects beyond tensors
# and numbers (a class or function to import, or opcodes of newer pickle protocols).
PICKLE_MARKS = ("GLOBAL", "Unsupported operand", "Unsupported class")


def read_torch_file(path: str | os.PathLike, what: str = "torch file") -> Any:
    """What ``torch.save`` wrote to a file a user handed us, read on the CPU with ``weights_only=True``.

    Raises:
        GameFileError: naming the file: missing; damaged (a member of its zip archive fails
            its CRC-32, checked before torch reads it); holding pickled objects, which could
            run code when loaded; or not a torch file at all.
    """
    import re
    import zipfile

    import torch

    from games.errors import GameFileError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise GameFileError(path, None, None, f"no such {what} file")
    archive = zipfile.is_zipfile(path)
    if archive:
        try:
            with zipfile.ZipFile(path) as opened:
                damaged = opened.testzip()
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as error:
            raise GameFileError(path, None, None, f"corrupted: its zip archive cannot be read ({error})") from None
        if damaged is not None:
            raise GameFileError(path, None, None, f"corrupted: {damaged} inside it fails its checksum; the file was "
                                                  "changed after it was written (use an earlier copy, or make it again)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file
        text = str(error)
        if "Weights only load failed" in text and any(mark in text for mark in PICKLE_MARKS):
            with open(path, "rb") as handle:
                pickle = archive or handle.read(1) == b"\x80"  # a torch archive, or a pickle of protocol 2+
            if pickle:
                named = re.search(r"GLOBAL ([\w.]+)", text)
                raise GameFileError(path, None, None,
                                    "refused: it holds Python objects that would run code when loaded (a pickle"
                                    + (f" naming {named.group(1)}" if named else "") + "); gamelab reads only plain "
                                    "files of tensors and numbers, such as the checkpoint.pt and policy.pt that "
                                    "`gamelab train` writes") from None
        # torch's own text about weights_only is advice for trusted files; it does not apply here.
        detail = "" if "Weights only load failed" in text or not text.strip() else \
            f": {type(error).__name__} {text.strip().splitlines()[0][:160]}"
        raise GameFileError(path, None, None, f"not a readable torch {what} (corrupted or foreign){detail}") from None


def saved_format_problem(state: Any, marker: str, version: int, what: str) -> str | None:
    """What is wrong with a saved ``state`` whose dict should carry ``format: marker`` and ``version``
    (``what`` names the kind of file in the message), or None when both fit."""
    if not isinstance(state, dict) or state.get("format") != marker:
        return f"not a gamelab {what} (no {marker!r} format marker)"
    if state.get("version") != version:
        return f"{what} version {state.get('version')!r}; this gamelab reads {version}"
    return None
