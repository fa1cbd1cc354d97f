"""Tournaments: payoffs against independent references, resuming, forfeits, backends and bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml

from marl.cli import main
from marl.errors import TournamentConfigError
from marl.tournaments.arenas import build_arena
from marl.tournaments.config import load_config, parse_config
from marl.tournaments.run import run_tournament
from tests.conftest import REPO

PLAYERS = "tests.marl.tournament_players"


def write_config(folder, text: str, name: str = "tournament.yaml") -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write(textwrap.dedent(text))
    return path


def stored_rows(database) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT first, second, match, seating, payoff_first, payoff_second, score_first, "
                                  "forfeit FROM matches ORDER BY first, second, match").fetchall()


TAG = """\
    game: tag
    matches_per_pair: 24
    batch_size: 8
    players:
      - {name: random, kind: uniform}
      - {name: pursuit, kind: scripted}
      - {name: lead, kind: scripted, arguments: {lead: 0.3}}
"""


# --------------------------------------------------------------------------------------
# Payoffs and ratings


def test_rock_paper_scissors_table_is_the_game_and_nash_averaging_rates_all_equal(tmp_path):
    from open_spiel.python.egt import alpharank

    config = load_config(REPO / "examples" / "rps_tournament.yaml")
    result = run_tournament(config, tmp_path / "rps.sqlite")
    names = result.names
    pure = [names.index(n) for n in ("rock", "paper", "scissors")]
    np.testing.assert_allclose(result.tables.payoffs[np.ix_(pure, pure)],
                               [[0, -1, 1], [1, 0, -1], [-1, 1, 0]], atol=1e-12)
    assert result.exact and result.tables.confidence.max() == 0
    np.testing.assert_allclose(result.ratings["nash_averaging"].values, 0.0, atol=1e-7)
    _, _, reference, _, _ = alpharank.compute([result.tables.payoffs])
    np.testing.assert_allclose(result.ratings["alpha_rank"].values, reference, atol=1e-9)
    rock_heavy = names.index("rock-heavy")
    assert result.tables.payoffs[names.index("paper"), rock_heavy] == pytest.approx(0.25)
    exploitability = result.ratings["meta_nash"].player_exploitability
    assert exploitability[names.index("nash")] == pytest.approx(0.0, abs=1e-9)
    assert exploitability[pure[0]] == pytest.approx(1.0)


def test_kuhn_exact_payoffs_equal_openspiel_policy_values(tmp_path, kuhn):
    """Every exact entry against OpenSpiel's expected_game_score.policy_value of the same two policies."""
    import pyspiel
    from open_spiel.python.algorithms.expected_game_score import policy_value

    from games.adapters.openspiel import strategy_to_tabular_policy

    config = parse_config(yaml.safe_load(textwrap.dedent("""\
        game: kuhn_poker
        players:
          - {name: lp, kind: solver, solver: lp}
          - {name: cfr+30, kind: solver, solver: cfr+, iterations: 30}
          - {name: uniform, kind: uniform}
          - {name: always-bet, kind: pure, action: last}
    """)))
    result = run_tournament(config, tmp_path / "kuhn.sqlite")
    arena = build_arena(config)
    spiel = pyspiel.load_game("kuhn_poker")
    policies = [strategy_to_tabular_policy(arena.game, player.strategy(), spiel) for player in arena.players]
    root = spiel.new_initial_state()
    for i in range(4):
        for j in range(4):
            as_first = policy_value(root, [policies[i], policies[j]])[0]
            as_second = policy_value(root, [policies[j], policies[i]])[1]
            expected = 0.5 * (as_first + as_second)
            assert result.tables.payoffs[i, j] == pytest.approx(expected, abs=1e-12)
    # Kuhn's value is -1/18 for the first seat (Kuhn 1950): the LP strategy's self-play match (one
    # seating) stores -1/18 for seat 0, and the LP strategy is unexploitable within the population.
    (self_play,) = [row for row in stored_rows(result.database) if row[:2] == (0, 0)]
    assert self_play[4] == pytest.approx(-1 / 18, abs=1e-9) and self_play[5] == pytest.approx(1 / 18, abs=1e-9)
    assert result.ratings["meta_nash"].player_exploitability[0] == pytest.approx(0.0, abs=1e-9)


def test_kuhn_sampled_play_agrees_with_exact_evaluation_within_its_confidence(tmp_path):
    text = """\
        game: kuhn_poker
        matches_per_pair: 4000
        batch_size: 4000
        players:
          - {name: cfr+30, kind: solver, solver: cfr+, iterations: 30}
          - {name: uniform, kind: uniform}
          - {name: always-bet, kind: pure, action: last}
    """
    exact = run_tournament(parse_config(yaml.safe_load(textwrap.dedent(text))), tmp_path / "exact.sqlite")
    sampled_config = parse_config(yaml.safe_load(textwrap.dedent(text) + "evaluation: sampled\n"))
    sampled = run_tournament(sampled_config, tmp_path / "sampled.sqlite")
    off = ~np.eye(3, dtype=bool)
    gap = np.abs(sampled.tables.payoffs - exact.tables.payoffs)[off]
    assert (gap <= 1.5 * sampled.tables.confidence[off]).all(), (gap, sampled.tables.confidence[off])
    assert sampled.tables.matches[0, 1] == 4000


def test_markov_matches_played_together_equal_matches_played_in_smaller_batches(tmp_path):
    config = parse_config(yaml.safe_load(textwrap.dedent(TAG)))
    small = parse_config({**yaml.safe_load(textwrap.dedent(TAG)), "batch_size": 2,
                          "players": yaml.safe_load(textwrap.dedent(TAG))["players"][1:]})
    big = parse_config({**yaml.safe_load(textwrap.dedent(TAG)), "batch_size": 24,
                        "players": yaml.safe_load(textwrap.dedent(TAG))["players"][1:]})
    rows_small = stored_rows(run_tournament(small, tmp_path / "small.sqlite").database)
    rows_big = stored_rows(run_tournament(big, tmp_path / "big.sqlite").database)
    assert len(rows_small) == len(rows_big) == 3 * 24
    np.testing.assert_allclose(np.array(rows_small, dtype=float), np.array(rows_big, dtype=float), atol=1e-9)
    del config


def test_duplicate_matches_replay_the_same_start_with_the_teams_exchanged(tmp_path):
    """Matches 2g and 2g+1 share a start: self-play of a deterministic team gives equal returns in both."""
    config = parse_config(yaml.safe_load(textwrap.dedent(TAG)))
    arena = build_arena(config)
    from marl.tournaments.rows import Unit

    rows = arena.play(Unit(1, 1, 0, 8))
    for even, odd in zip(rows[0::2], rows[1::2]):
        assert (even.payoff_first, even.payoff_second) == pytest.approx((odd.payoff_second, odd.payoff_first))
    # And the first seat of match 0 is the predators: the team that catches more scores more.
    result = run_tournament(config, tmp_path / "tag.sqlite")
    payoffs = result.tables.payoffs
    assert payoffs[2, 0] > payoffs[1, 0] > payoffs[0, 0]  # lead > pursuit > random against random
    elo = result.ratings["elo"].values
    assert elo[2] > elo[1] > elo[0]


def test_a_checkpoint_player_plays_like_its_trained_policy(tmp_path):
    """A policy.pt from `gamelab train` against itself: the table equals replaying the policy by hand."""
    import scenarios
    from marl.maddpg import MADDPG, GameSpec, MADDPGConfig
    from marl.train import load_policy, save_policy

    game = scenarios.make("tag", num_envs=1)
    learner = MADDPG(GameSpec.of(game), MADDPGConfig(seed=3), "cpu")
    save_policy(tmp_path / "policy.pt", learner, "tag", {})
    config = write_config(tmp_path, """\
        game: tag
        matches_per_pair: 4
        seat_swap: false
        players:
          - {name: net, kind: checkpoint, path: policy.pt}
          - {name: random, kind: uniform}
    """)
    result = run_tournament(load_config(config), tmp_path / "t.sqlite")
    policy = load_policy(tmp_path / "policy.pt")
    copies = scenarios.make("tag", num_envs=4, seed=0)
    observations, _ = copies.reset(seed=0)
    returns = np.zeros(2)
    for _ in range(copies.max_steps):
        observations, rewards, *_ = copies.step(policy(copies, observations))
        returns += [float(rewards["adversary_0"].double().mean()), float(rewards["agent_0"].double().mean())]
    assert result.tables.payoffs[0, 0] == pytest.approx(returns.mean(), abs=1e-9)


# --------------------------------------------------------------------------------------
# Forfeits


def test_crashing_hanging_and_cheating_players_forfeit_and_the_tournament_goes_on(tmp_path):
    config = parse_config(yaml.safe_load(textwrap.dedent(f"""\
        game: tag
        matches_per_pair: 4
        move_time_limit: 0.5
        players:
          - {{name: pursuit, kind: scripted}}
          - {{name: crash, kind: callable, callable: "{PLAYERS}:crashing_policy"}}
          - {{name: hang, kind: callable, callable: "{PLAYERS}:hanging_policy"}}
          - {{name: cheat, kind: callable, callable: "{PLAYERS}:illegal_policy"}}
    """)), allow_code=True)
    result = run_tournament(config, tmp_path / "t.sqlite")
    forfeits = dict(zip(result.names, result.tables.forfeits))
    assert forfeits["pursuit"] == 0
    # Every match of crash and hang (4 pairs of 4); cheat loses to pursuit and itself, while
    # against crash and hang those end the match before its illegal move is made.
    assert forfeits["crash"] == forfeits["hang"] == 4 * 4 and forfeits["cheat"] == 2 * 4
    errors = result.tables.errors
    assert "RuntimeError: this player always crashes" in errors["crash"]
    assert "time limit" in errors["hang"]
    assert "illegal action 7" in errors["cheat"] and "adversary_0" in errors["cheat"]
    payoffs = result.tables.payoffs
    pursuit = result.names.index("pursuit")
    for loser in ("crash", "hang", "cheat"):
        index = result.names.index(loser)
        assert payoffs[pursuit, index] > payoffs[index, pursuit]
        assert result.tables.scores[pursuit, index] == result.tables.counts[pursuit, index] == 2


def test_normal_form_and_tree_players_that_fail_forfeit(tmp_path):
    matrix = parse_config(yaml.safe_load(textwrap.dedent(f"""\
        game: matching_pennies
        players:
          - {{name: heads, kind: pure, action: 0}}
          - {{name: crash, kind: callable, callable: "{PLAYERS}:crashing_matrix_player"}}
    """)), allow_code=True)
    result = run_tournament(matrix, tmp_path / "m.sqlite")
    assert result.tables.forfeits.tolist() == [0, 3]  # 2 seatings against heads, 1 self-play
    assert result.tables.payoffs[0, 1] == 1.0 and result.tables.payoffs[1, 0] == -1.0  # the game's extremes
    tree = parse_config(yaml.safe_load(textwrap.dedent(f"""\
        game: kuhn_poker
        move_time_limit: 0.3
        players:
          - {{name: uniform, kind: uniform}}
          - {{name: hang, kind: callable, callable: "{PLAYERS}:hanging_tree_player"}}
    """)), allow_code=True)
    result = run_tournament(tree, tmp_path / "k.sqlite")
    assert result.tables.forfeits.tolist() == [0, 3]
    assert "time limit" in result.tables.errors["hang"]


# --------------------------------------------------------------------------------------
# Resuming


def test_kill_9_mid_tournament_then_resume_gives_the_uninterrupted_table(tmp_path):
    config = write_config(tmp_path, f"""\
        game: tag
        matches_per_pair: 40
        batch_size: 4
        players:
          - {{name: slow, kind: callable, callable: "{PLAYERS}:slow_pursuit", arguments: {{delay: 0.01}}}}
          - {{name: random, kind: uniform}}
          - {{name: lead, kind: scripted, arguments: {{lead: 0.3}}}}
    """)
    database = tmp_path / "killed.sqlite"
    command = [sys.executable, "-m", "marl.cli", "tournament", config, "--db", str(database), "--json",
               "--allow-code"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        try:
            stored = len(stored_rows(database))
        except sqlite3.Error:
            continue
        if stored >= 40:
            break
    assert process.poll() is None, "the tournament finished before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    interrupted = len(stored_rows(database))
    assert 0 < interrupted < 6 * 40
    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    payload = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert payload["matches_played"] == 6 * 40 - interrupted
    fresh = run_tournament(load_config(config, allow_code=True), tmp_path / "fresh.sqlite")
    assert stored_rows(database) == stored_rows(fresh.database)
    np.testing.assert_array_equal(np.array(payload["payoffs"]), fresh.tables.payoffs)


def test_running_a_finished_tournament_again_plays_nothing(tmp_path):
    config = parse_config(yaml.safe_load(textwrap.dedent(TAG)))
    first = run_tournament(config, tmp_path / "t.sqlite")
    again = run_tournament(config, tmp_path / "t.sqlite")
    assert first.matches_played == first.matches_total == 6 * 24
    assert again.matches_played == 0 and again.matches_total == first.matches_total
    np.testing.assert_array_equal(first.tables.payoffs, again.tables.payoffs)


# --------------------------------------------------------------------------------------
# Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_and_in_process_tables_are_identical_even_when_a_worker_dies(tmp_path, local_ray):
    marker = tmp_path / "died"
    text = textwrap.dedent(TAG) + (f'  - {{name: fragile, kind: callable, callable: "{PLAYERS}:dies_once", '
                                   f'arguments: {{marker: "{marker}"}}}}\n')
    config = parse_config(yaml.safe_load(text), allow_code=True)
    distributed = run_tournament(config, tmp_path / "ray.sqlite", backend="ray")
    assert marker.exists(), "no worker died, so the retry went untested"
    marker_text = marker.read_text()
    in_process = run_tournament(config, tmp_path / "local.sqlite")  # the marker exists: nobody dies here
    assert marker_text == marker.read_text()
    assert stored_rows(distributed.database) == stored_rows(in_process.database)
    np.testing.assert_array_equal(distributed.tables.payoffs, in_process.tables.payoffs)
    assert distributed.tables.forfeits.sum() == 0


def test_ray_plays_extensive_form_matches_like_the_local_backend(tmp_path, local_ray):
    config = parse_config(yaml.safe_load(textwrap.dedent("""\
        game: kuhn_poker
        evaluation: sampled
        matches_per_pair: 60
        batch_size: 20
        players:
          - {name: uniform, kind: uniform}
          - {name: bet, kind: pure, action: last}
          - {name: mcts, kind: mcts, simulations: 5}
    """)))
    distributed = run_tournament(config, tmp_path / "ray.sqlite", backend="ray")
    in_process = run_tournament(config, tmp_path / "local.sqlite")
    assert stored_rows(distributed.database) == stored_rows(in_process.database)


# --------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("text, message", [
    ("game: [unclosed", "not valid YAML"),
    ("players: []\n", "missing field game"),
    ("game: tag\nplayers: [{name: a, kind: uniform}]\n", "at least two players"),
    ("game: tag\nplayers:\n  - {name: a, kind: uniform}\n  - {name: b, kind: unifrom}\n",
     ":4: players[1].kind: unknown player kind 'unifrom' (did you mean 'uniform'?)"),
    ("game: tag\nplayers:\n  - {name: a, kind: uniform}\n  - {name: a, kind: uniform}\n",
     "players[1].name: 'a' is also the name of players[0]"),
    ("game: tag\nmatches_per_pair: many\nplayers:\n  - {name: a, kind: uniform}\n  - {name: b, kind: uniform}\n",
     ":2: matches_per_pair: expected a whole number"),
    ("game: tag\nmatchs_per_pair: 3\nplayers:\n  - {name: a, kind: uniform}\n  - {name: b, kind: uniform}\n",
     "unknown field (did you mean 'matches_per_pair'?)"),
    ("game: rock_paper_scissors\nplayers:\n  - {name: a, kind: mixed, strategy: [0.5, 0.6, 0]}\n  - {name: b, kind: uniform}\n",
     "players[0].strategy: probabilities must sum to 1"),
    ("game: tag\nplayers:\n  - {name: a, kind: checkpoint}\n  - {name: b, kind: uniform}\n",
     "a checkpoint player needs the field path"),
    ("game: tag\nplayers:\n  - {name: a, kind: mcts}\n  - {name: b, kind: uniform}\n",
     "this kind does not play Markov games"),
    ("game: rock_paper_scissors\nplayers:\n  - {name: a, kind: pure, action: lizard}\n  - {name: b, kind: uniform}\n",
     "has no action 'lizard'"),
    ("game: kuhn_poker\nevaluation: exact\nplayers:\n  - {name: a, kind: mcts}\n  - {name: b, kind: uniform}\n",
     "exact evaluation needs tabular players"),
    ("game: kuhn_poker(players=3)\nplayers:\n  - {name: a, kind: uniform}\n  - {name: b, kind: uniform}\n",
     "tournaments are between two seats"),
    ("game: spread\nplayers:\n  - {name: a, kind: uniform}\n  - {name: b, kind: uniform}\n",
     "a tournament needs a game of two teams"),
    ("game: tag\nplayers:\n  - {name: a, kind: callable, callable: nowhere:policy}\n  - {name: b, kind: uniform}\n",
     ":3: players[0].callable: player 'a' runs Python code named in the config ('nowhere:policy'); gamelab runs "
     "code from a config only with --allow-code"),
    ("game: tag\nplayers:\n  - {name: a, kind: strategy, path: missing.json}\n  - {name: b, kind: uniform}\n",
     "missing.json"),
])
def test_bad_configs_exit_2_naming_the_problem_and_write_nothing(tmp_path, capsys, text, message):
    config = write_config(tmp_path, text)
    database = tmp_path / "t.sqlite"
    assert main(["tournament", config, "--db", str(database)]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert error.count("\n") == 1
    assert not database.exists()


def test_a_callable_that_cannot_be_imported_exits_2_with_allow_code(tmp_path, capsys):
    config = write_config(tmp_path, "game: tag\nplayers:\n  - {name: a, kind: callable, callable: nowhere:policy}\n"
                                    "  - {name: b, kind: uniform}\n")
    assert main(["tournament", config, "--db", str(tmp_path / "t.sqlite"), "--allow-code"]) == 2
    error = capsys.readouterr().err
    assert "cannot import 'nowhere'" in error and "looked in the current folder" in error
    assert error.count("\n") == 1 and not (tmp_path / "t.sqlite").exists()


def test_a_checkpoint_of_another_game_is_refused(tmp_path, capsys):
    import scenarios
    from marl.maddpg import MADDPG, GameSpec, MADDPGConfig
    from marl.train import save_policy

    spread = scenarios.make("spread", num_envs=1)
    save_policy(tmp_path / "spread.pt", MADDPG(GameSpec.of(spread), MADDPGConfig(), "cpu"), "spread", {})
    config = write_config(tmp_path, """\
        game: tag
        players:
          - {name: net, kind: checkpoint, path: spread.pt}
          - {name: random, kind: uniform}
    """)
    assert main(["tournament", config, "--db", str(tmp_path / "t.sqlite")]) == 2
    error = capsys.readouterr().err
    assert "player 'net' (checkpoint)" in error and "spread" in error


def test_a_database_of_another_tournament_is_refused_and_left_untouched(tmp_path, capsys):
    first = write_config(tmp_path, TAG, "first.yaml")
    database = tmp_path / "t.sqlite"
    run_tournament(load_config(first), database)
    before = database.read_bytes()
    other = write_config(tmp_path, TAG.replace("matches_per_pair: 24", "matches_per_pair: 12"), "other.yaml")
    assert main(["tournament", other, "--db", str(database)]) == 2
    assert "holds another tournament" in capsys.readouterr().err
    assert database.read_bytes() == before
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    assert main(["tournament", first, "--db", str(junk)]) == 2
    assert "not a gamelab tournament database" in capsys.readouterr().err
    assert junk.read_bytes() == b"not a database at all" * 100


def test_ray_address_without_the_ray_backend_is_an_error(tmp_path, capsys):
    config = write_config(tmp_path, TAG)
    assert main(["tournament", config, "--ray-address", "auto"]) == 2
    assert "--backend ray" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# The command line


def test_cli_json_is_the_last_line_and_the_report_folder_has_its_files(tmp_path):
    config = write_config(tmp_path, TAG)
    report = tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, "-m", "marl.cli", "tournament", config, "--db", str(tmp_path / "t.sqlite"), "--report",
         str(report), "--json"], cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    payload = json.loads(completed.stdout.strip().splitlines()[-1])
    assert payload["players"] == ["random", "pursuit", "lead"]
    assert np.array(payload["payoffs"]).shape == (3, 3)
    for method in ("elo", "alpha_rank", "nash_averaging", "meta_nash", "exploitability"):
        assert set(payload["ratings"][method]) == {"random", "pursuit", "lead"}
    assert sorted(os.listdir(report)) == ["index.html", "payoffs.png", "ratings.png", "results.json"]
    html = (report / "index.html").read_text()
    assert "ratings.png" in html and "payoffs.png" in html and "pursuit" in html


def test_cli_prints_rating_and_payoff_tables(tmp_path, capsys):
    config = write_config(tmp_path, TAG)
    assert main(["tournament", config, "--db", str(tmp_path / "t.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "ratings (sampled, 144 matches)" in out and "mean payoff of the row player" in out


@pytest.mark.parametrize("name", ["rps_tournament.yaml", "kuhn_tournament.yaml", "tag_tournament.yaml"])
def test_example_configs_are_valid(name):
    config = load_config(REPO / "examples" / name)
    arena = build_arena(config)
    assert len(arena.units()) >= len(config.players)


def test_config_errors_name_the_file_and_line(tmp_path):
    path = write_config(tmp_path, "game: tag\nplayers:\n  - {name: a, kind: uniform}\n  - {name: b, kind: uniform, x: 1}\n")
    with pytest.raises(TournamentConfigError, match=r"tournament.yaml:4: players\[1\].x: unknown field"):
        load_config(path)


def test_a_psro_run_plays_as_its_mixture_and_beats_what_it_answered(tmp_path):
    """A `gamelab psro --out` run of Kuhn joins a tournament as its meta-strategy mixture: the
    double oracle's mixture is an equilibrium, so it loses nothing to the other players on
    average over both seats (Kuhn's value -1/18 for the first seat, Kuhn 1950), and its table
    entries equal the mixture evaluated on the tree."""
    import torch

    from solvers import psro
    from solvers.sequence_form import expected_values

    assert main(["psro", "kuhn_poker", "--out", str(tmp_path / "psro"), "--json"]) == 0
    config = write_config(tmp_path, """\
        game: kuhn_poker
        players:
          - {name: psro, kind: psro, path: psro/state.pt}
          - {name: uniform, kind: uniform}
          - {name: always-bet, kind: pure, action: last}
    """)
    result = run_tournament(load_config(config), tmp_path / "t.sqlite")
    payoffs = result.tables.payoffs
    assert payoffs[0, 1] > 0 and payoffs[0, 2] > 0
    assert payoffs[0, 0] == pytest.approx(0.0, abs=1e-9)  # self-play over both seats: -1/18 + 1/18
    from games.loading import load_game

    game = load_game("kuhn_poker")
    state = torch.load(tmp_path / "psro" / "state.pt", weights_only=True)
    run = psro.PSRO(game, "nash")
    run.load_state_dict(state)
    run.update_meta_strategies()
    assert float(expected_values(game, run.policy())[0]) == pytest.approx(-1 / 18, abs=1e-9)


def test_a_psro_run_of_another_game_is_refused(tmp_path, capsys):
    assert main(["psro", "rps", "--out", str(tmp_path / "psro")]) == 0
    config = write_config(tmp_path, """\
        game: kuhn_poker
        players:
          - {name: psro, kind: psro, path: psro/state.pt}
          - {name: uniform, kind: uniform}
    """)
    capsys.readouterr()
    assert main(["tournament", config, "--db", str(tmp_path / "t.sqlite")]) == 2
    error = capsys.readouterr().err
    assert "is a PSRO run of 'rps', not of 'kuhn_poker'" in error and error.count("\n") == 1


def test_the_ranking_follows_payoffs_where_elo_counts_wins(tmp_path):
    """Kuhn poker: always-bet wins most hands (Elo rates it first) but loses chips to CFR+; the table's
    order, Nash averaging then mean payoff, puts CFR+ first and agrees with the payoffs."""
    path = write_config(tmp_path, """
        name: kuhn-chips
        game: kuhn_poker
        evaluation: exact
        players:
          - {name: cfr+, kind: solver, solver: cfr+, iterations: 300}
          - {name: uniform, kind: uniform}
          - {name: always-bet, kind: pure, action: last}
          - {name: always-pass, kind: pure, action: first}
    """)
    payload = run_tournament(load_config(path), tmp_path / "k.sqlite").to_json()
    elo, order = payload["ratings"]["elo"], payload["ranking"]
    assert max(elo, key=elo.get) == "always-bet"  # the wins-based rating the ranking does not follow
    assert order[0] == "cfr+"
    names, payoffs = payload["players"], np.array(payload["payoffs"])
    best = names.index(order[0])
    assert (payoffs[best] >= -1e-3).all()  # the first player loses chips to nobody
    assert order.index("cfr+") < order.index("always-bet")
    assert set(payload["rating_labels"]) >= {"elo", "nash_averaging", "mean_payoff", "alpha_rank"}
    assert "wins" in payload["rating_labels"]["elo"]


def test_ratings_within_rounding_noise_of_zero_are_zero(tmp_path):
    from marl.tournaments.run import denoised

    payoffs = np.array([[0.0, 2.0], [-2.0, 0.0]])
    assert denoised([1e-10, -1.5e-9, 5e-9, 0.5], payoffs).tolist() == [0.0, 0.0, 5e-9, 0.5]  # scale 2
    path = write_config(tmp_path, """
        name: rps
        game: rps
        players:
          - {name: uniform, kind: uniform}
          - {name: nash, kind: solver}
          - {name: rock, kind: pure, action: 0}
    """)
    report = tmp_path / "report"
    assert main(["tournament", path, "--db", str(tmp_path / "r.sqlite"), "--report", str(report), "--json"]) == 0
    results = json.loads((report / "results.json").read_text())
    assert all(value == 0.0 for value in results["ratings"]["nash_averaging"].values())
    assert (report / "ratings.png").read_bytes()[:4] == b"\x89PNG"


KUHN_LEAGUE = """\
    name: league
    game: kuhn_poker
    evaluation: sampled
    matches_per_pair: 40
    batch_size: 20
    players:
"""
LEAGUE_PLAYERS = {
    "uniform": "  - {name: uniform, kind: uniform}\n",
    "always-bet": "  - {name: always-bet, kind: pure, action: last}\n",
    "cfr+": "  - {name: cfr+, kind: solver, solver: cfr+, iterations: 50}\n",
}


def league(tmp_path, names, file_name):
    text = textwrap.dedent(KUHN_LEAGUE) + "".join(LEAGUE_PLAYERS[name] for name in names)
    return load_config(write_config(tmp_path, text, file_name))


def test_players_join_and_leave_a_played_tournament_keeping_its_matches(tmp_path, capsys):
    database = tmp_path / "league.sqlite"
    first = run_tournament(league(tmp_path, ["uniform", "always-bet"], "a.yaml"), database)
    assert first.matches_played == 3 * 40
    grown = run_tournament(league(tmp_path, ["uniform", "always-bet", "cfr+"], "b.yaml"), database)
    assert grown.matches_played == 3 * 40  # cfr+ against each, and its self-play; nothing replayed
    together = run_tournament(league(tmp_path, ["uniform", "always-bet", "cfr+"], "c.yaml"), tmp_path / "fresh.sqlite")
    assert np.array_equal(grown.tables.payoffs, together.tables.payoffs)  # joining later plays the same matches
    smaller = run_tournament(league(tmp_path, ["uniform", "cfr+"], "d.yaml"), database)
    assert smaller.matches_played == 0 and smaller.names == ["uniform", "cfr+"]
    assert np.array_equal(smaller.tables.payoffs, grown.tables.payoffs[np.ix_([0, 2], [0, 2])])
    before = database.read_bytes()
    changed = write_config(tmp_path, textwrap.dedent(KUHN_LEAGUE) + LEAGUE_PLAYERS["uniform"]
                           + LEAGUE_PLAYERS["cfr+"].replace("50", "60"), "e.yaml")
    assert main(["tournament", changed, "--db", str(database)]) == 2
    assert "player 'cfr+' changed since its 120 matches were stored" in capsys.readouterr().err
    assert database.read_bytes() == before
