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
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch

from games.errors import GamelabError
from games.io import atomic_write_bytes

FORMAT = "gamelab.maddpg"
VERSION = 1


class CheckpointError(GamelabError):
    """A checkpoint that cannot be read, is not gamelab's, or does not fit the game."""


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
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (corrupted or foreign): {type(error).__name__} {detail}".rstrip()
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gamelab MADDPG checkpoint (no {FORMAT!r} format marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}; this gamelab reads {VERSION}")
    for key in ("game", "spec", "config", "learner"):
        if key not in payload:
            raise CheckpointError(f"{path}: the checkpoint has no {key!r} entry")
    return payload


def check_game(payload: dict[str, Any], path: str | os.PathLike, name: str, settings: dict[str, Any]) -> None:
    """Raises ``CheckpointError`` unless the checkpoint was trained on game ``name`` with ``settings``."""
    from marl.envs import resolved_settings

    saved = payload["game"]
    if not isinstance(saved, dict):
        raise CheckpointError(f"{os.fspath(path)}: the checkpoint's 'game' entry is malformed")
    if saved.get("name") != name:
        raise CheckpointError(
            f"{os.fspath(path)}: the checkpoint was trained on {saved.get('name')!r}, not {name!r}"
        )
    if resolved_settings(name, saved.get("settings", {})) != resolved_settings(name, settings):
        raise CheckpointError(
            f"{os.fspath(path)}: the checkpoint was trained on {name} with settings {saved.get('settings')}, "
            f"not {settings}"
        )
