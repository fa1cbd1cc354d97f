"""``make demo``: equilibria of a few classic games, then a batched Markov game.

Run with ``python -m marl.demo``. Each line names the game, the solver that ``auto`` (or
the named one) chose, the equilibrium found, and its NashConv measured in the game.
"""

from __future__ import annotations

import time

import torch
from rich.console import Console
from rich.table import Table

from games import catalog
from solvers import registry
from solvers.exploitability import nash_conv
from solvers.zero_sum import solve_zero_sum

DEMO = [
    ("rps", "auto"),
    ("matching_pennies", "auto"),
    ("prisoners_dilemma", "auto"),
    ("battle_of_the_sexes", "auto"),
    ("stag_hunt", "auto"),
    ("chicken", "ce"),
    ("shapley", "rm+"),
    ("three_player_matching_pennies", "auto"),
]


def _format(strategy: torch.Tensor, names: tuple[str, ...]) -> str:
    return " ".join(f"{name}:{p:.3f}" for name, p in zip(names, strategy.tolist()) if p > 5e-4)


def main() -> None:
    console = Console()
    table = Table(title="gamelab: equilibria of classic games")
    for column in ("game", "solver", "equilibrium (per player)", "payoffs", "NashConv"):
        table.add_column(column)
    for name, solver in DEMO:
        game = catalog.load(name)
        result = registry.solve(game, solver)
        profile = "\n".join(_format(s, n) for s, n in zip(result.strategies, game.action_names))
        if result.joint is not None:
            profile = "correlated: " + ", ".join(f"{p:.2f}" for p in result.joint.flatten().tolist())
        payoffs = ", ".join(f"{v:.3g}" for v in result.value)
        gap = f"CE gap {result.extra['gap']:.1e}" if solver == "ce" else f"{result.nash_conv:.1e}"
        table.add_row(game.title, result.solver, profile, payoffs, gap)
    console.print(table)

    if registry.has_pygambit():
        game = catalog.load("battle_of_the_sexes")
        from solvers.gambit import gambit_equilibria

        equilibria = gambit_equilibria(game, "enummixed")
        console.print(f"Battle of the sexes has {len(equilibria)} equilibria (pygambit enummixed): " + "; ".join(
            " / ".join(_format(s, n) for s, n in zip(profile, game.action_names)) for profile in equilibria
        ))

    game = catalog.random_zero_sum(500, 500, batch_size=4, seed=0)
    start = time.perf_counter()
    solution, report = solve_zero_sum(game)
    seconds = time.perf_counter() - start
    gaps = nash_conv(game, solution.strategies)
    console.print(
        f"4 random 500x500 zero-sum games solved together in {seconds:.2f} s "
        f"({report.iterations} interior-point iterations): values "
        f"{', '.join(f'{v:+.5f}' for v in solution.value.tolist())}, max NashConv {float(gaps.max()):.1e}"
    )
    _markov_demo(console)
    _tournament_demo(console)
    _maddpg_demo(console)
    console.print("Try: gamelab solve battle_of_the_sexes --plot bos.png, "
                  "gamelab solve 'random_zero_sum(300,300)' --json, gamelab solvers, "
                  "gamelab render spread --policy scripted --out spread.gif, "
                  "gamelab train maddpg --scenario spread --minutes 10")


def _markov_demo(console: Console, copies: int = 4096) -> None:
    """Random and scripted play in 4096 copies of ``spread`` (mpe2's simple_spread_v3)."""
    import scenarios
    from games.policy import episode_returns, random_policy
    from scenarios.spread import optimal_assignment_policy

    game = scenarios.make("spread", num_envs=copies, seed=0)
    for label, policy in (("uniform random", random_policy(0)), ("scripted assignment", optimal_assignment_policy)):
        start = time.perf_counter()
        returns = episode_returns(policy, game, seed=0)
        seconds = time.perf_counter() - start
        console.print(
            f"spread, {copies} copies, {label}: mean return per agent {float(returns.mean()):+.2f} "
            f"({copies * game.max_steps / seconds:,.0f} env-steps/s with the policy)"
        )


def _tournament_demo(console: Console) -> None:
    """The ``tag`` tournament of ``examples/``: 4 predator-prey teams, 10,000 batched matches."""
    import os
    import tempfile

    from marl.tournaments.config import load_config
    from marl.tournaments.run import run_tournament

    example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                           "tag_tournament.yaml")
    if not os.path.isfile(example):
        return
    with tempfile.TemporaryDirectory() as folder:
        result = run_tournament(load_config(example), os.path.join(folder, "tag.sqlite"))
    payload = result.to_json()
    mean = payload["ratings"]["mean_payoff"]
    console.print(
        f"tag tournament, {len(result.names)} teams, {result.matches_total:,} matches in {result.seconds:.1f} s, "
        "best first (mean payoff against the others): "
        + ", ".join(f"{name} {mean[name]:+.2f}" for name in payload["ranking"])
        + " (gamelab tournament examples/tag_tournament.yaml --report DIR draws it)"
    )


def _maddpg_demo(console: Console, env_steps: int = 150_000) -> tuple[float, float, int]:
    """MADDPG on ``spread`` for a fixed budget of transitions (so the result does not depend on the
    machine's load), evaluated greedily against uniform random play on the same 100 episodes.

    Returns ``(trained return, random return, updates)``."""
    from games.policy import episode_returns, random_policy
    from marl.envs import make_game
    from marl.maddpg import MADDPGConfig, TrainedPolicy
    from marl.train import reachable_budget, train

    config, _ = reachable_budget(MADDPGConfig(env_steps=env_steps, num_envs=64, seed=0, checkpoint_minutes=0))
    result = train(make_game("spread", config.num_envs, seed=0), config)
    evaluation = make_game("spread", 100, seed=1)
    trained = float(episode_returns(TrainedPolicy(result.learner), evaluation, 1).mean())
    random = float(episode_returns(random_policy(1), evaluation, 1).mean())
    console.print(
        f"MADDPG on spread, {result.env_steps:,} env steps ({result.updates:,} updates, {result.seconds:.0f} s): "
        f"mean return per agent {trained:+.2f} over 100 episodes, uniform random {random:+.2f} on the same episodes "
        "(`gamelab bench maddpg` trains for 10 minutes)"
    )
    return trained, random, result.updates


if __name__ == "__main__":
    main()
