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
``games.io.read_torch_file`` checks every member of the file's zip archive against its
CRC-32 first (a damaged file is refused instead of loading with changed weights) and
refuses pickled objects (``weights_only=True``); here the header's entries are checked for
their types.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch

from games.io import atomic_write_bytes
from marl.errors import CheckpointError

FORMAT = "gamelab.maddpg"
VERSION = 1


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
    from games.errors import GameFileError
    from games.io import read_torch_file

    path = os.fspath(path)
    try:
        payload = read_torch_file(path, what="checkpoint")
    except GameFileError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gamelab MADDPG checkpoint (no {FORMAT!r} format marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}; this gamelab reads {VERSION}")
    for key in ("game", "spec", "config", "learner"):
        if key not in payload:
            raise CheckpointError(f"{path}: the checkpoint has no {key!r} entry")
    _check_header(path, payload)
    return payload


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
