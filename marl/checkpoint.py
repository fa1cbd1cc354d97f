"""Checkpoints of training runs: written atomically, read with ``weights_only=True``.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists):

- ``format``: ``"gamelab.maddpg"`` and ``version``: 1, so foreign files are recognized;
- ``game``: ``{"name": ..., "settings": {...}}``, what the agents were trained on;
- ``spec``: the agents and their spaces (``marl.maddpg.GameSpec``);
- ``config``: the ``MADDPGConfig`` fields;
- ``learner``: networks, targets, optimizers and the exploration generator;
- ``run``: counters, the learning curve and what resuming needs (``replay`` and the game's
  episode indices). A policy file (``policy.pt``) leaves out ``run`` and the optimizers.

Files handed to ``load`` are untrusted: anything that is not such a dict raises
``CheckpointError`` naming the file and what is wrong, never an unpickling traceback.
Before torch reads it, every member of the file's zip archive is checked against its
CRC-32, so a file damaged on disk or in transit is refused instead of loading with
changed weights; a file holding pickled objects (which could run code) is refused by
``weights_only=True``; and the header's entries are checked for their types.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from typing import Any

import torch

from games.io import atomic_write_bytes
from marl.errors import CheckpointError

FORMAT = "gamelab.maddpg"
VERSION = 1
# What torch's weights-only unpickler says of a pickle that names objects beyond tensors
# and numbers (a class or function to import, or opcodes of newer pickle protocols).
PICKLE_MARKS = ("GLOBAL", "Unsupported operand", "Unsupported class")


def save(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Writes ``payload`` (with the format marker) to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: for a missing or unreadable file, a file that is not a torch
            checkpoint, or one that gamelab did not write.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file
        text = str(error)
        if "Weights only load failed" in text and any(mark in text for mark in PICKLE_MARKS) and _is_pickle(path):
            named = re.search(r"GLOBAL ([\w.]+)", text)
            raise CheckpointError(
                f"{path}: refused: it holds Python objects that would run code when loaded (a pickle"
                + (f" naming {named.group(1)}" if named else "") + "); gamelab reads only plain checkpoints of "
                "tensors and numbers, such as the checkpoint.pt and policy.pt that `gamelab train` writes"
            ) from None
        # torch's own text about weights_only is advice for trusted files; it does not apply here.
        detail = "" if "Weights only load failed" in text or not text.strip() else \
            f": {type(error).__name__} {text.strip().splitlines()[0][:160]}"
        raise CheckpointError(f"{path}: not a readable torch checkpoint (corrupted or foreign){detail}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gamelab MADDPG checkpoint (no {FORMAT!r} format marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}; this gamelab reads {VERSION}")
    for key in ("game", "spec", "config", "learner"):
        if key not in payload:
            raise CheckpointError(f"{path}: the checkpoint has no {key!r} entry")
    _check_header(path, payload)
    return payload


def _is_pickle(path: str) -> bool:
    """Whether the file is a torch archive or a pickle (protocol 2 or later), not some other file."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"


def _check_archive(path: str) -> None:
    """Raises ``CheckpointError`` if a member of the zip archive fails its CRC-32 check."""
    if not zipfile.is_zipfile(path):
        return  # not a zip: torch.load says what it is
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as error:
        raise CheckpointError(f"{path}: corrupted: its zip archive cannot be read ({error})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupted: {damaged} inside it fails its checksum; the file was changed "
                              "after it was written (use an earlier copy, or train again)")


def _check_header(path: str, payload: dict[str, Any]) -> None:
    """Raises ``CheckpointError`` for header entries of the wrong type."""
    game = payload["game"]
    if not isinstance(game, dict) or not isinstance(game.get("name"), str) \
            or not isinstance(game.get("settings", {}), dict):
        raise CheckpointError(f"{path}: malformed checkpoint header: 'game' must hold a name and a settings mapping")
    for key in ("spec", "config", "learner"):
        if not isinstance(payload[key], dict):
            raise CheckpointError(f"{path}: malformed checkpoint header: {key!r} is a {type(payload[key]).__name__}, "
                                  "not a mapping")
    if "run" in payload and not isinstance(payload["run"], dict):
        raise CheckpointError(f"{path}: malformed checkpoint header: 'run' is not a mapping")


def check_game(payload: dict[str, Any], path: str | os.PathLike, name: str, settings: dict[str, Any]) -> None:
    """Raises ``CheckpointError`` unless the checkpoint was trained on game ``name`` with ``settings``."""
    from marl.envs import resolved_settings

    saved = payload["game"]
    if saved.get("name") != name:
        raise CheckpointError(
            f"{os.fspath(path)}: the checkpoint was trained on {saved.get('name')!r}, not {name!r}"
        )
    if resolved_settings(name, saved.get("settings", {})) != resolved_settings(name, settings):
        raise CheckpointError(
            f"{os.fspath(path)}: the checkpoint was trained on {name} with settings {saved.get('settings')}, "
            f"not {settings}"
        )
