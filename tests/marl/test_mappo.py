"""MAPPO (marl/mappo.py, marl/mappo_train.py) and `gamelab train mappo` / `gamelab evaluate`:
GAE against the formula worked by hand, batched against one copy at a time, the clipped objective,
learning on navigation, resume equal to an uninterrupted run, and the command line's contract."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

import scenarios
from marl import checkpoint
from marl.cli import main
from marl.mappo import MAPPO, MAPPOConfig, MAPPOPolicy, PolicySpec, gae, group_advantages, standard_gamma
from marl.mappo_train import load_policy, train


def test_the_gamma_sampler_draws_gamma_variates():
    """Marsaglia and Tsang's sampler (which the Beta policy draws with, for a seeded generator) against
    scipy's Gamma(k, 1) distribution function by a Kolmogorov-Smirnov test, at k = 1 (the Beta policy's
    smallest concentration) and above."""
    from scipy import stats

    generator = torch.Generator().manual_seed(0)
    for shape in (1.0, 1.7, 6.0, 40.0):
        draws = standard_gamma(torch.full((20_000,), shape, dtype=torch.float64), generator)
        assert stats.kstest(draws.numpy(), stats.gamma(shape).cdf).pvalue > 1e-3, shape


def test_a_beta_gain_policy_draws_from_its_beta_and_plays_its_mean():
    """``cbf_gain = "beta"``: two outputs per action, concentrations ``1 + softplus``; draws follow that
    Beta (scipy's distribution function, per agent), stay inside (0, 1), have finite log-densities, and
    repeat for a seed; the played action is the Beta's mean; the Gaussian's log std is not trained."""
    from scipy import stats

    config = MAPPOConfig(model="gnn", filter="online-cbf", cbf_gain="beta", cbf_alpha=10.0)
    game = scenarios.make("navigation", num_envs=2, seed=0, num_agents=3)
    learner = MAPPO(PolicySpec.of(game, config), config)
    assert learner.model.actor_head[-1].out_features == 2
    assert all(parameter is not learner.log_std for group in learner.optimizer.param_groups
               for parameter in group["params"])
    outputs = torch.tensor([[0.5, -1.0], [3.0, 0.0], [-4.0, 2.0]]).expand(20_000, 3, 2)  # (S, N, 2A)
    draws = learner.sample(outputs, torch.Generator().manual_seed(1))
    assert draws.shape == (20_000, 3, 1) and 0.0 < float(draws.min()) and float(draws.max()) < 1.0
    torch.testing.assert_close(draws, learner.sample(outputs, torch.Generator().manual_seed(1)))
    assert torch.isfinite(learner.distribution(outputs).log_prob(draws)).all()
    a, b = learner.concentrations(outputs[0])
    for agent in range(3):
        cdf = stats.beta(float(a[agent, 0]), float(b[agent, 0])).cdf
        assert stats.kstest(draws[:, agent, 0].numpy(), cdf).pvalue > 1e-3, agent
    torch.testing.assert_close(learner.greedy(outputs[:1])[0], a / (a + b))


def test_gae_equals_the_formula_worked_by_hand():
    """rewards 1, 1, 1, values 0, gamma 0.5, lambda 1: A = 1.75, 1.5, 1 without an end; with the
    episode ending at step 1, A_0 = 1 + 0.5 = 1.5 and nothing flows back from step 2."""
    rewards = torch.ones(3, 1, 1)
    values = torch.zeros(3, 1, 1)
    running = torch.zeros(3, 1, dtype=torch.bool)
    torch.testing.assert_close(gae(rewards, values, torch.zeros(1, 1), running, 0.5, 1.0)[:, 0, 0],
                               torch.tensor([1.75, 1.5, 1.0]))
    ended = running.clone()
    ended[1] = True
    torch.testing.assert_close(gae(rewards, values, torch.zeros(1, 1), ended, 0.5, 1.0)[:, 0, 0],
                               torch.tensor([1.5, 1.0, 1.0]))
    # lambda = 0 is the one-step TD error r + gamma V(s') - V(s).
    values = torch.tensor([0.2, -0.1, 0.4])[:, None, None]
    last = torch.tensor([[0.3]])
    expected = torch.tensor([1 + 0.5 * -0.1 - 0.2, 1 + 0.5 * 0.4 + 0.1, 1 + 0.5 * 0.3 - 0.4])
    torch.testing.assert_close(gae(rewards, values, last, running, 0.5, 0.0)[:, 0, 0], expected)


def test_gae_of_a_batch_equals_each_copy_alone():
    generator = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(7, 5, 3, generator=generator), torch.randn(7, 5, 3, generator=generator)
    last, done = torch.randn(5, 3, generator=generator), torch.rand(7, 5, generator=generator) < 0.2
    together = gae(rewards, values, last, done, 0.99, 0.95)
    for copy in range(5):
        alone = gae(rewards[:, copy:copy + 1], values[:, copy:copy + 1], last[copy:copy + 1], done[:, copy:copy + 1],
                    0.99, 0.95)
        torch.testing.assert_close(alone[:, 0], together[:, copy])


def test_group_advantages_subtract_the_mean_of_the_other_copies_of_the_group():
    """Returns 1, 2, 6 in a group of three: baselines (2 + 6) / 2 = 4, (1 + 6) / 2 = 3.5 and 1.5."""
    returns = torch.tensor([1.0, 2.0, 6.0, 5.0, 5.0, -1.0])[None, :, None]  # (T = 1, B = 6, N = 1): two groups
    torch.testing.assert_close(group_advantages(returns, 3)[0, :, 0],
                               torch.tensor([1 - 4.0, 2 - 3.5, 6 - 1.5, 5 - 2.0, 5 - 2.0, -1 - 5.0]))


@given(st.integers(2, 5), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**31 - 1))
@settings(max_examples=30, deadline=None)
def test_group_advantages_are_each_agent_s_own_leave_one_out_and_sum_to_zero_in_a_group(size, groups, count, seed):
    generator = torch.Generator().manual_seed(seed)
    returns = torch.randn(3, size * groups, count, generator=generator, dtype=torch.float64)
    advantages = group_advantages(returns, size)
    torch.testing.assert_close(advantages.view(3, groups, size, count).sum(2), torch.zeros(3, groups, count,
                                                                                          dtype=torch.float64))
    for copy in range(size * groups):  # one copy at a time, against the others of its group
        first = copy - copy % size
        others = [other for other in range(first, first + size) if other != copy]
        torch.testing.assert_close(advantages[:, copy], returns[:, copy] - returns[:, others].mean(1))


def test_copies_of_a_group_start_alike_and_draw_their_own_actions():
    settings = {"num_agents": 3, "reward": "arrival", "terminate_on_goals": False}
    config = MAPPOConfig(num_envs=6, rollout_length=5, epochs=1, env_steps=30, log_every=10**9, group_size=3)
    game = scenarios.make("navigation", num_envs=6, seed=0, **settings)
    seen = []
    original = game.step

    def step(actions):
        seen.append(game.world.pos.clone())  # (E, 2, B) before each step
        return original(actions)

    game.step = step
    train(game, config)
    start, later = seen[0], seen[-1]
    for group in (slice(0, 3), slice(3, 6)):
        assert torch.equal(start[..., group], start[..., group][..., :1].expand_as(start[..., group]))
    assert not torch.equal(start[..., 0], start[..., 3])  # groups start apart
    assert not torch.equal(later[:3, :, 0], later[:3, :, 1])  # the copies of a group move on their own draws


def test_the_policy_plays_every_copy_as_it_plays_one_alone():
    config = MAPPOConfig(model="gnn")
    game = scenarios.make("navigation", num_envs=4, seed=0, preset="informarl")
    policy = MAPPOPolicy(MAPPO(PolicySpec.of(game, config), config))
    observations, _ = game.reset(seed=0)
    together = policy(game, observations)
    for copy in range(4):
        single = scenarios.make("navigation", num_envs=1, seed=0, preset="informarl")
        single.reset(seed=0)
        single.world.position = game.world.position[copy:copy + 1].clone()
        alone = policy(single, {agent: value[copy:copy + 1] for agent, value in observations.items()})
        for agent in game.possible_agents:
            assert int(alone[agent][0]) == int(together[agent][copy])


def test_a_sampling_policy_draws_its_moves_with_the_policy_s_probabilities():
    # Every copy starts from one state, so each agent's 4,000 draws share one distribution: the
    # frequencies must match softmax(logits) (the largest deviation of 5 x 3 frequencies from 4,000
    # draws is about 0.02), and a seed gives the same draws again.
    config = MAPPOConfig(model="gnn")
    game = scenarios.make("navigation", num_envs=4000, seed=0, preset="informarl")
    learner = MAPPO(PolicySpec.of(game, config), config)
    head = [layer for layer in learner.model.actor_head.modules() if isinstance(layer, torch.nn.Linear)][-1]
    with torch.no_grad():  # an untrained head is near uniform (gain 0.01): skew it, the state still counting
        head.weight.mul_(100.0)
        head.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5, -0.5]))
    observations, _ = game.reset(seed=0)
    game.world.position = game.world.position[:1].expand_as(game.world.position).clone()  # the GNN reads the world
    logits = learner.model.act(learner.model.observe(game, observations))  # (B, N, 5)
    expected = torch.softmax(logits[0], -1)
    assert torch.allclose(logits, logits[:1].expand_as(logits), atol=1e-5)
    assert (expected.max(-1).values - expected.min(-1).values > 0.2).all()
    drawn = MAPPOPolicy(learner, sample=True, seed=3)(game, observations)
    for index, agent in enumerate(game.possible_agents):
        frequency = torch.bincount(drawn[agent], minlength=5).double() / 4000
        assert (frequency - expected[index].double()).abs().max() < 0.035, (agent, frequency, expected[index])
    again = MAPPOPolicy(learner, sample=True, seed=3)(game, observations)
    other = MAPPOPolicy(learner, sample=True, seed=4)(game, observations)
    greedy = MAPPOPolicy(learner)(game, observations)
    for index, agent in enumerate(game.possible_agents):
        assert torch.equal(drawn[agent], again[agent])
        assert torch.equal(greedy[agent], logits[:, index].argmax(-1))
    assert any(not torch.equal(drawn[agent], other[agent]) for agent in game.possible_agents)


def test_mappo_learns_to_reach_goals():
    """One agent, no obstacles, InforMARL's reward: uniform random play returns about -90 per episode;
    after 96,000 copy-steps of MAPPO the agent reaches its goal in most episodes."""
    from scenarios.navigation import episode_metrics

    settings = {"preset": "informarl", "num_agents": 1, "num_obstacles": 0}
    config = MAPPOConfig(num_envs=64, env_steps=96_000, log_every=10**9)
    result = train(scenarios.make("navigation", num_envs=64, seed=0, **settings), config)
    measured = episode_metrics(MAPPOPolicy(result.learner), scenarios.make("navigation", num_envs=100, seed=3,
                                                                           **settings), 1)
    assert measured["finish_rate"] > 0.8
    assert measured["mean_episode_return"] > 0.0


@pytest.mark.parametrize("group_size", [1, 4])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, group_size):
    settings = {"preset": "informarl", "num_obstacles": 1}  # InforMARL's episodes all last 25 steps
    config = MAPPOConfig(model="gnn", num_envs=8, rollout_length=10, epochs=2, env_steps=240, log_every=10**9,
                         group_size=group_size)
    straight = train(scenarios.make("navigation", num_envs=8, seed=0, **settings), config, game_name="navigation",
                     game_settings=settings).learner
    first = MAPPOConfig.from_dict({**config.__dict__, "env_steps": 160})
    train(scenarios.make("navigation", num_envs=8, seed=0, **settings), first, run_dir=tmp_path,
          game_name="navigation", game_settings=settings)
    resumed = train(scenarios.make("navigation", num_envs=8, seed=0, **settings), config, run_dir=tmp_path,
                    game_name="navigation", game_settings=settings, resume=True).learner
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.updates == resumed.updates == 3


def _train_cli(folder, *extra):
    return main(["train", "mappo", "--scenario", "navigation", "--env-steps", "320", "--num-envs", "16",
                 "--param", "rollout_length=10", "--param", "epochs=1", "--param", "eval_episodes=4", "--no-gif",
                 "--out", str(folder), "--json", *extra])


def test_train_mappo_gnn_then_evaluate_it_with_more_agents(tmp_path, capsys):
    folder = tmp_path / "run"
    assert _train_cli(folder, "--model", "gnn", "--set", "preset=informarl") == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("mean_episode_return", "time_to_goal", "collisions_per_agent", "success_rate", "safe_rate",
                "finish_rate", "agent_success_rate", "episodes", "env_steps", "checkpoint", "policy"):
        assert key in payload
    assert payload["algorithm"] == "mappo" and payload["model"] == "gnn" and payload["env_steps"] == 320
    assert {"checkpoint.pt", "policy.pt", "result.json"} <= set(os.listdir(folder))
    assert main(["evaluate", str(folder / "policy.pt"), "--set", "num_agents=9", "--episodes", "3", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["settings"] == {"preset": "informarl", "num_agents": 9} and evaluated["episodes"] == 3
    assert 0.0 <= evaluated["safe_rate"] <= 1.0
    # Its discrete moves play through the fixed-gain filter too.
    assert main(["evaluate", str(folder / "policy.pt"), "--filter", "cbf", "--param", "alpha=10", "--episodes", "3",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["filter"] == "cbf"
    # --sample draws the moves from the policy, the same ones again for the same --seed.
    sampled = []
    for _ in range(2):
        assert main(["evaluate", str(folder / "policy.pt"), "--sample", "--seed", "5", "--episodes", "6", "--json"]) == 0
        sampled.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert sampled[0]["mean_episode_return"] == sampled[1]["mean_episode_return"]
    assert sampled[0]["sample"] is True and evaluated["sample"] is False


@pytest.mark.parametrize("gain", ["lognormal", "beta"])
def test_online_cbf_checkpoints_play_through_their_filter(tmp_path, capsys, gain):
    folder = tmp_path / "run"
    assert _train_cli(folder, "--model", "gnn", "--filter", "online-cbf", "--set", "num_agents=4", "--param",
                      f"cbf_gain={gain}") == 0
    capsys.readouterr()
    assert main(["evaluate", str(folder / "policy.pt"), "--set", "num_agents=12", "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["filter"] == "online-cbf"
    assert load_policy(checkpoint.load(str(folder / "policy.pt")), "policy.pt").controller.gain == gain
    assert main(["evaluate", str(folder / "policy.pt"), "--filter", "cbf"]) == 2
    assert "plays only through its filter" in capsys.readouterr().err


def test_scripted_policy_with_a_fixed_gain_filter(capsys):
    assert main(["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "cbf", "--param",
                 "alpha=10", "--episodes", "4", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["filter"] == "cbf" and payload["policy"] == "scripted"


def test_bad_input_exits_2_and_leaves_the_run_folder_as_it_was(tmp_path, capsys):
    folder = tmp_path / "run"
    assert _train_cli(folder, "--set", "preset=informarl", "--set", "num_agents=2") == 0
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder) if (folder / name).is_file()}
    capsys.readouterr()
    cases = [
        (["train", "mappo", "--scenario", "navigation", "--model", "transformer", "--out", str(folder)], "invalid choice"),
        (["train", "mappo", "--scenario", "spread", "--model", "gnn", "--out", str(tmp_path / "other")],
         "need a world with graph observations"),
        (["train", "mappo", "--scenario", "navigation", "--out", str(folder)], "already holds a run"),
        (["train", "mappo", "--scenario", "navigation", "--model", "gnn", "--filter", "online-cbf", "--param",
          "cbf_gain=gaussian", "--out", str(tmp_path / "other")], "cbf_gain must be one of lognormal, beta"),
        (["train", "mappo", "--scenario", "navigation", "--param", "group_size=3", "--num-envs", "16", "--out",
          str(tmp_path / "other")], "num_envs (16) must be a multiple of group_size (3)"),
        (["train", "mappo", "--scenario", "navigation", "--param", "group_size=4", "--num-envs", "16", "--out",
          str(tmp_path / "other")], "set terminate_on_goals=false"),
        (["evaluate", str(folder / "policy.pt"), "--set", "num_agents=5"], "runs with the 2 agents"),
        (["evaluate", str(folder / "policy.pt"), "--set", "max_neighbours=2"], "another observation layout"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "cbf", "--param",
          "neighbours=0"], "neighbours (k) must be an integer"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "cbf", "--param",
          "margin=-0.1"], "margin must be >= 0"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "cbf", "--param",
          "share=2"], "share must be in (0, 1]"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "cbf", "--param",
          "barrier=wall"], "barrier must be one of braking, hocbf, lookahead"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "cbf", "--param",
          "pairs=all"], "pairs must be one of shared, yield, parked, obstacles, parked_only"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "cbf", "--param", "colour=1"],
         "--param colour: the cbf filter's settings are alpha, margin, neighbours, barrier, detour, share and pairs"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--filter", "sieve"], "invalid choice"),
        (["evaluate", "--policy", "scripted", "--scenario", "navigation", "--sample"],
         "--sample: draws from a trained MAPPO policy; --policy scripted has no distribution"),
    ]
    for args, message in cases:
        assert _exit_code(args) == 2, args
        captured = capsys.readouterr().err
        assert message in captured, (args, captured)
        assert len(captured.strip().splitlines()) == 1, captured
    assert not (tmp_path / "other").exists()
    assert {name: (folder / name).read_bytes() for name in before} == before


def _exit_code(args) -> int:
    """``main``'s exit code, also where argparse exits (a mistake on the command line)."""
    try:
        return main(args)
    except SystemExit as stop:
        return int(stop.code)


def test_checkpoints_from_before_the_braking_barrier_keep_the_filter_they_were_trained_with():
    from marl.mappo import MAPPO, MAPPOConfig, PolicySpec
    from marl.mappo_train import load_policy, policy_payload

    game = scenarios.make("navigation", num_envs=2, seed=0, num_agents=3)
    config = MAPPOConfig(model="gnn", filter="online-cbf")
    saved = policy_payload(MAPPO(PolicySpec.of(game, config), config, "cpu"), "navigation", {"num_agents": 3})
    current = load_policy(saved, "run/policy.pt", game).controller.cbf
    assert (current.barrier, current.detour) == ("braking", 90.0)
    for key in ("cbf_barrier", "cbf_detour"):
        del saved["config"][key]
    older = load_policy(saved, "run/policy.pt", game).controller.cbf
    assert (older.barrier, older.detour) == ("hocbf", 0.0)
