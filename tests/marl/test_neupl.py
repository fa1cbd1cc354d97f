"""NeuPL and Simplex-NeuPL on game trees: known populations, OpenSpiel's scores, gradients, resuming."""

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.adapters.openspiel import extensive_form_from_openspiel, information_state_tensors
from games.extensive_form import tree_from_normal_form
from games.loading import load_game
from marl.neupl import (
    GRAPHS,
    LOGIT_PENALTY_PER_PAYOFF,
    NeuPL,
    NeuPLConfig,
    NeuPLError,
    SymmetricTree,
    interaction_graph,
    run,
    symmetric_decisions,
    unique_rows,
)

KUHN = extensive_form_from_openspiel("kuhn_poker")
KUHN_OBSERVATIONS = information_state_tensors(KUHN, "kuhn_poker")


def random_strategies(game, count, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(count, game.num_infosets, game.max_actions, generator=generator, dtype=torch.float64)
    return torch.softmax(logits.masked_fill(~game.legal_mask, -torch.inf), -1)


def kuhn_run(**settings):
    return NeuPL(KUHN, NeuPLConfig(**{"population": 4, "steps_per_iteration": 20, **settings}),
                 observations=KUHN_OBSERVATIONS)


# ----------------------------------------------------------------------------- graphs


def test_static_graphs_have_their_shapes():
    payoffs = torch.zeros(4, 4, dtype=torch.float64)
    assert torch.equal(interaction_graph("cycle", payoffs), torch.eye(4, dtype=torch.float64).roll(1, 1))
    fictitious = interaction_graph("fictitious-play", payoffs)
    assert float(fictitious[0].sum()) == 0 and torch.allclose(fictitious[3], torch.tensor([1 / 3] * 3 + [0.0],
                                                                                          dtype=torch.float64))
    assert len(unique_rows(interaction_graph("self-play", payoffs))) == 1
    assert len(unique_rows(fictitious)) == 4


def test_psro_n_rows_are_nash_equilibria_of_the_growing_meta_game():
    # Rock, paper, scissors, rock again: policy 3's row is the uniform Nash of the first three.
    rps = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=torch.float64)
    order = [0, 1, 2, 0]
    payoffs = rps[order][:, order]
    graph = interaction_graph("psro-n", payoffs)
    assert torch.equal(graph.triu(), torch.zeros(4, 4, dtype=torch.float64))
    assert float(graph[0].sum()) == 0 and graph[1, 0] == 1
    assert torch.allclose(graph[2, :2], torch.tensor([0.0, 1.0], dtype=torch.float64))  # paper beats rock
    assert torch.allclose(graph[3, :3], torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-8)


# ----------------------------------------------------------------------------- known populations


def test_rock_paper_scissors_psro_n_finds_the_three_pure_strategies():
    normal_form = load_game("rock_paper_scissors")
    game = tree_from_normal_form(normal_form)
    neupl = run(NeuPL(game, NeuPLConfig(population=4, steps_per_iteration=50, learning_rate=3e-3),
                      decisions=symmetric_decisions(game, normal_form)), iterations=20)
    policies = neupl.strategies()  # (4, 2 seats, 3 actions)
    for action in range(3):
        pure = torch.nn.functional.one_hot(torch.tensor(action), 3).to(policies.dtype)
        assert min(float((policy - pure).abs().max()) for policy in policies) < 0.05, action
    assert neupl.nash_conv() <= 1e-2
    assert neupl.history[-1].nash_conv == pytest.approx(neupl.nash_conv())


def test_kuhn_scores_equal_openspiels_policy_values_and_nash_conv():
    import pyspiel
    from open_spiel.python.algorithms import expected_game_score, exploitability, policy_aggregator

    from games.adapters.openspiel import strategy_to_tabular_policy

    neupl = run(kuhn_run(), iterations=2)
    spiel = pyspiel.load_game("kuhn_poker")
    policies = [strategy_to_tabular_policy(KUHN, strategy, spiel) for strategy in neupl.strategies()]
    root = spiel.new_initial_state()
    for i in range(4):
        for j in range(4):
            first = expected_game_score.policy_value(root, [policies[i], policies[j]])[0]
            second = expected_game_score.policy_value(root, [policies[j], policies[i]])[1]
            assert float(neupl.payoffs[i, j]) == pytest.approx((first + second) / 2, abs=1e-9)
    weights = neupl.meta_nash()
    aggregated = policy_aggregator.PolicyAggregator(spiel).aggregate(
        [0, 1], [policies, policies], [weights.tolist(), weights.tolist()])
    assert neupl.nash_conv(weights) == pytest.approx(exploitability.nash_conv(spiel, aggregated), abs=1e-9)


# ----------------------------------------------------------------------------- gradients


def test_exact_policy_gradient_equals_finite_differences_of_the_exact_payoff():
    tree = SymmetricTree(KUHN)
    opponents = [reach.detach() for reach in tree.reach(random_strategies(KUHN, 3, seed=1))]
    targets = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)
    logits = torch.randn(1, KUHN.num_infosets, KUHN.max_actions, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(2)).requires_grad_(True)

    def payoff(values):
        strategy = torch.softmax(values.masked_fill(~KUHN.legal_mask, -torch.inf), -1)
        return (targets * tree.payoffs(tree.reach(strategy), opponents)).sum()

    (gradient,) = torch.autograd.grad(payoff(logits), logits)
    step = 1e-6
    for infoset in range(KUHN.num_infosets):
        for action in range(KUHN.max_actions):
            shift = torch.zeros_like(logits)
            shift[0, infoset, action] = step
            with torch.no_grad():
                numeric = (payoff(logits + shift) - payoff(logits - shift)) / (2 * step)
            assert float(gradient[0, infoset, action]) == pytest.approx(float(numeric), abs=1e-8)


def test_mean_of_sampled_gradients_is_the_exact_gradient():
    tree = SymmetricTree(KUHN)
    opponents = [reach.detach() for reach in tree.reach(random_strategies(KUHN, 3, seed=3))]
    targets = torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]], dtype=torch.float64)
    logits = torch.randn(2, KUHN.num_infosets, KUHN.max_actions, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    strategy = torch.softmax(logits.masked_fill(~KUHN.legal_mask, -torch.inf), -1)
    reach = tree.reach(strategy)
    (exact,) = torch.autograd.grad((targets * tree.payoffs(reach, opponents)).sum(), logits, retain_graph=True)
    seat, _, terminal = tree.sample(reach, opponents, targets, 400_000, torch.Generator().manual_seed(5))
    utilities = KUHN.terminal_utilities[terminal, seat]
    own = torch.where(seat == 0, reach[0].gather(1, terminal), reach[1].gather(1, terminal))
    (sampled,) = torch.autograd.grad((utilities * torch.log(own)).mean(1).sum(), logits)
    assert float((sampled - exact).abs().max()) < 0.02 * float(exact.abs().max())


def test_counterfactual_gradient_is_the_exact_one_without_each_infosets_own_reach():
    from solvers.sequence_form import treeplexes

    tree = SymmetricTree(KUHN)
    opponents = [reach.detach() for reach in tree.reach(random_strategies(KUHN, 2, seed=6))]
    targets = torch.tensor([[0.4, 0.6]], dtype=torch.float64)
    strategy = random_strategies(KUHN, 1, seed=7).requires_grad_(True)
    (exact,) = torch.autograd.grad((targets * tree.payoffs(tree.reach(strategy), opponents)).sum(), strategy)
    (counterfactual,) = torch.autograd.grad(tree.counterfactual_surrogate(strategy, opponents, targets).sum(),
                                            strategy)
    for player, form in enumerate(treeplexes(KUHN)):
        plan = form.realization_plan(form.pack(strategy[0].detach()))
        own_reach = plan[form.infoset_parent]  # (infosets,): the player's reach of each of its infosets
        rows = form.infosets
        assert torch.allclose(exact[0, rows], counterfactual[0, rows] * own_reach[:, None], atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_batched_payoffs_and_gradients_equal_one_pairing_at_a_time(seed):
    tree = SymmetricTree(KUHN)
    learners = random_strategies(KUHN, 3, seed).requires_grad_(True)
    opponents = [reach.detach() for reach in tree.reach(random_strategies(KUHN, 4, seed + 1))]
    targets = torch.softmax(torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)), 1)
    batched = tree.payoffs(tree.reach(learners), opponents)
    (gradient,) = torch.autograd.grad((targets * batched).sum(), learners)
    total = torch.zeros_like(learners)
    for k in range(3):
        for m in range(4):
            one = learners[k:k + 1].detach().requires_grad_(True)
            value = tree.payoffs(tree.reach(one), [reach[m:m + 1] for reach in opponents])[0, 0]
            assert float(value.detach()) == pytest.approx(float(batched[k, m].detach()), abs=1e-12)
            total[k] += torch.autograd.grad(targets[k, m] * value, one)[0][0]
    assert torch.allclose(gradient, total, atol=1e-12)


# ----------------------------------------------------------------------------- simplex-NeuPL


def test_simplex_neupl_responds_to_mixtures_almost_as_well_as_the_exact_best_response():
    neupl = run(kuhn_run(simplex=0.5, steps_per_iteration=100, population=4), iterations=8)
    strategies = neupl.strategies()
    shortfalls = []
    for weights in neupl.simplex_mixtures(20):  # the flat Dirichlet over the unique policies
        with torch.no_grad():
            response = neupl.policies(weights[None])
            value = float((weights[None] * neupl.tree.payoffs(neupl.tree.reach(response),
                                                              neupl.tree.reach(strategies))).sum())
        shortfalls.append(float(neupl.tree.best_response_value(strategies, weights)) - value)
    payoff_range = float(KUHN.terminal_utilities.max() - KUHN.terminal_utilities.min())
    assert min(shortfalls) > -1e-9  # nothing beats the exact best response
    assert sum(shortfalls) / len(shortfalls) <= 0.05 * payoff_range


# ----------------------------------------------------------------------------- saving


def test_a_resumed_run_equals_an_uninterrupted_one():
    for gradient in ("counterfactual", "sampled"):
        settings = {"gradient": gradient, "simplex": 0.3, "simplex_draws": 4, "episodes": 64}
        whole = run(kuhn_run(**settings), iterations=3)
        first = run(kuhn_run(**settings), iterations=1)
        buffer = io.BytesIO()
        torch.save(first.state_dict(), buffer)
        buffer.seek(0)
        resumed = kuhn_run(**settings)
        resumed.load_state_dict(torch.load(buffer, weights_only=True))
        run(resumed, iterations=3)
        assert torch.equal(resumed.payoffs, whole.payoffs) and torch.equal(resumed.sigma, whole.sigma)
        for a, b in zip(resumed.network.parameters(), whole.network.parameters()):
            assert torch.equal(a, b)
        assert [r.nash_conv for r in resumed.history] == [r.nash_conv for r in whole.history]


def test_a_state_of_other_settings_or_format_is_refused():
    state = run(kuhn_run(), iterations=1).state_dict()
    with pytest.raises(NeuPLError, match="other settings .*population"):
        kuhn_run(population=5).load_state_dict(state)
    with pytest.raises(NeuPLError, match="not a gamelab NeuPL run"):
        kuhn_run().load_state_dict({"format": "gamelab.psro"})


def test_the_default_logit_penalty_is_in_units_of_the_payoff_range():
    assert kuhn_run().logit_penalty == pytest.approx(LOGIT_PENALTY_PER_PAYOFF * 4.0)  # Kuhn's payoffs: -2 to 2
    assert kuhn_run(logit_penalty=0.5).logit_penalty == 0.5
    assert kuhn_run(logit_penalty=0.0).logit_penalty == 0.0


@pytest.mark.parametrize("settings, message", [
    ({"graph": "psro"}, "unknown interaction graph 'psro'.*psro-n"),
    ({"population": 1}, "population 1"),
    ({"simplex": 1.0}, "simplex 1.0"),
    ({"gradient": "magic"}, "gradient 'magic'"),
    ({"meta_solver": "cce"}, "meta-solver 'cce'"),
    ({"logit_penalty": -0.1}, "logit_penalty -0.1"),
])
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(NeuPLError, match=message):
        kuhn_run(**settings)


def test_games_that_are_not_two_player_zero_sum_are_refused():
    with pytest.raises(NeuPLError, match="3 players"):
        NeuPL(extensive_form_from_openspiel("kuhn_poker(players=3)"))
    with pytest.raises(NeuPLError, match="not constant-sum"):
        NeuPL(tree_from_normal_form(load_game("prisoners_dilemma")))
    assert set(GRAPHS) == {"psro-n", "fictitious-play", "self-play", "cycle"}


# ----------------------------------------------------------------------------- command line


def gamelab(capsys, *arguments):
    from marl.cli import main

    try:
        code = main(list(arguments))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_resumes_a_run_as_if_uninterrupted(tmp_path, capsys):
    import json

    common = ["kuhn_poker", "--population", "4", "--steps", "10", "--json"]
    code, out, _ = gamelab(capsys, "neupl", *common, "--iterations", "3")
    assert code == 0
    whole = json.loads(out.strip().splitlines()[-1])
    folder = tmp_path / "run"
    assert gamelab(capsys, "neupl", *common, "--iterations", "2", "--out", str(folder))[0] == 0
    code, out, _ = gamelab(capsys, "neupl", *common, "--iterations", "3", "--out", str(folder), "--resume")
    assert code == 0
    resumed = json.loads(out.strip().splitlines()[-1])
    assert [r["nash_conv"] for r in resumed["history"]] == [r["nash_conv"] for r in whole["history"]]
    assert resumed["meta_nash"] == whole["meta_nash"]
    assert {"state.pt", "graphs.json", "result.json", "interaction_graph.png", "nash_conv.png"} <= \
        {path.name for path in folder.iterdir()}
    assert len(json.loads((folder / "graphs.json").read_text())) == 3
    assert set(whole) >= {"game", "graph", "population", "effective_population", "nash_conv", "history", "seconds"}


@pytest.mark.parametrize("arguments, message", [
    (["kuhn_poker", "--graph", "psro"], "unknown interaction graph 'psro'"),
    (["kuhn_poker", "--population", "1"], "population 1"),
    (["kuhn_poker", "--simplex", "1"], "simplex 1.0"),
    (["kuhn_poker(players=3)"], "2-player zero-sum"),
    (["prisoners_dilemma"], "not constant-sum"),
    (["tag", "--gradient", "exact"], "applies to game trees"),
    (["kuhn_poker", "--iterations", "2", "--minutes", "1"], "not allowed with argument"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, arguments, message):
    code, _, err = gamelab(capsys, "neupl", *arguments)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_resume_with_other_settings_is_refused_and_changes_nothing(tmp_path, capsys):
    folder = tmp_path / "run"
    assert gamelab(capsys, "neupl", "kuhn_poker", "--population", "4", "--steps", "5", "--iterations", "1",
                   "--out", str(folder))[0] == 0
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    code, _, err = gamelab(capsys, "neupl", "kuhn_poker", "--population", "5", "--out", str(folder), "--resume")
    assert code == 2 and "--population 4" in err
    code, _, err = gamelab(capsys, "neupl", "leduc_poker", "--out", str(folder), "--resume")
    assert code == 2 and "a run of 'kuhn_poker'" in err
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


# ----------------------------------------------------------------------------- tournaments


def test_a_neupl_run_plays_tournaments_as_its_policies_and_mixtures(tmp_path, capsys):
    """Policies K of a run play the table's entries U[K, L] of the run (both measure each pairing
    exactly over both seats), and its meta-Nash mixture is the run's aggregated policy."""
    import textwrap

    from games.io import read_torch_file
    from marl.tournaments.config import load_config
    from marl.tournaments.run import run_tournament

    assert gamelab(capsys, "neupl", "kuhn_poker", "--population", "4", "--steps", "10", "--iterations", "2",
                   "--out", str(tmp_path / "run"))[0] == 0
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""\
        game: kuhn_poker
        players:
          - {name: policy-1, kind: neupl, path: run/state.pt, policy: 1}
          - {name: policy-3, kind: neupl, path: run/state.pt, policy: 3}
          - {name: meta-nash, kind: neupl, path: run/state.pt}
          - {name: half-half, kind: neupl, path: run/state.pt, mixture: [0, 0.5, 0, 0.5]}
          - {name: uniform, kind: uniform}
    """))
    result = run_tournament(load_config(str(tmp_path / "t.yaml")), tmp_path / "t.sqlite")
    neupl = kuhn_run(steps_per_iteration=10)
    neupl.load_state_dict(read_torch_file(tmp_path / "run" / "state.pt"))
    payoffs = result.tables.payoffs
    assert payoffs[0, 1] == pytest.approx(float(neupl.payoffs[1, 3]), abs=1e-9)
    mixed = neupl.tree.reach(neupl.mixture_strategy(neupl.meta_nash())[None])
    ones = neupl.tree.reach(neupl.strategies()[[1, 3]])
    assert payoffs[2, 0] == pytest.approx(float(neupl.tree.payoffs(mixed, ones)[0, 0]), abs=1e-9)
    half = neupl.mixture_strategy(torch.tensor([0, 0.5, 0, 0.5], dtype=torch.float64))
    assert payoffs[3, 4] == pytest.approx(float(neupl.tree.payoffs(neupl.tree.reach(half[None]), neupl.tree.reach(
        KUHN.uniform_strategy()[None]))[0, 0]), abs=1e-9)


def test_a_neupl_player_that_does_not_fit_is_refused_in_one_line(tmp_path, capsys):
    import textwrap

    assert gamelab(capsys, "neupl", "rock_paper_scissors", "--population", "3", "--iterations", "1",
                   "--out", str(tmp_path / "run"))[0] == 0
    for player, message in (("{name: n, kind: neupl, path: run/state.pt, policy: 3}", "policies 0..2"),
                            ("{name: n, kind: neupl, path: run/state.pt, mixture: [1.0]}", "1 weights"),
                            ("{name: n, kind: neupl, path: run/state.pt, policy: 0, mixture: [1, 0, 0]}", "not both")):
        (tmp_path / "t.yaml").write_text(textwrap.dedent(f"""\
            game: rock_paper_scissors
            players:
              - {player}
              - {{name: uniform, kind: uniform}}
        """))
        code, _, err = gamelab(capsys, "tournament", str(tmp_path / "t.yaml"), "--db", str(tmp_path / "t.sqlite"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    (tmp_path / "t.yaml").write_text("game: kuhn_poker\nplayers:\n  - {name: n, kind: neupl, path: run/state.pt}\n"
                                     "  - {name: uniform, kind: uniform}\n")
    code, _, err = gamelab(capsys, "tournament", str(tmp_path / "t.yaml"), "--db", str(tmp_path / "k.sqlite"))
    assert code == 2 and "is a NeuPL run of 'rock_paper_scissors', not of 'kuhn_poker'" in err


def test_only_symmetric_normal_form_games_play_both_seats_alike():
    for name, symmetric in (("rock_paper_scissors", True), ("matching_pennies", False)):
        normal_form = load_game(name)
        decisions = symmetric_decisions(tree_from_normal_form(normal_form), normal_form)
        assert (decisions is not None) == symmetric, name


# ----------------------------------------------------------------------------- opponent prediction


def test_opponent_posterior_equals_bayes_over_openspiels_histories():
    import pyspiel

    from games.adapters.openspiel import strategy_to_tabular_policy

    tree = SymmetricTree(KUHN)
    opponents = random_strategies(KUHN, 3, seed=11)
    targets = torch.tensor([[0.2, 0.5, 0.3], [0.0, 0.4, 0.6]], dtype=torch.float64)
    posterior, evidence = tree.opponent_posterior(opponents, targets)
    spiel = pyspiel.load_game("kuhn_poker")
    policies = [strategy_to_tabular_policy(KUHN, strategy, spiel) for strategy in opponents]
    mass: dict[tuple[int, str], list[float]] = {}

    def walk(state, chance, reach):  # reach[m][p]: opponent m's own reach if it sits in seat p
        if state.is_terminal():
            return
        if state.is_chance_node():
            for action, probability in state.chance_outcomes():
                walk(state.child(action), chance * probability, reach)
            return
        player = state.current_player()
        key = state.information_state_string(player)
        totals = mass.setdefault((player, key), [0.0] * 3)
        for m in range(3):  # the learner sits in `player`; opponent m in the other seat
            totals[m] += chance * reach[m][1 - player]
        for action in state.legal_actions():
            after = [[reach[m][p] * (policies[m].action_probabilities(state)[action] if p == player else 1.0)
                      for p in range(2)] for m in range(3)]
            walk(state.child(action), chance, after)

    walk(spiel.new_initial_state(), 1.0, [[1.0, 1.0] for _ in range(3)])
    for infoset, key in enumerate(KUHN.infoset_keys):
        totals = torch.tensor(mass[(int(KUHN.infoset_player[infoset]), key)], dtype=torch.float64)
        for k in range(2):
            expected = targets[k] * totals / (targets[k] * totals).sum()
            assert torch.allclose(posterior[k, infoset], expected, atol=1e-12)
            assert float(evidence[k, infoset]) == pytest.approx(float((targets[k] * totals).sum()), abs=1e-12)


def test_the_opponent_head_learns_the_exact_posterior():
    neupl = kuhn_run(predict_opponent=1.0, steps_per_iteration=100)
    run(neupl, iterations=6)
    rows = torch.stack([neupl.sigma[row] for row in neupl.learners()])
    untrained = kuhn_run(predict_opponent=1.0, steps_per_iteration=100)
    untrained.sigma, untrained.payoffs = neupl.sigma, neupl.payoffs
    trained_error, untrained_error = neupl.prediction_error(rows), untrained.prediction_error(rows)
    assert trained_error < 0.05 and trained_error < untrained_error / 3, (trained_error, untrained_error)


def test_the_objective_runs_equal_rows_once_and_equals_every_row_scored_alone():
    neupl = kuhn_run(gradient="exact", logit_penalty=0.0, population=5)
    neupl.sigma = torch.tensor([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0],
                                [0.5, 0.5, 0, 0, 0]], dtype=torch.float64)
    assert unique_rows(neupl.sigma) == [0, 1, 3] and neupl.learners() == [1, 3]
    with torch.no_grad():
        strategies = neupl.policies(neupl.sigma)  # every row, duplicates included
        opponents = neupl.tree.reach(strategies)
        alone = [float((neupl.sigma[k] * neupl.tree.payoffs(neupl.tree.reach(strategies[k:k + 1]), opponents)[0]).sum())
                 for k in (1, 3)]
        assert float(neupl.objective([1, 3])) == pytest.approx(sum(alone) / 2, abs=1e-12)
