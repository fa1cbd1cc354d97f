"""Checkpoints that are hostile, damaged or crafted, and work that must not be lost.

- a pickle that would run code is refused with a message that says so;
- a checkpoint damaged after it was written (bytes flipped inside a tensor) fails its
  zip CRC check instead of loading with changed weights;
- crafted header entries end in ``CheckpointError``, never an AttributeError;
- a temporary file left by a writer that was killed is removed by the next write;
- SIGTERM (what ``timeout`` and schedulers send) saves the checkpoint like Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from marl import checkpoint
from marl.cli import main
from marl.errors import CheckpointError


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch gamelab-adversarial-marker",))


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    """A real policy.pt of an untrained MADDPG team on spread."""
    import scenarios
    from marl.maddpg import MADDPG, GameSpec, MADDPGConfig
    from marl.train import save_policy

    path = tmp_path_factory.mktemp("policy") / "policy.pt"
    game = scenarios.make("spread", num_envs=1)
    save_policy(path, MADDPG(GameSpec.of(game), MADDPGConfig(hidden_sizes=(16, 16)), "cpu"), "spread", {})
    return path


def test_a_pickle_that_runs_code_is_refused_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "policy.pt"
    torch.save({"format": "gamelab.maddpg", "payload": _RunsCode()}, path)
    assert main(["evaluate", str(path)]) == 2
    error = capsys.readouterr().err
    assert "refused: it holds Python objects that would run code when loaded (a pickle naming" in error
    assert "system" in error and "Re-running" not in error and error.count("\n") == 1
    assert not (tmp_path / "gamelab-adversarial-marker").exists()


def _flip_inside_largest_member(path, count: int = 64) -> None:
    """Flips ``count`` bytes in the middle of the largest member's data (a weight tensor)."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
    with open(path, "r+b") as handle:
        handle.seek(member.header_offset + 26)
        name_length, extra_length = (int.from_bytes(handle.read(2), "little") for _ in range(2))
        start = member.header_offset + 30 + name_length + extra_length + member.compress_size // 2
        handle.seek(start)
        data = handle.read(count)
        handle.seek(start)
        handle.write(bytes(byte ^ 0xFF for byte in data))


def test_a_damaged_checkpoint_fails_its_checksum(tmp_path, policy_file, capsys):
    damaged = tmp_path / "policy.pt"
    damaged.write_bytes(policy_file.read_bytes())
    _flip_inside_largest_member(damaged)
    with pytest.raises(CheckpointError, match="corrupted: .* fails its checksum"):
        checkpoint.load(damaged)
    assert main(["evaluate", str(damaged), "--episodes", "2"]) == 2
    assert "fails its checksum" in capsys.readouterr().err
    checkpoint.load(policy_file)  # the undamaged file still loads


@pytest.mark.parametrize("change, message", [
    ({"spec": "notadict"}, "malformed checkpoint header: 'spec' is a str, not a mapping"),
    ({"game": {"name": "spread", "settings": "x"}}, "'game' must hold a name and a settings mapping"),
    ({"config": ["a"]}, "'config' is a list, not a mapping"),
    ({"run": 3}, "'run' is not a mapping"),
])
def test_crafted_headers_raise_checkpoint_errors(tmp_path, policy_file, capsys, change, message):
    payload = checkpoint.load(policy_file)
    payload.update(change)
    path = tmp_path / "crafted.pt"
    checkpoint.save(path, {key: value for key, value in payload.items() if key not in ("format", "version")})
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path)
    assert main(["evaluate", str(path), "--episodes", "2"]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    from games.io import atomic_write_bytes

    target = tmp_path / "checkpoint.pt"
    dead = tmp_path / ".checkpoint.pt.999999999.x1y2.tmp"  # no process has this id
    alive = tmp_path / f".checkpoint.pt.{os.getppid()}.x3y4.tmp"  # a writer still running
    other = tmp_path / ".policy.pt.999999999.x5y6.tmp"  # another file's: left for its own next write
    for path in (dead, alive, other):
        path.write_bytes(b"partial")
    atomic_write_bytes(target, b"complete")
    assert target.read_bytes() == b"complete"
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([target.name, alive.name, other.name])


def test_sigterm_saves_the_training_checkpoint_like_ctrl_c(tmp_path):
    """SIGTERM once training is under way (a checkpoint written by the clock shows it is):
    exit 130, and the checkpoint written on the way out holds at least as much training."""
    folder = tmp_path / "run"
    command = [sys.executable, "-m", "marl.cli", "train", "maddpg", "--scenario", "spread", "--env-steps", "100000000",
               "--num-envs", "8", "--param", "batch_size=32", "--param", "hidden_sizes=[16,16]", "--param",
               "learning_starts=200", "--param", "log_every=200", "--param", "buffer_size=5000", "--param",
               "checkpoint_minutes=0.001", "--out", str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, seen = time.time() + 240, 0
    while time.time() < deadline and process.poll() is None and not seen:
        if (folder / "checkpoint.pt").exists():
            seen = checkpoint.load(folder / "checkpoint.pt")["run"]["env_steps"]
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    assert seen > 0, "no checkpoint of a training step was written"
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=120)
    assert process.returncode == 130, error
    saved = checkpoint.load(folder / "checkpoint.pt")
    assert saved["run"]["env_steps"] >= seen > 0


def test_a_policy_callable_that_is_not_a_policy_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", "spread", "--policy", "os:system", "--out", "x.gif"]) == 2
    error = capsys.readouterr().err
    assert "--policy 'os:system' raised TypeError" in error and error.count("\n") == 1
    assert not (tmp_path / "x.gif").exists()


def test_a_full_disk_is_one_line_and_the_earlier_file_is_intact(tmp_path, monkeypatch, capsys):
    import errno

    import games.io

    out = tmp_path / "kuhn.json"
    out.write_text("the previous solution")

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(games.io.os, "fsync", full)
    assert main(["solve", "kuhn_poker", "--iterations", "10", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "cannot write" in error and "No space left on device" in error and "intact" in error
    assert error.count("\n") == 1
    assert out.read_text() == "the previous solution"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kuhn.json"]  # no temporary file left
