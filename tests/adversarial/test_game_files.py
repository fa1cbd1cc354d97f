"""Small game files that used to cost minutes, gigabytes or a traceback.

Each ends in one line that names the file, the line and the problem, with exit code 2,
checked before any large arithmetic or allocation. The files are in ``games/``; the
ones too large to keep (thousands of players) are written by the tests.
"""

from __future__ import annotations

import pathlib

import numpy as np
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


def _payoff_file(path: pathlib.Path, rows: int, columns: int, seed: int = 0, extra: str = "") -> np.ndarray:
    """A zero-sum payoff-version .nfg of random 6-decimal payoffs; returns the row player's matrix."""
    matrix = np.random.default_rng(seed).integers(-10**6, 10**6, size=(rows, columns)) / 10**6
    body = "\n".join(f"{matrix[i, j]:.6f} {-matrix[i, j]:.6f}" for j in range(columns) for i in range(rows))
    path.write_text(f'NFG 1 R "random" {{ "Row" "Column" }} {{ {rows} {columns} }}\n\n{body}\n{extra}')
    return matrix


def test_a_large_payoff_table_is_read_exactly_in_little_more_memory_than_its_text_and_payoffs(tmp_path):
    """Reading held every token of the file at once (about 210 bytes each: 650 MB for a
    1000 x 1000 table). Now the memory above the file's text and the payoff table stays
    small, and the values are the correctly rounded decimals."""
    import tracemalloc

    from games.nfg import read_nfg

    path = tmp_path / "large.nfg"
    matrix = _payoff_file(path, 400, 300)
    text_bytes, payload_bytes = path.stat().st_size, 2 * 400 * 300 * 8
    tracemalloc.start()
    try:
        game = read_nfg(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(game.payoffs[0].numpy(), matrix)
    np.testing.assert_array_equal(game.payoffs[1].numpy(), -matrix)
    assert peak < text_bytes + 3 * payload_bytes, (peak, text_bytes, payload_bytes)


def test_rationals_exponents_and_errors_deep_in_a_large_table_are_read_as_before(tmp_path):
    from fractions import Fraction

    from games.errors import GameFileError
    from games.nfg import read_nfg

    rows, columns = 200, 300
    path = tmp_path / "mixed.nfg"
    matrix = _payoff_file(path, rows, columns)
    lines = path.read_text().splitlines()
    # Profile 50,001 (line 2 + 50,001) gets a rational and an exponent, far into the table.
    lines[2 + 50_000] = "1/3 -2.5e-3"
    path.write_text("\n".join(lines) + "\n")
    game = read_nfg(path)
    row, column = 50_000 % rows, 50_000 // rows
    assert float(game.payoffs[0, row, column]) == float(Fraction(1, 3))
    assert float(game.payoffs[1, row, column]) == -2.5e-3
    assert float(game.payoffs[0, 0, 0]) == matrix[0, 0]
    lines[2 + 55_000] = "0.5 1.2.3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GameFileError, match=rf"{path.name}:{3 + 55_000}:5: '1.2.3' is not a number"):
        read_nfg(path)
    lines[2 + 55_000] = "0.5 -0.5"
    path.write_text("\n".join(lines[:-1]) + "\n")  # the last profile's line is missing
    with pytest.raises(GameFileError, match="expected payoff 1 of profile 60000 of 60000, found the end of the file"):
        read_nfg(path)
