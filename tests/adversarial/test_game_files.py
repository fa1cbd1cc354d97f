"""Small game files that used to cost minutes, gigabytes or a traceback.

Each ends in one line that names the file, the line and the problem, with exit code 2,
checked before any large arithmetic or allocation. The files are in ``games/``; the
ones too large to keep (thousands of players) are written by the tests.
"""

from __future__ import annotations

import pathlib

import pytest

from marl.cli import main

GAMES = pathlib.Path(__file__).resolve().parent / "games"


def refused(capsys, path: pathlib.Path | str) -> str:
    assert main(["solve", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert len(error) < 400, "the message echoes too much of the file"
    return error


@pytest.mark.parametrize("name, message", [
    ("huge_exponent.nfg", ":2:1: '1e999999999': its exponent is beyond what a float holds (at most 400)"),
    ("long_number.nfg", ":2:1: the number '11111111111111111111'... (5,000 characters) is longer than 100 characters"),
    ("unclosed_players.nfg", ":1:34: expected a quoted player name or '}' closing the list of players, found '3'"),
    ("bad_chance.efg", ":4:1: chance probabilities [0.7, 0.7] of chance information set 1 do not form a distribution"),
    ("overflow.efg", ":5:1: the payoffs along this path add up to a number too large for a float"),
])
def test_malformed_numbers_name_the_file_and_line(capsys, name, message):
    error = refused(capsys, GAMES / name)
    assert f"{GAMES / name}{message}" in error


@pytest.mark.parametrize("players", [27, 65, 10_000])
@pytest.mark.parametrize("suffix", [".nfg", ".efg"])
def test_files_with_too_many_players_are_refused_at_their_header(tmp_path, capsys, players, suffix):
    names = " ".join(f'"P{index}"' for index in range(players))
    path = tmp_path / f"players{suffix}"
    if suffix == ".nfg":
        path.write_text(f'NFG 1 R "many" {{ {names} }} {{ {" ".join(["1"] * players)} }}\n' + "0 " * players + "\n")
    else:
        path.write_text(f'EFG 2 R "many" {{ {names} }}\n""\n\nt "" 1 "" {{ {", ".join(["0"] * players)} }}\n')
    error = refused(capsys, path)
    assert f"{path}:1:" in error and f"the game has {players:,} players; gamelab reads games of at most 26" in error
