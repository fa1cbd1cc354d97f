"""Sizes typed on the command line or written in a file header, refused before memory is touched.

Each of these reached the allocator and ended in a traceback (or took the machine's memory):
``random(100000,100000)`` (160 GB of payoffs), ``--set num_agents=100000``,
``--param buffer_size=1000000000``, ``--param hidden_sizes=[100000,100000]``,
``--num-envs 100000000``, ``evaluate --episodes 100000000``, and a policy file whose
header asks for huge layers. Each is now one line with the estimate, exit code 2, and
no empty ``--out`` folder. ``--max-memory`` moves the limit both ways.
"""

from __future__ import annotations

import pytest

from marl.cli import main


def refused(capsys, args: list[str]) -> str:
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    return error


@pytest.mark.parametrize("args, what", [
    (["solve", "random(100000,100000)"], "the payoffs of random(100000,100000) would take about 320 GB"),
    (["solve", "random_zero_sum(100000,100000)"], "the payoffs of random_zero_sum(100000,100000) would take about"),
    (["render", "spread", "--set", "num_agents=100000", "--out", "x.gif"],
     "1 copies of a world of 200,000 entities would take about"),
    (["train", "maddpg", "--scenario", "spread", "--param", "buffer_size=1000000000", "--out", "run"],
     "a replay buffer of 1,000,000,000 transitions"),
    (["train", "maddpg", "--scenario", "spread", "--param", "hidden_sizes=[100000,100000]", "--out", "run"],
     "network(s) of layer sizes [18, 100000, 100000, 5] would take about"),
    (["train", "maddpg", "--scenario", "spread", "--num-envs", "100000000", "--out", "run"],
     "100,000,000 copies of a world of 6 entities would take about"),
])
def test_huge_sizes_are_refused_with_an_estimate_and_leave_nothing(tmp_path, monkeypatch, capsys, args, what):
    monkeypatch.chdir(tmp_path)
    error = refused(capsys, args)
    assert what in error and "gamelab may use" in error and "--max-memory" in error
    assert list(tmp_path.iterdir()) == []


def test_evaluate_with_too_many_episodes_and_a_policy_asking_for_huge_layers(tmp_path, capsys):
    import scenarios
    from marl import checkpoint
    from marl.maddpg import MADDPG, GameSpec, MADDPGConfig
    from marl.train import save_policy

    game = scenarios.make("spread", num_envs=1)
    policy = tmp_path / "policy.pt"
    save_policy(policy, MADDPG(GameSpec.of(game), MADDPGConfig(hidden_sizes=(8, 8)), "cpu"), "spread", {})
    assert "100,000,000 copies" in refused(capsys, ["evaluate", str(policy), "--episodes", "100000000"])
    payload = checkpoint.load(policy)
    payload["config"]["hidden_sizes"] = [200000, 200000]
    crafted = tmp_path / "crafted.pt"
    checkpoint.save(crafted, {key: value for key, value in payload.items() if key not in ("format", "version")})
    assert "layer sizes [18, 200000, 200000, 5]" in refused(capsys, ["evaluate", str(crafted), "--episodes", "2"])


def test_max_memory_lowers_and_raises_the_limit(capsys):
    error = refused(capsys, ["solve", "random(300,300)", "--max-memory", "100kB"])
    assert "more than the 100 kB gamelab may use (the --max-memory limit)" in error
    assert main(["solve", "random(30,30)", "--max-memory", "1GB", "--json"]) == 0
    assert "not a size" in refused(capsys, ["solve", "rps", "--max-memory", "lots"])


def test_read_only_output_folders_are_refused_before_the_work(tmp_path, monkeypatch, capsys):
    """Root writes into read-only folders, so the folder is made read-only to gamelab's check."""
    import os

    from tests.conftest import REPO

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if os.fspath(path) == str(locked)
                        else real_access(path, mode))
    cases = [
        (["solve", "kuhn_poker", "--out", str(locked / "kuhn.json")], "--out"),
        (["solve", "rps", "--plot", str(locked / "rps.png")], "--plot"),
        (["render", "spread", "--out", str(locked / "x.gif")], "--out"),
        (["train", "maddpg", "--scenario", "spread", "--out", str(locked / "run")], "--out"),
        (["tournament", str(REPO / "examples" / "rps_tournament.yaml"), "--db", str(tmp_path / "t.sqlite"),
          "--report", str(locked / "report")], "--report"),
    ]
    for args, option in cases:
        error = refused(capsys, args)
        assert option in error and f"{locked} is not a writable folder" in error, (args, error)
    assert list(locked.iterdir()) == []
