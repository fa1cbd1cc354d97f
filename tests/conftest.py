"""Shared fixtures: the devices to test on and the Gambit test files.

The tests read nothing outside the repository: a user's clone has nothing beside it. An
audit hook makes any attempt to open or list a path under the folder beside the
repository fail, so a test that still depends on it fails here, not only on a bare clone.
"""

from __future__ import annotations

import os
import pathlib
import sys

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parent.parent
GAMBIT_DATA = REPO / "tests" / "data" / "gambit"
OUTSIDE = str(REPO.parent / "shared")


def _refuse_outside(event: str, args: tuple) -> None:
    if event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    target = args[0]
    if isinstance(target, (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(target))
        if path == OUTSIDE or path.startswith(OUTSIDE + os.sep):
            raise PermissionError(f"{path}: the tests read only files inside the repository")


sys.addaudithook(_refuse_outside)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every test that takes ``device`` runs on the CPU, and on CUDA when present."""
    return torch.device(request.param)


def gambit_files(suffix: str) -> list[pathlib.Path]:
    """The Gambit example files with ``suffix``; tests using them fail loudly if none exist."""
    files = sorted(GAMBIT_DATA.glob(f"*{suffix}"))
    if not files:
        raise FileNotFoundError(f"no Gambit {suffix} files under {GAMBIT_DATA}")
    return files


@pytest.fixture(scope="session")
def kuhn():
    """Kuhn poker compiled from OpenSpiel (float64, CPU); solvers never modify a game."""
    from games.adapters.openspiel import extensive_form_from_openspiel

    return extensive_form_from_openspiel("kuhn_poker")


@pytest.fixture(scope="session")
def leduc():
    """Leduc poker compiled from OpenSpiel (float64, CPU)."""
    from games.adapters.openspiel import extensive_form_from_openspiel

    return extensive_form_from_openspiel("leduc_poker")
