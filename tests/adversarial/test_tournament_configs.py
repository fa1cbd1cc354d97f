"""Tournament configs written by someone else: they cannot run code or read files elsewhere.

Each config in ``configs/`` is a small hostile or careless input. Each one ends in one line
naming the problem, exit code 2, no database, and nothing done on the machine.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from marl.cli import main

CONFIGS = pathlib.Path(__file__).resolve().parent / "configs"
MARKER = "gamelab-adversarial-marker"


def copy(name: str, folder: pathlib.Path) -> str:
    """The config ``name`` copied into ``folder``, where the test runs."""
    target = folder / "configs" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copy(CONFIGS / name, target)
    return str(target)


def refused(args: list[str], capsys) -> str:
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    return error


def test_a_config_that_names_code_is_refused_without_allow_code(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = copy("code_execution.yaml", tmp_path)
    error = refused(["tournament", config, "--db", "t.sqlite"], capsys)
    assert "players[1].callable: player 'b' runs Python code named in the config ('os:system')" in error
    assert "--allow-code" in error
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "t.sqlite").exists()


def test_with_allow_code_arguments_go_only_to_policy_factories(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = copy("code_execution.yaml", tmp_path)
    error = refused(["tournament", config, "--db", "t.sqlite", "--allow-code"], capsys)
    assert "os:system is not a policy factory" in error
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "t.sqlite").exists()


@pytest.mark.parametrize("name, message", [
    ("absolute_path.yaml", "players[1].path: '/etc/passwd' is outside the config's folder"),
    ("climbing_path.yaml", "is outside the config's folder"),
])
def test_player_files_outside_the_configs_folder_are_not_read(tmp_path, monkeypatch, capsys, name, message):
    monkeypatch.chdir(tmp_path)
    opened = []

    def record(event, args):
        if event == "open" and args and isinstance(args[0], str) and args[0].endswith("passwd"):
            opened.append(args[0])

    import sys

    sys.addaudithook(record)
    error = refused(["tournament", copy(name, tmp_path), "--db", "t.sqlite"], capsys)
    assert message in error and "root:" not in error
    assert not opened, opened
    assert not (tmp_path / "t.sqlite").exists()


def test_a_link_that_leads_out_of_the_configs_folder_is_refused(tmp_path, capsys):
    from marl.errors import TournamentConfigError
    from marl.tournaments.config import load_config
    from marl.tournaments.run import run_tournament

    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    folder = tmp_path / "shared"
    folder.mkdir()
    os.symlink(outside, folder / "strategy.json")
    (folder / "t.yaml").write_text("game: kuhn_poker\nplayers:\n  - {name: a, kind: uniform}\n"
                                   "  - {name: b, kind: strategy, path: strategy.json}\n")
    with pytest.raises(TournamentConfigError, match="leads out of the config's folder"):
        run_tournament(load_config(folder / "t.yaml"), tmp_path / "t.sqlite")
    assert not (tmp_path / "t.sqlite").exists()


@pytest.mark.parametrize("name, message", [
    ("bad_device.yaml", ":3: device: unknown device 'foo'"),
    ("missing_gpu.yaml", ":3: device: device 'cuda:7' was asked for"),
])
def test_devices_in_a_config_are_checked_like_the_command_lines(tmp_path, monkeypatch, capsys, name, message):
    monkeypatch.chdir(tmp_path)
    error = refused(["tournament", copy(name, tmp_path), "--db", "t.sqlite"], capsys)
    assert message in error
    assert not (tmp_path / "t.sqlite").exists()
