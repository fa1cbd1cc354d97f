"""Helpers the commands share: devices, output paths, KEY=VALUE settings."""

from __future__ import annotations

import json
from typing import Any

from games.errors import GamelabError


def _flag(name: str) -> str:
    """The command-line flag of a setting's name: ``oracle_steps`` -> ``--oracle-steps``."""
    return "--" + name.replace("_", "-")


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


def _trainer_params(texts: list[str], flags: dict[str, str] | None = None) -> dict[str, Any]:
    """``--param KEY=VALUE`` settings of a trainer's config: a JSON list of ``hidden_sizes`` as a tuple, and a
    key in ``flags`` (a setting with a flag of its own, ``{name: flag}``) refused, naming that flag."""
    params = dict(_setting(text) for text in texts)
    for name, flag in (flags or {}).items():
        if name in params:
            raise GamelabError(f"--param {name}: set it with {flag}")
    if isinstance(params.get("hidden_sizes"), list):
        params["hidden_sizes"] = tuple(params["hidden_sizes"])
    return params


def _run_folder(args: Any, what: str) -> tuple[str | None, dict | None]:
    """``(state_path, state)`` of a run command's ``--out`` folder: refuses a folder that is a file, a
    non-empty folder without ``--resume``, a ``--resume`` with no run, and a run of another game;
    ``state`` is the saved run when resuming (read with ``weights_only=True``), else None."""
    import os

    from games.io import read_torch_file

    state_path = None if args.out is None else os.path.join(args.out, "state.pt")
    if args.resume and (state_path is None or not os.path.isfile(state_path)):
        raise GamelabError(f"--resume: {args.out or '(no --out)'} holds no {what} run (state.pt) to continue")
    if args.out is not None:
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise GamelabError(f"--out {args.out}: exists and is not a folder")
        if not args.resume and os.path.isdir(args.out) and os.listdir(args.out):
            raise GamelabError(f"--out {args.out}: the folder is not empty; choose another --out, or --resume a run")
        _check_writable_folder(args.out, f"--out {args.out}")
    if not args.resume:
        return state_path, None
    state = read_torch_file(state_path, what=f"{what} run")
    if not isinstance(state, dict) or state.get("game") != args.game:
        recorded = state.get("game") if isinstance(state, dict) else None
        raise GamelabError(f"--resume: {state_path} is a run of {recorded!r}, not {args.game!r}")
    return state_path, state
