"""Shared fixtures: the devices to test on and the Gambit test files."""

from __future__ import annotations

import pathlib

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parent.parent
GAMBIT_DATA = REPO.parent / "shared" / "data" / "gambit"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every test that takes ``device`` runs on the CPU, and on CUDA when present."""
    return torch.device(request.param)


def gambit_files(suffix: str) -> list[pathlib.Path]:
    """The Gambit example files with ``suffix``; tests using them fail loudly if none exist."""
    files = sorted(GAMBIT_DATA.glob(f"*{suffix}"))
    if not files:
        raise FileNotFoundError(f"no Gambit {suffix} files under {GAMBIT_DATA}: shared/ must sit beside the repository")
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
