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
    # A config's device is checked like --device.
    ("bad_device.yaml", ":3: device: unknown device 'foo'"),
    ("missing_gpu.yaml", ":3: device: device 'cuda:7' was asked for"),
    # YAML aliases that would exhaust the machine.
    ("alias_bomb.yaml", "through its aliases this expands to more than 100,000 values"),
    ("cyclic_alias.yaml", ":3:10: an alias refers to a value that contains it"),
])
def test_bad_devices_and_alias_bombs_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys, name, message):
    monkeypatch.chdir(tmp_path)
    error = refused(["tournament", copy(name, tmp_path), "--db", "t.sqlite"], capsys)
    assert message in error
    assert not (tmp_path / "t.sqlite").exists()


def test_yaml_nested_deeper_than_python_follows_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep.yaml").write_text("game: " + "[" * 100_000 + "]" * 100_000 + "\n")
    error = refused(["tournament", "deep.yaml", "--db", "t.sqlite"], capsys)
    assert "deep.yaml: the YAML nests too deeply to be read" in error


# --------------------------------------------------------------------------------------
# The database


RPS = "game: rock_paper_scissors\nplayers:\n  - {name: rock, kind: pure, action: 0}\n  - {name: uniform, kind: uniform}\n"


def _store(config, database):
    from marl.tournaments.run import open_store

    return open_store(config, database)


def test_a_second_run_on_a_database_in_use_is_told_so(tmp_path, capsys):
    from marl.tournaments.config import load_config

    path = tmp_path / "t.yaml"
    path.write_text(RPS)
    database = tmp_path / "t.sqlite"
    holder = _store(load_config(path), database)  # another run, still going
    try:
        error = refused(["tournament", str(path), "--db", str(database)], capsys)
        assert "another gamelab run is using this tournament database" in error
    finally:
        holder.close()
    assert main(["tournament", str(path), "--db", str(database)]) == 0  # free again


def test_a_match_stored_twice_is_ignored_when_equal_and_refused_when_not(tmp_path):
    import dataclasses

    from marl.errors import TournamentDatabaseError
    from marl.tournaments.config import load_config
    from marl.tournaments.rows import MatchRow

    path = tmp_path / "t.yaml"
    path.write_text(RPS)
    store = _store(load_config(path), tmp_path / "t.sqlite")
    try:
        rows = [MatchRow(0, 1, 0, 0, 1.0, -1.0, 1.0, seconds=0.1), MatchRow(0, 1, 1, 1, -1.0, 1.0, 0.0, seconds=0.1)]
        store.add(rows)
        store.add([dataclasses.replace(rows[0], seconds=0.5)])  # the same result, timed again
        assert store.rows() == rows
        with pytest.raises(TournamentDatabaseError, match="match 1 of players 0 and 1 is stored with another result"):
            store.add([MatchRow(0, 1, 2, 0, 0.0, 0.0, 0.5), dataclasses.replace(rows[1], payoff_first=0.0)])
        assert store.rows() == rows  # the refused block left nothing behind
    finally:
        store.close()
