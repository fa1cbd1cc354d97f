"""PSRO on two-team Markov games: members, mixtures, the oracle's game, entries, resuming, the CLI."""

import io
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.policy import team_returns
from marl.cli import main
from marl.envs import make_game
from marl.maddpg import MADDPGConfig
from marl.population import PopulationPolicy, UniformMember, VersusPopulation, sigma_draws, teams_of
from marl.psro_oracle import MarkovPopulations, TeamMixture
from solvers.psro import PSRO

TINY = MADDPGConfig(env_steps=1_024, num_envs=16, batch_size=64, hidden_sizes=(16, 16), learning_starts=256,
                    transitions_per_update=32, buffer_size=4_096, log_every=512, checkpoint_minutes=0)


def tiny_space(**changes) -> MarkovPopulations:
    return MarkovPopulations("tag", {"max_cycles": 10}, **{"oracle": TINY, "sims_per_entry": 6, "seed": 3, **changes})


def play(policy, game, steps=5):
    """The actions ``policy`` takes over ``steps`` steps of ``game`` (reset with seed 0), stacked per agent."""
    observations, _ = game.reset(seed=0)
    taken = []
    for _ in range(steps):
        actions = policy(game, observations)
        taken.append({agent: value.clone() for agent, value in actions.items()})
        observations, *_ = game.step({**UniformMember(game.possible_agents, 99)(game, observations), **actions})
    return {agent: torch.stack([step[agent] for step in taken]) for agent in taken[0]}


def test_a_random_member_acts_the_same_in_a_batch_and_alone():
    import scenarios

    batch = scenarios.make("tag", num_envs=6, seed=5)
    agents = teams_of(batch)[0]
    together = play(UniformMember(agents, 11), batch)
    for copy in (0, 4):
        alone = play(UniformMember(agents, 11), scenarios.make("tag", num_envs=1, seed=5, first_copy=copy))
        for agent in agents:
            assert torch.equal(together[agent][:, copy], alone[agent][:, 0])


def test_random_member_actions_are_uniform_over_each_agents_actions():
    game = make_game("tag", 4_000, seed=1)
    observations, _ = game.reset(seed=1)
    actions = UniformMember(game.possible_agents, 7)(game, observations)
    counts = torch.bincount(actions["agent_0"], minlength=5).double() / 4_000
    assert torch.allclose(counts, torch.full((5,), 0.2, dtype=torch.float64), atol=0.03)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=5), st.integers(0, 1_000))
def test_sigma_draws_never_pick_a_member_of_zero_weight(raw, seed):
    weights = torch.tensor(raw, dtype=torch.float64)
    if float(weights.sum()) == 0:
        weights[0] = 1.0
    game = make_game("tag", 64, seed=seed)
    game.reset(seed=seed)
    chosen = sigma_draws([weights, None], seed)(game)
    assert bool((weights[chosen[0]] > 0).all())


def test_sigma_draws_follow_sigma_and_change_between_episodes_only():
    weights = torch.tensor([0.5, 0.0, 0.3, 0.2], dtype=torch.float64)
    game = make_game("tag", 20_000, seed=0)
    game.reset(seed=0)
    choose = sigma_draws([weights, weights], 4)
    first = choose(game)
    frequencies = torch.bincount(first[0], minlength=4).double() / 20_000
    assert torch.allclose(frequencies, weights, atol=0.015)
    assert not torch.equal(first[0], first[1])  # the teams draw independently
    game.step(UniformMember(game.possible_agents, 1)(game, game.reset(seed=0)[0]))
    assert torch.equal(choose(game), first)  # the same episode keeps its members
    game.reset()
    assert not torch.equal(choose(game), first)


def test_a_population_policy_plays_each_copys_member():
    game = make_game("tag", 6, seed=2)
    teams = teams_of(game)
    members = [[UniformMember(teams[0], 1), UniformMember(teams[0], 2)], [UniformMember(teams[1], 3)]]
    assignment = torch.tensor([[0, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0]])
    together = play(PopulationPolicy(teams, members, lambda _game: assignment), game)
    for index, member in enumerate(members[0]):
        own = play(member, make_game("tag", 6, seed=2))
        rows = assignment[0] == index
        for agent in teams[0]:
            assert torch.equal(together[agent][:, rows], own[agent][:, rows])


def test_the_oracles_game_is_the_full_game_with_the_opponents_acting():
    full, inner = make_game("tag", 5, seed=4), make_game("tag", 5, seed=4)
    teams = teams_of(full)
    opponents = PopulationPolicy(teams, [None, [UniformMember(teams[1], 8)]], lambda game: torch.zeros(2, 5).long())
    versus = VersusPopulation(inner, teams[0], opponents)
    mine = UniformMember(teams[0], 9)
    observations, _ = versus.reset(seed=4)
    full_observations, _ = full.reset(seed=4)
    assert versus.possible_agents == teams[0]
    for _ in range(30):  # past the end of an episode (tag's default 25 steps): resets agree too
        ours = mine(inner, observations)
        observations, rewards, terminated, truncated, infos = versus.step(ours)
        joint = {**UniformMember(teams[1], 8)(full, full_observations), **mine(full, full_observations)}
        full_observations, full_rewards, *_ = full.step(joint)
        assert set(observations) == set(teams[0])
        for agent in teams[0]:
            assert torch.equal(observations[agent], full_observations[agent])
            assert torch.equal(rewards[agent], full_rewards[agent])


def test_meta_game_entries_in_one_batch_equal_each_pair_played_alone():
    space = tiny_space()
    first = [space.uniform(0), UniformMember(space.teams[0], 40)]
    second = [space.uniform(1)]
    block = space.block([first, second])
    assert block.shape == (2, 2, 1)
    for row, member in enumerate(first):
        game = make_game("tag", 6, seed=space.seed, settings=space.settings)
        policy = PopulationPolicy(space.teams, [[member], second], lambda g: torch.zeros(2, g.num_envs).long())
        returns = team_returns(policy, game, space.seed + 1, space.teams, options={"streams": torch.arange(6)})
        assert torch.allclose(block[:, row, 0], returns.mean(1).double())


def test_a_warm_started_best_response_starts_from_the_teams_last_member():
    space = tiny_space(oracle=TINY.__class__(**{**TINY.__dict__, "env_steps": 64, "learning_starts": 10_000}),
                       warm_start=True)
    run = PSRO(space.probe, "uniform", policy_space=space)
    run.step()
    first = run.populations[0][-1].policy.learner.actors.state_dict()
    run.step()  # no update happens within 64 transitions: the new member is the warm start
    second = run.populations[0][-1].policy.learner.actors.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_a_resumed_markov_run_equals_an_uninterrupted_one():
    uninterrupted = PSRO(tiny_space().probe, "nash", policy_space=tiny_space())
    for _ in range(2):
        uninterrupted.step()
    stopped = PSRO(tiny_space().probe, "nash", policy_space=tiny_space())
    stopped.step()
    buffer = io.BytesIO()
    torch.save(stopped.state_dict(), buffer)
    buffer.seek(0)
    resumed = PSRO(tiny_space().probe, "nash", policy_space=tiny_space())
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.step()
    assert torch.equal(resumed.meta_game, uninterrupted.meta_game)
    assert resumed.history[-1].nash_conv == uninterrupted.history[-1].nash_conv
    assert resumed.meta_game.shape == (2, 3, 3)


def test_markov_best_responses_on_ray_equal_those_in_process():
    pytest.importorskip("ray")
    from solvers.psro import RayOracles

    local = PSRO(tiny_space().probe, "nash", policy_space=tiny_space())
    with RayOracles(num_cpus=2) as backend:
        remote = PSRO(tiny_space().probe, "nash", policy_space=tiny_space(), oracle_backend=backend)
        for run in (local, remote):
            run.step()
            run.step()
    assert torch.equal(remote.meta_game, local.meta_game)


def test_the_estimated_nash_conv_is_what_the_best_responses_gain_over_sigma():
    run = PSRO(tiny_space().probe, "nash", policy_space=tiny_space())
    record = run.step()
    table = run.meta_game  # (2, 2, 2): member 0 is random play, member 1 the best response
    gains = [max(0.0, float(table[0, 1, 0] - table[0, 0, 0])), max(0.0, float(table[1, 0, 1] - table[1, 0, 0]))]
    assert record.nash_conv == pytest.approx(sum(gains), abs=1e-12)


def test_a_mixture_of_one_member_is_that_member():
    space = tiny_space()
    member = UniformMember(space.teams[0], 5)
    profile = space.profile([TeamMixture((member,), torch.ones(1)), TeamMixture((space.uniform(1),), torch.ones(1))])
    game = make_game("tag", 4, seed=0, settings=space.settings)
    together, alone = play(profile, game), play(member, make_game("tag", 4, seed=0, settings=space.settings))
    assert all(torch.equal(together[agent], alone[agent]) for agent in space.teams[0])


# --------------------------------------------------------------------------------------
# The command line and tournaments

FAST = ["--oracle-steps", "1024", "--num-envs", "16", "--sims-per-entry", "4", "--set", "max_cycles=10",
        "--param", "batch_size=64", "--param", "learning_starts=256", "--param", "hidden_sizes=[16,16]",
        "--param", "buffer_size=4096"]


def test_cli_runs_and_resumes_a_markov_run_and_a_tournament_plays_it(tmp_path, capsys):
    folder = tmp_path / "run"
    assert main(["psro", "tag", "--iterations", "1", "--out", str(folder), "--json", *FAST]) == 0
    assert main(["psro", "tag", "--iterations", "2", "--out", str(folder), "--resume", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["oracle"] == "maddpg" and payload["measure"] == "estimated_nash_conv"
    assert payload["population_sizes"] == [3, 3] and len(payload["history"]) == 2
    names = sorted(path.name for path in (folder / "population").iterdir())
    assert names == ["team0_000.json", "team0_001.pt", "team0_002.pt", "team1_000.json", "team1_001.pt",
                     "team1_002.pt"]
    config = folder / "tournament.yaml"
    config.write_text("name: t\ngame: tag\nsettings: {max_cycles: 10}\nmatches_per_pair: 8\nplayers:\n"
                      "  - {name: mixture, kind: psro, path: state.pt}\n"
                      "  - {name: first, kind: psro, path: state.pt, member: 0}\n"
                      "  - {name: last, kind: psro, path: state.pt, member: 2}\n")
    assert main(["tournament", str(config), "--db", str(tmp_path / "t.sqlite"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["matches"] == [[8] * 3] * 3
    assert result["forfeits"] == {"mixture": 0, "first": 0, "last": 0}


@pytest.mark.parametrize("arguments, message", [
    (["psro", "kuhn_poker", "--oracle", "maddpg"], "kuhn_poker is not a Markov game"),
    (["psro", "tag", "--oracle", "best-response"], "use --oracle maddpg"),
    (["psro", "kuhn_poker", "--sims-per-entry", "5"], "--sims-per-entry applies to --oracle maddpg"),
    (["psro", "tag", "--meta-solver", "cce"], "needs exact best responses to correlated opponents"),
    (["psro", "tag", "--variant", "xdo"], "XDO restricts the actions of a game tree"),
    (["psro", "tag", "--backend", "ray", "--device", "cuda"], "trains the best responses in Ray's CPU workers"),
    (["psro", "tag", "--param", "env_steps=5"], "set it with --oracle-steps"),
    (["psro", "tag", "--param", "no_such=1"], "MADDPG has no setting 'no_such'"),
    (["psro", "tag", "--set", "no_such=1"], "no_such"),
])
def test_cli_refuses_what_does_not_fit_a_markov_run(arguments, message, capsys):
    assert main(arguments) == 2
    assert message in capsys.readouterr().err


def test_cli_resume_refuses_other_settings_and_other_games_leaving_the_folder_alone(tmp_path, capsys):
    folder = tmp_path / "run"
    assert main(["psro", "tag", "--iterations", "1", "--out", str(folder), *FAST]) == 0
    before = {path.name: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    assert main(["psro", "tag", "--iterations", "2", "--out", str(folder), "--resume", "--sims-per-entry", "9"]) == 2
    assert "keeps its settings" in capsys.readouterr().err
    assert main(["psro", "adversary", "--iterations", "2", "--out", str(folder), "--resume"]) == 2
    assert "is a run of 'tag'" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before
