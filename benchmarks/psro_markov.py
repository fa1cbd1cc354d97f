"""PSRO with MADDPG best responses on ``tag``, timed on the path a user takes.

    python -m benchmarks.psro_markov [--iterations 5] [--oracle-steps 200000] [--json]

1. ``gamelab psro tag --iterations K --out DIR --json`` in a fresh process (the command a
   user runs; its seconds include starting Python and every evaluation);
2. ``gamelab tournament`` on DIR's ``state.pt``: the final sigma-mixture, the first
   population (member 0 of both teams, uniform random play: the anchor every later player
   is compared with) and every generation ``k`` (the k-th best responses), seats swapped;
3. a fresh best response per team, trained with the run's oracle settings, against the
   first population and against the final mixture: what it gains over the mixture it
   answers (``(U_i(BR_i, sigma_-i) - U_i(sigma))`` summed over the teams, 256 episodes per
   entry). PSRO works when the second is smaller: the final mixture is harder to exploit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _gamelab(*arguments: str) -> tuple[dict, float]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "marl.cli", *arguments], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"gamelab {' '.join(arguments)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1]), seconds


def _gain(space, populations, sigma, player: int, response) -> float:
    """What ``response`` gains for team ``player`` over ``sigma`` against the other team's sigma."""
    import torch

    grown = [list(population) for population in populations]
    grown[player].append(response)
    table = space.block(grown)[player]  # (K_0 (+1), K_1 (+1))
    padded = [torch.cat([s, s.new_zeros(1)]) if team == player else s for team, s in enumerate(sigma)]
    value = float(padded[0] @ table @ padded[1])
    if player == 0:
        return float(table[-1] @ padded[1]) - value
    return float(padded[0] @ table[:, -1]) - value


def fresh_gains(folder: str, sims: int, cases: tuple[str, ...] = ("first_population", "final_mixture")) -> dict:
    """A fresh best response per team against the first population and against the final mixture (``cases``)."""
    import torch

    from games.io import read_torch_file
    from marl.psro_oracle import MarkovPopulations
    from solvers.psro import PSRO

    state = read_torch_file(os.path.join(folder, "state.pt"), what="PSRO run")
    space = MarkovPopulations.from_record("tag", state["markov"])
    space = MarkovPopulations("tag", space.settings, oracle=space.oracle, sims_per_entry=sims, seed=space.seed + 1000)
    run = PSRO(space.probe, state["meta_solver"], policy_space=space)
    run.load_state_dict(state)
    run.update_meta_strategies()
    final = [strategy.to(torch.float64) for strategy in run.meta_strategies]
    first_populations = [[population[0]] for population in run.populations]
    one = torch.ones(1, dtype=torch.float64)
    known = {"first_population": (first_populations, [one, one]), "final_mixture": (run.populations, final)}
    return {label: gains_against(space, *known[label]) for label in cases}


def gains_against(space, populations, sigma) -> dict:
    """A fresh best response per team (``space``'s oracle) against the other team's sigma-mixture, and its gain."""
    from marl.psro_oracle import TeamMixture

    mixtures = [TeamMixture(tuple(p), s) for p, s in zip(populations, sigma)]
    gains, seconds = [], []
    for team in range(2):
        started = time.perf_counter()
        response = space.best_response(mixtures, team)
        seconds.append(time.perf_counter() - started)
        gains.append(_gain(space, populations, sigma, team, response))
    return {"gains": gains, "sum": sum(max(0.0, gain) for gain in gains), "train_seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench psro_markov", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--oracle-steps", type=int, default=200_000)
    parser.add_argument("--sims-per-entry", type=int, default=64)
    parser.add_argument("--matches", type=int, default=256, help="tournament matches per pair")
    parser.add_argument("--out", default=None, help="keep the run folder here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or os.path.join(scratch, "run")
        run, seconds = _gamelab("psro", "tag", "--iterations", str(args.iterations), "--oracle-steps",
                                str(args.oracle_steps), "--sims-per-entry", str(args.sims_per_entry), "--out", folder,
                                "--json")
        print(f"gamelab psro tag: {run['iterations']} iterations in {seconds:.1f} s (command), populations "
              f"{run['population_sizes']}")
        for record in run["history"]:
            print(f"  iteration {record['iteration']}: {record['seconds']:7.1f} s, estimated NashConv "
                  f"{record['nash_conv']:.3f}")
        generations = "".join(f"  - {{name: generation-{k}, kind: psro, path: state.pt, member: {k}}}\n"
                              for k in range(1, args.iterations + 1))
        config = os.path.join(folder, "tournament.yaml")
        with open(config, "w") as handle:
            handle.write(f"name: psro-tag\ngame: tag\nmatches_per_pair: {args.matches}\nplayers:\n"
                         "  - {name: final-mixture, kind: psro, path: state.pt}\n"
                         "  - {name: first-population, kind: psro, path: state.pt, member: 0}\n" + generations)
        table, tournament_seconds = _gamelab("tournament", config, "--db", os.path.join(folder, "t.sqlite"), "--json")
        names = table["players"]
        payoffs = table["payoffs"]
        final, first = names.index("final-mixture"), names.index("first-population")
        print(f"tournament ({tournament_seconds:.1f} s): final mixture against the first population "
              f"{payoffs[final][first]:+.3f}, first population against the final mixture {payoffs[first][final]:+.3f}")
        gains = fresh_gains(folder, 256)
        for label, values in gains.items():
            print(f"fresh best responses against the {label.replace('_', ' ')}: gains {values['gains'][0]:+.3f} "
                  f"(adversaries), {values['gains'][1]:+.3f} (good agent); sum of positive gains {values['sum']:.3f}")
    result = {"psro": run, "command_seconds": seconds, "tournament": {"players": names, "payoffs": payoffs},
              "final_vs_first": payoffs[final][first], "first_vs_final": payoffs[first][final], "fresh_gains": gains}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
