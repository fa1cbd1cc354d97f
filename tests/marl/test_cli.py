import json
import subprocess
import sys

import pytest

from marl.cli import main
from tests.conftest import GAMBIT_DATA


def run(*args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "marl.cli", *args], capture_output=True, text=True, timeout=300)


def test_solve_json_is_the_last_line_with_the_promised_keys():
    result = run("solve", "battle_of_the_sexes", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("game", "solver", "iterations", "seconds", "nash_conv", "strategies"):
        assert key in payload
    assert payload["nash_conv"] < 1e-9
    assert [len(s) for s in payload["strategies"]] == [2, 2]


def test_solve_reads_a_gambit_file_and_writes_out_and_plot(tmp_path, capsys):
    out, plot = tmp_path / "eq.json", tmp_path / "curve.png"
    code = main(["solve", str(GAMBIT_DATA / "2x2x2.nfg"), "--solver", "rm+", "--iterations", "300",
                 "--out", str(out), "--plot", str(plot), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads(out.read_text())["strategies"] == printed["strategies"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed["iterations"] == 300


def test_target_nash_conv_stops_early(capsys):
    assert main(["solve", "random_zero_sum(20,20,seed=3)", "--solver", "rm+", "--iterations", "20000",
                 "--target-nash-conv", "1e-3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["nash_conv"] <= 1e-3 and payload["iterations"] < 20000


def test_human_output_shows_a_table_and_nash_conv(capsys):
    assert main(["solve", "rps"]) == 0
    text = capsys.readouterr().out
    assert "Rock" in text and "NashConv" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["solve", "no_such_game"], "unknown game"),
        (["solve", "rps", "--device", "cuda:7"], "device"),
        (["solve", "rps", "--out", "/no/such/folder/x.json"], "does not exist"),
        (["solve", "three_player_matching_pennies", "--solver", "lemke-howson"], "2-player"),
        (["solve", "kuhn_poker(players=x)"], "unknown game"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_traceback(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_nfg_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.nfg"
    bad.write_text('NFG 1 R "t" { "A" "B" } { 2 2 }\n1 2 3 4\n5 x\n')
    result = run("solve", str(bad))
    assert result.returncode == 2
    assert f"{bad}:3" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["solve", "rps", "--iterations", "0"], ["solve", "rps", "--solver", "magic"],
                                  ["solve", "rps", "--target-nash-conv", "nan"], ["bogus"]])
def test_bad_arguments_exit_2(args):
    result = run(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_failed_run_leaves_an_existing_out_file_untouched(tmp_path):
    out = tmp_path / "eq.json"
    out.write_text("precious")
    assert run("solve", "no_such_game", "--out", str(out)).returncode == 2
    assert out.read_text() == "precious"


def test_listing_commands(capsys):
    assert main(["games"]) == 0 and "battle_of_the_sexes" in capsys.readouterr().out
    assert main(["solvers"]) == 0 and "lemke-howson" in capsys.readouterr().out


def test_extensive_form_solve_writes_a_strategy_gamelab_reads_back(tmp_path, capsys):
    from games.extensive_form import read_strategy
    from games.loading import load_game
    from solvers.sequence_form import nash_conv

    out = tmp_path / "kuhn.json"
    assert main(["solve", "kuhn_poker", "--iterations", "400", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["solver"] == "cfr+" and payload["num_infosets"] == 12
    game = load_game("kuhn_poker")
    strategy = read_strategy(game, out)
    assert float(nash_conv(game, strategy)) == pytest.approx(payload["nash_conv"], abs=1e-12)
    assert payload["expected_payoffs"][0] == pytest.approx(-1 / 18, abs=1e-3)


@pytest.mark.parametrize("args, message", [
    (["solve", "kuhn_poker", "--solver", "rm+"], "extensive-form games use"),
    (["solve", "rps", "--solver", "cfr+"], "solves extensive-form games"),
    (["solve", "missing.efg"], "No such file"),
])
def test_extensive_form_errors_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_gambit_efg_file_solved_exactly_by_the_sequence_form_lp(capsys):
    assert main(["solve", str(GAMBIT_DATA / "4cards.efg"), "--solver", "lp", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["nash_conv"] < 1e-8 and payload["solver"] == "lp"


def test_render_writes_an_animated_gif_of_one_episode(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "spread.gif"
    assert main(["render", "spread", "--policy", "scripted", "--set", "num_agents=4", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.format == "GIF" and image.n_frames == 26  # the start and 25 steps
    assert "26 frames" in capsys.readouterr().out


def test_render_plays_a_policy_given_as_module_callable(tmp_path):
    out = tmp_path / "nav.gif"
    code = main(["render", "navigation", "--policy", "scenarios.navigation:goal_seeking_policy",
                 "--steps", "5", "--out", str(out)])
    assert code == 0 and out.stat().st_size > 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["render", "sprd", "--out", "x.gif"], "did you mean 'spread'"),
        (["render", "spread", "--set", "num_agents=0", "--out", "x.gif"], "num_agents must be >= 1"),
        (["render", "spread", "--set", "N=3", "--out", "x.gif"], "spread has no setting 'N'"),
        (["render", "adversary", "--policy", "scripted", "--out", "x.gif"], "no scripted policy for 'adversary'"),
        (["render", "spread", "--policy", "nowhere:policy", "--out", "x.gif"], "cannot import 'nowhere'"),
        (["render", "spread", "--out", "x.png"], "must end in .gif"),
    ],
)
def test_render_refuses_bad_input_with_exit_code_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_scenarios_lists_every_scenario_with_its_settings(capsys):
    assert main(["scenarios"]) == 0
    listed = capsys.readouterr().out
    for name in ("spread", "tag", "adversary", "navigation"):
        assert name in listed
    assert "num_agents=3" in listed


def test_bench_sim_prints_json_with_ratios(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "marl.cli", "bench", "sim", "--batches", "16", "--seconds", "0.05", "--repeats", "1",
         "--json"], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    row = payload["spread_n3"][0]
    assert row["num_envs"] == 16 and row["gamelab"] > 0
    assert payload["spread_n10"]["gamelab"] > 0


TINY_RUN = ["--num-envs", "8", "--param", "batch_size=64", "--param", "hidden_sizes=[16,16]",
            "--param", "learning_starts=200", "--param", "transitions_per_update=16", "--param", "buffer_size=5000",
            "--param", "eval_episodes=10", "--param", "log_every=200"]


def test_train_maddpg_writes_a_run_that_evaluate_and_resume_continue(tmp_path, capsys):
    folder = tmp_path / "run"
    code = main(["train", "maddpg", "--scenario", "spread", "--env-steps", "400", "--out", str(folder),
                 *TINY_RUN, "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("mean_episode_return", "random_return", "env_steps", "seconds"):
        assert key in payload
    assert payload["env_steps"] == 400 and payload["eval_episodes"] == 10
    for name in ("checkpoint.pt", "policy.pt", "result.json", "trained.gif", "learning_curve.png"):
        assert (folder / name).is_file(), name
    assert any(path.name.startswith("events.out.tfevents") for path in folder.iterdir())

    assert main(["evaluate", str(folder / "policy.pt"), "--scenario", "spread", "--episodes", "10",
                 "--seed", "2", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["eval_episodes"] == 10
    # Without --scenario, the scenario and settings the checkpoint records.
    assert main(["evaluate", str(folder / "policy.pt"), "--episodes", "10", "--seed", "2", "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert recorded["scenario"] == "spread" and recorded["settings"] == {}
    assert recorded["mean_episode_return"] == evaluated["mean_episode_return"]

    assert main(["train", "maddpg", "--scenario", "spread", "--env-steps", "800", "--out", str(folder),
                 "--resume", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert resumed["env_steps"] == 800 and resumed["updates"] == (800 - 200) // 16 + 1
    assert resumed["config"]["batch_size"] == 64  # the saved settings, not the defaults


def test_train_refuses_to_overwrite_a_run_and_bad_input_exits_2(tmp_path):
    folder = tmp_path / "run"
    assert main(["train", "maddpg", "--scenario", "spread", "--env-steps", "400", "--out", str(folder),
                 *TINY_RUN, "--no-gif"]) == 0
    before = (folder / "checkpoint.pt").read_bytes()
    cases = [
        (["train", "maddpg", "--scenario", "spread", "--out", str(folder)], "already holds a run"),
        (["train", "maddpg", "--scenario", "spread", "--out", str(folder), "--resume", "--num-envs", "4"],
         "num_envs=8"),
        (["train", "maddpg", "--scenario", "tag", "--out", str(folder), "--resume"], "not 'tag'"),
        (["train", "maddpg", "--scenario", "sprad", "--out", str(tmp_path / "new")], "did you mean 'spread'"),
        (["train", "maddpg", "--scenario", "spread", "--out", str(tmp_path / "new"), "--param", "gamma=2"],
         "gamma"),
        (["train", "maddpg", "--scenario", "spread", "--out", str(tmp_path / "other"), "--resume"],
         "no checkpoint.pt"),
        (["evaluate", str(folder / "policy.pt"), "--scenario", "tag"], "not 'tag'"),
        (["evaluate", str(folder / "result.json"), "--scenario", "spread"], "corrupted or foreign"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert (folder / "checkpoint.pt").read_bytes() == before
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------------------
# What a user's own code and setup meet


@pytest.mark.parametrize("args, message", [
    (["solve"], "gamelab solve: error: the following arguments are required: game (see gamelab solve --help)"),
    (["solve", "rps", "--iterations", "0"], "gamelab solve: error: argument --iterations: expected a positive number"),
    (["bogus"], "gamelab: error: argument command: invalid choice: 'bogus'"),
    (["train", "maddpg"], "gamelab train maddpg: error: the following arguments are required: --scenario"),
])
def test_argument_errors_are_one_line_without_the_usage_block(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "usage:" not in result.stderr
    assert message in result.stderr


def test_version_and_benchmark_help_name_the_command():
    from importlib.metadata import version

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"gamelab {version('gamelab')}"
    help_text = run("bench", "sim", "--help")
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: gamelab bench sim")


def test_a_policy_module_in_the_current_folder_is_found_by_the_console_script(tmp_path):
    """`gamelab render tag --policy mypackage.policies:chase`, run from the folder that holds mypackage/."""
    import os

    script = os.path.join(os.path.dirname(sys.executable), "gamelab")
    if not os.path.isfile(script):
        pytest.skip("the gamelab console script is not installed beside this interpreter")
    package = tmp_path / "mypackage"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "policies.py").write_text(
        "from games.policy import random_policy\n_random = random_policy(3)\n\n\n"
        "def chase(game, observations):\n    return _random(game, observations)\n")
    result = subprocess.run([script, "render", "tag", "--policy", "mypackage.policies:chase", "--steps", "3", "--out",
                             "tag.gif"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tag.gif").stat().st_size > 0
    missing = subprocess.run([script, "render", "tag", "--policy", "otherpackage.policies:chase", "--out", "x.gif"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and f"looked in the current folder {tmp_path}" in missing.stderr


def test_a_missing_optional_package_gives_the_pip_line(monkeypatch, capsys):
    from marl import envs

    monkeypatch.setitem(envs.OPTIONAL_EXTRAS, "gamelab_absent_extra", "bench")
    code = main(["train", "maddpg", "--scenario", "pettingzoo:gamelab_absent_extra.simple_v1", "--out", "unused"])
    error = capsys.readouterr().err
    assert code == 2 and "pip install 'gamelab[bench]'" in error and error.count("\n") == 1


# --------------------------------------------------------------------------------------
# PSRO


def test_psro_json_and_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["psro", "kuhn_poker", "--iterations", "20", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("game", "meta_solver", "oracle", "iterations", "seconds", "nash_conv", "history",
                "population_sizes", "meta_strategy"):
        assert key in payload, key
    assert payload["nash_conv"] < 1e-9 and payload["meta_solver"] == "nash"
    assert [len(strategy) for strategy in payload["meta_strategy"]] == payload["population_sizes"]
    members = sorted(path.name for path in (out / "population").iterdir())
    assert len(members) == sum(payload["population_sizes"]) and members[0] == "player0_000.json"
    meta = json.loads((out / "meta_game.json").read_text())
    assert len(meta["meta_strategies"]) == payload["iterations"] + 1
    assert (out / "nash_conv.png").read_bytes()[:4] == b"\x89PNG"
    from games.extensive_form import read_strategy
    from games.loading import load_game

    read_strategy(load_game("kuhn_poker"), out / "population" / members[-1])  # a strategy gamelab reads back


@pytest.mark.parametrize("args, message", [
    (["psro", "rps", "--meta-solver", "nsh"], "unknown meta-solver 'nsh' (did you mean 'nash'?)"),
    (["psro", "no_such_game"], "unknown game"),
])
def test_psro_bad_input_exits_2(args, message, capsys):
    assert main(args) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_psro_refuses_a_run_folder_that_holds_something(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("mine")
    assert main(["psro", "rps", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["precious.txt"]


def test_psro_killed_mid_run_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    """kill -9 after some iterations, then --resume: the same populations, meta-game and NashConv."""
    import signal
    import time

    import torch

    whole = tmp_path / "whole"
    assert main(["psro", "leduc_poker", "--meta-solver", "prd", "--iterations", "7", "--out", str(whole), "--json"]) == 0
    uninterrupted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "marl.cli", "psro", "leduc_poker", "--meta-solver", "prd",
                                "--iterations", "7", "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        state = killed / "state.pt"
        if state.exists() and len(torch.load(state, weights_only=True)["history"]) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(torch.load(killed / "state.pt", weights_only=True)["history"])
    assert 2 <= done < 7
    assert main(["psro", "leduc_poker", "--meta-solver", "prd", "--iterations", "7", "--out", str(killed),
                 "--resume", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert resumed["nash_conv"] == uninterrupted["nash_conv"]
    assert resumed["population_sizes"] == uninterrupted["population_sizes"]
    assert [row["nash_conv"] for row in resumed["history"]] == [row["nash_conv"] for row in uninterrupted["history"]]
    first, second = (torch.load(folder / "state.pt", weights_only=True) for folder in (whole, killed))
    assert torch.equal(first["meta_game"], second["meta_game"])


def test_psro_resume_refuses_another_game_and_a_damaged_state(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["psro", "kuhn_poker", "--meta-solver", "prd", "--iterations", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    assert main(["psro", "leduc_poker", "--meta-solver", "prd", "--out", str(out), "--resume"]) == 2
    assert "is a run of 'kuhn_poker', not 'leduc_poker'" in capsys.readouterr().err
    state = out / "state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2: len(data) // 2 + 16] = bytes(16)
    state.write_bytes(bytes(data))
    before["state.pt"] = bytes(data)
    assert main(["psro", "kuhn_poker", "--meta-solver", "prd", "--out", str(out), "--resume"]) == 2
    error = capsys.readouterr().err
    assert "state.pt" in error and error.count("\n") == 1
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before


def test_psro_variant_xdo_reaches_the_target_and_writes_its_strategy(tmp_path, capsys):
    out = tmp_path / "xdo"
    assert main(["psro", "kuhn_poker", "--variant", "xdo", "--target-nash-conv", "1e-3", "--out", str(out),
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["variant"] == "xdo" and payload["nash_conv"] <= 1e-3
    from games.extensive_form import read_strategy
    from games.loading import load_game
    from solvers.sequence_form import nash_conv

    game = load_game("kuhn_poker")
    strategy = read_strategy(game, out / "strategy.json")
    assert float(nash_conv(game, strategy)) == pytest.approx(payload["nash_conv"], abs=1e-9)
    assert main(["psro", "rps", "--variant", "xdo"]) == 2
    assert "normal-form game" in capsys.readouterr().err


def test_help_and_argument_errors_answer_without_importing_torch():
    """`gamelab --help`, a subcommand's --help and a mistyped command answer before torch loads."""
    script = ("import sys\nfrom marl.cli import main\n"
              "for argv in (['--help'], ['solve', '--help'], ['psro', '--help'], ['train', 'maddpg', '--help'], "
              "['tournament', '--help'], ['solv']):\n"
              "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
              "print(sorted(name for name in ('torch', 'numpy', 'pyspiel', 'matplotlib', 'ray') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_an_unknown_solver_is_refused_before_the_game_loads(capsys):
    assert main(["solve", "no_such_game", "--solver", "cfrr"]) == 2
    error = capsys.readouterr().err
    assert "unknown solver 'cfrr' (did you mean 'cfr'?)" in error and "no_such_game" not in error


def test_a_short_budget_lowers_learning_starts_and_says_so(tmp_path, capsys):
    """openai/maddpg's learning_starts (25,600) would leave a 4,000-step run without a single update."""
    assert main(["train", "maddpg", "--scenario", "spread", "--env-steps", "4000", "--num-envs", "8", "--out",
                 str(tmp_path / "run"), "--param", "batch_size=64", "--param", "transitions_per_update=16",
                 "--param", "hidden_sizes=[16,16]", "--param", "eval_episodes=5", "--no-gif", "--json"]) == 0
    captured = capsys.readouterr()
    assert "learning_starts lowered from 25,600 to 1,000 so that --env-steps 4,000 trains" in captured.err
    payload = json.loads(captured.out.strip().splitlines()[-1])
    assert payload["config"]["learning_starts"] == 1000 and payload["updates"] == (4000 - 1000) // 16 + 1


def test_a_budget_that_ends_before_the_first_update_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "maddpg", "--scenario", "spread", "--env-steps", "400", "--out", str(run),
                 "--param", "learning_starts=1000"]) == 2
    assert "--env-steps 400 ends before the first update (learning_starts=1,000" in capsys.readouterr().err
    assert main(["train", "maddpg", "--scenario", "spread", "--env-steps", "300", "--out", str(run)]) == 2
    assert "--env-steps 300 is too short to train" in capsys.readouterr().err
    assert not run.exists()


def test_tag_reports_each_teams_return_beside_the_mean(tmp_path, capsys):
    """Predators and prey on one scale would hide both: the JSON, the text and the training stats name each team."""
    assert main(["train", "maddpg", "--scenario", "tag", "--env-steps", "400", "--out", str(tmp_path / "run"),
                 *TINY_RUN, "--no-gif", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    teams = payload["team_returns"]
    assert set(teams) == {"adversary", "agent"} and set(payload["random_team_returns"]) == set(teams)
    # 3 adversaries and 1 good agent: the mean per agent is the agents' weighted mean of the teams' means
    assert payload["mean_episode_return"] == pytest.approx((3 * teams["adversary"] + teams["agent"]) / 4)
    assert main(["evaluate", str(tmp_path / "run" / "policy.pt"), "--episodes", "4"]) == 0
    assert "per team: adversary " in capsys.readouterr().out


def test_training_stats_hold_each_teams_return():
    from marl.envs import make_game
    from marl.maddpg import MADDPGConfig
    from marl.train import train

    config = MADDPGConfig(env_steps=400, num_envs=8, batch_size=64, hidden_sizes=(16, 16), learning_starts=200,
                          transitions_per_update=16, buffer_size=5000, log_every=200, checkpoint_minutes=0)
    seen = []
    train(make_game("tag", 8, seed=0), config, callback=lambda stats, learner: seen.append(stats))
    last = seen[-1]
    assert last["episode_return"] == pytest.approx((3 * last["episode_return/adversary"]
                                                    + last["episode_return/agent"]) / 4)


def test_a_missed_target_is_said_in_the_text_and_the_json(capsys):
    arguments = ["solve", "random(3,3,3,seed=1)", "--solver", "nash-sgd", "--iterations", "50", "--target-nash-conv", "1e-6"]
    assert main(arguments) == 0
    assert "target NashConv 1e-06 not reached" in capsys.readouterr().out.replace("\n", " ")
    assert main([*arguments, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["target_reached"] is False and payload["nash_conv"] > 1e-6
    assert main(["solve", "rps", "--target-nash-conv", "1e-6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["target_reached"] is True


def test_text_output_labels_the_correlated_gap_and_keeps_internal_keys_in_the_json(capsys):
    assert main(["solve", "chicken", "--solver", "ce"]) == 0
    text = capsys.readouterr().out.replace("\n", " ")
    assert "correlated-equilibrium gap:" in text and "\ngap:" not in text
    assert main(["solve", "random_zero_sum(30,30,seed=2)"]) == 0
    text = capsys.readouterr().out
    assert "polished" not in text and "lp_fallback" not in text
    assert main(["solve", "random_zero_sum(30,30,seed=2)", "--json"]) == 0
    assert "lp_fallback" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_every_equilibrium_found_is_printed_and_returned(tmp_path, capsys):
    pytest.importorskip("pygambit")
    plot = tmp_path / "one.png"
    assert main(["solve", "battle_of_the_sexes", "--solver", "gambit-enummixed", "--plot", str(plot)]) == 0
    text = capsys.readouterr().out.replace("\n", " ")
    assert "equilibrium 3:" in text and "no curve to draw" in text
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["solve", "battle_of_the_sexes", "--solver", "gambit-enummixed", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["equilibria_found"] == 3 and len(payload["equilibria"]) == 3


def test_the_games_catalogue_lists_generators_files_and_openspiel_games(capsys):
    assert main(["games"]) == 0
    text = capsys.readouterr().out
    for expected in ("rock_paper_scissors", "random_zero_sum(", "examples/4cards.efg", "leduc_poker", "blotto"):
        assert expected in text
    leduc = next(line for line in text.splitlines() if line.split()[:1] == ["leduc_poker"])
    assert leduc.split()[1:4] == ["sequential", "imperfect", "2"]


def test_a_misspelt_game_gets_a_did_you_mean(capsys):
    assert main(["solve", "rsp"]) == 2
    assert "unknown game 'rsp' (did you mean 'rps'?)" in capsys.readouterr().err
    assert main(["solve", "leduc_pokr"]) == 2
    assert "(did you mean 'leduc_poker'?)" in capsys.readouterr().err


def test_people_read_action_names_and_the_json_keeps_ids_beside_them(capsys):
    assert main(["solve", "kuhn_poker", "--iterations", "20"]) == 0
    assert "Pass: " in capsys.readouterr().out
    assert main(["solve", "kuhn_poker", "--iterations", "20", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["action_names"]["0"] == ["Pass", "Bet"] and set(payload["strategies"]["0"]) == {"0", "1"}
    assert main(["solve", "blotto", "--json", "--solver", "rm+", "--iterations", "10"]) == 0
    actions = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["actions"]
    assert "[0,0,10]" in actions[0] and len(actions[0]) == 66  # OpenSpiel's names, not its state strings


def test_the_json_says_whether_the_answer_is_exact(capsys):
    assert main(["solve", str(GAMBIT_DATA / "g2.nfg"), "--json"]) == 0  # 3 players: support enumeration
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["exact"] is True and payload["nash_conv"] <= 1e-9
    assert main(["solve", "rps", "--solver", "hedge", "--iterations", "20", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["exact"] is (payload["nash_conv"] <= 1e-9)
