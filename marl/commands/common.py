"""Helpers the commands share: devices, output paths, KEY=VALUE settings."""

from __future__ import annotations

import json
from typing import Any

from games.errors import GamelabError


def _device(name: str) -> Any:
    from games.devices import parse_device

    return parse_device(name)


def _check_output_path(path: str | None, option: str) -> None:
    import os

    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise GamelabError(f"{option} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise GamelabError(f"{option} {path}: is a folder")
    _check_writable_folder(folder, f"{option} {path}")


def _check_writable_folder(folder: str, what: str) -> None:
    """Raises unless ``folder``, or the nearest folder above it that exists, is writable."""
    import os

    probe = os.path.abspath(folder)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise GamelabError(f"{what}: {probe} is not a writable folder")


def _setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false, null)."""
    if "=" not in text:
        raise GamelabError(f"--set {text!r}: expected KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
