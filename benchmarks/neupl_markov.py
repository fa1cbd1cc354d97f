"""NeuPL against PSRO on ``tag`` at equal wall time, on the path a user takes.

    python -m benchmarks.neupl_markov [--population 8] [--oracle-steps 200000] [--matches 128] [--json]

1. ``gamelab psro tag --iterations N-1 --out DIR --json`` (MADDPG best responses, one per team
   per iteration: populations of N with the first, random play), then ``gamelab neupl tag
   --population N --minutes M --out DIR --json`` with M the PSRO run's own seconds: both in
   fresh processes, as a user runs them;
2. ``gamelab tournament`` on both run folders, one table: NeuPL's meta-Nash mixture and each
   of its N policies, PSRO's final mixture and each of its N generations, seats swapped,
   ``--matches`` matches per pair. An entry is the row player's return per agent against the
   column player, averaged over its two seats. From it, the relative population performance
   (Balduzzi et al., ICML 2019) of NeuPL's population against PSRO's: the value of the
   zero-sum game between them (positive: NeuPL's population is not exploited by PSRO's);
3. a fresh best response per team (PSRO's oracle settings, trained from scratch) against each
   run's final mixture: what it gains over the mixture it answers, summed over the teams
   (``benchmarks.psro_markov.gains_against``, 256 episodes per entry). The smaller sum is
   the mixture that is harder to exploit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from benchmarks.psro_markov import _gamelab, fresh_gains, gains_against


def neupl_gains(folder: str, psro_folder: str, sims: int) -> dict:
    """Fresh best responses (the PSRO run's oracle) against NeuPL's meta-Nash mixture."""
    import torch

    from games.io import read_torch_file
    from marl.neupl_markov import from_state
    from marl.psro_oracle import MarkovPopulations

    run = from_state(read_torch_file(os.path.join(folder, "state.pt"), what="NeuPL run"), replay=False)
    recorded = read_torch_file(os.path.join(psro_folder, "state.pt"), what="PSRO run")["markov"]
    oracle = MarkovPopulations.from_record("tag", recorded)
    space = MarkovPopulations("tag", run.settings, oracle=oracle.oracle, sims_per_entry=sims, seed=oracle.seed + 1000)
    mixture = run.mixture_policy(run.meta_nash(), seed=run.config.seed + 23)
    one = torch.ones(1, dtype=torch.float64)
    return gains_against(space, [[mixture], [mixture]], [one, one])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench neupl_markov", description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, default=8, help="policies in each population")
    parser.add_argument("--oracle-steps", type=int, default=200_000, help="transitions per PSRO best response")
    parser.add_argument("--matches", type=int, default=128, help="tournament matches per pair")
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    size = args.population

    with tempfile.TemporaryDirectory() as scratch:
        base = args.out or scratch
        psro_folder, neupl_folder = os.path.join(base, "psro"), os.path.join(base, "neupl")
        psro, psro_command = _gamelab("psro", "tag", "--iterations", str(size - 1), "--oracle-steps",
                                      str(args.oracle_steps), "--sims-per-entry", "32", "--out", psro_folder, "--json")
        print(f"gamelab psro tag: {psro['iterations']} iterations (populations {psro['population_sizes']}), "
              f"{psro['seconds']:.1f} s of training ({psro_command:.1f} s command), estimated NashConv "
              f"{psro['nash_conv']:.3f}")
        neupl, neupl_command = _gamelab("neupl", "tag", "--population", str(size), "--minutes",
                                        f"{psro['seconds'] / 60:.4f}", "--out", neupl_folder, "--json")
        print(f"gamelab neupl tag: {neupl['iterations']} iterations, {neupl['seconds']:.1f} s of training "
              f"({neupl_command:.1f} s command), {neupl['transitions']:,} transitions, effective population "
              f"{neupl['effective_population']}, estimated NashConv {neupl['nash_conv']:.3f}")
        players = ["  - {name: neupl-meta-nash, kind: neupl, path: neupl/state.pt}\n",
                   "  - {name: psro-final-mixture, kind: psro, path: psro/state.pt}\n"]
        players += [f"  - {{name: neupl-{k}, kind: neupl, path: neupl/state.pt, policy: {k}}}\n" for k in range(size)]
        players += [f"  - {{name: psro-{k}, kind: psro, path: psro/state.pt, member: {k}}}\n" for k in range(size)]
        config = os.path.join(base, "tournament.yaml")
        with open(config, "w") as handle:
            handle.write(f"name: neupl-psro-tag\ngame: tag\nmatches_per_pair: {args.matches}\nplayers:\n"
                         + "".join(players))
        table, tournament_seconds = _gamelab("tournament", config, "--db", os.path.join(base, "t.sqlite"), "--json")
        names, payoffs = table["players"], table["payoffs"]
        print(f"tournament ({tournament_seconds:.1f} s): return per agent of the row player, seats averaged")
        width = max(len(name) for name in names)
        print(" " * width + "".join(f"{name[-9:]:>10}" for name in names))
        for name, row in zip(names, payoffs):
            print(f"{name:>{width}}" + "".join(f"{value:10.2f}" for value in row))
        rpp = relative_population_performance(names, payoffs, size)
        print(f"relative population performance of NeuPL's population against PSRO's: {rpp['value']:+.3f} "
              f"(NeuPL's mixture {[round(w, 2) for w in rpp['neupl_mixture']]}, PSRO's "
              f"{[round(w, 2) for w in rpp['psro_mixture']]})")
        gains = {"neupl_meta_nash": neupl_gains(neupl_folder, psro_folder, 256),
                 "psro_final_mixture": fresh_gains(psro_folder, 256, ("final_mixture",))["final_mixture"]}
        for label, values in gains.items():
            print(f"fresh best responses against {label.replace('_', ' ')}: gains {values['gains'][0]:+.3f} "
                  f"(adversaries), {values['gains'][1]:+.3f} (good agent); sum of positive gains {values['sum']:.3f}")
    result = {"psro": psro, "psro_command_seconds": psro_command, "neupl": neupl,
              "neupl_command_seconds": neupl_command, "tournament": {"players": names, "payoffs": payoffs},
              "relative_population_performance": rpp, "fresh_gains": gains}
    if args.json:
        print(json.dumps(result))
    return result


def relative_population_performance(names: list[str], payoffs: list[list[float]], size: int) -> dict:
    """Balduzzi et al. (ICML 2019): the value of the zero-sum game ``M[i, j] = (T[i, j] - T[j, i]) / 2``
    between NeuPL's policies (rows) and PSRO's members (columns), ``T`` the tournament's table."""
    import torch

    from solvers.psro import table_meta_solver

    table = torch.tensor(payoffs, dtype=torch.float64)
    rows = [names.index(f"neupl-{k}") for k in range(size)]
    columns = [names.index(f"psro-{k}") for k in range(size)]
    matrix = (table[rows][:, columns] - table[columns][:, rows].T) / 2
    mine, theirs = table_meta_solver("lp")(torch.stack([matrix, -matrix]))
    return {"value": float(mine @ matrix @ theirs), "neupl_mixture": mine.tolist(), "psro_mixture": theirs.tolist()}


if __name__ == "__main__":
    main()
