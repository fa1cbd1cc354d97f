"""PSRO with exact best responses: gamelab against OpenSpiel's ``psro_v2``, in one process and one run.

    python -m benchmarks.psro [--games kuhn_poker leduc_poker] [--iterations 6] [--json]

OpenSpiel runs as its ``psro_v2_example.py`` does with ``--oracle_type=BR``:
``BestResponseOracle`` (C++ best responses), 1,000 simulations per meta-game entry,
projected replicator dynamics (50,000 steps, gamma 1e-10) as the meta-solver, uniform
random initial policies; its NashConv is ``exploitability.nash_conv`` of the
``PolicyAggregator`` mixture, as in the example. gamelab runs ``solvers.psro`` with exact
meta-game entries from the sequence form, with ``prd`` and with ``nash``.

Then XDO against PSRO on Leduc (``--xdo-game``): iterations and seconds to NashConv <=
0.01, XDO's restricted games solved by CFR+ to NashConv 0.0025, PSRO with exact best
responses and ``nash`` for up to 150 iterations.

Each row prints the seconds per iteration (NashConv measurements excluded for both: they
are analysis, not training) and the NashConv after every iteration, side by side, with
the ratio OpenSpiel / gamelab at equal pool size. OpenSpiel's first iteration, which
builds its best-response tables, is timed like the rest; gamelab compiles its tree before
the clock starts, as OpenSpiel loads its game.
"""

from __future__ import annotations

import argparse
import json
import time


def openspiel_psro(name: str, iterations: int, sims_per_entry: int = 1000, seed: int = 0) -> dict:
    import numpy as np
    import pyspiel
    from open_spiel.python import policy as policy_lib
    from open_spiel.python.algorithms import exploitability, policy_aggregator
    from open_spiel.python.algorithms.psro_v2 import best_response_oracle, psro_v2, strategy_selectors

    np.random.seed(seed)
    game = pyspiel.load_game_as_turn_based(name, {"players": 2})
    random_policy = policy_lib.TabularPolicy(game)
    oracle = best_response_oracle.BestResponseOracle(game=game, policy=random_policy)
    agents = [random_policy.__copy__() for _ in range(2)]
    started = time.perf_counter()
    solver = psro_v2.PSROSolver(game, oracle, initial_policies=agents,
                                training_strategy_selector=strategy_selectors.probabilistic,
                                sims_per_entry=sims_per_entry, meta_strategy_method="prd", prd_iterations=50000,
                                prd_gamma=1e-10, sample_from_marginals=True)
    setup = time.perf_counter() - started
    seconds, nash_convs = [], []
    for _ in range(iterations):
        started = time.perf_counter()
        solver.iteration()
        seconds.append(time.perf_counter() - started)
        aggregated = policy_aggregator.PolicyAggregator(game).aggregate(
            range(2), solver.get_policies(), solver.get_meta_strategies())
        nash_convs.append(float(exploitability.nash_conv(game, aggregated)))
    return {"setup_s": setup, "seconds": seconds, "nash_conv": nash_convs}


def gamelab_psro(name: str, meta_solver: str, iterations: int) -> dict:
    from games.loading import load_game
    from solvers import psro

    game = load_game(name)
    started = time.perf_counter()
    run = psro.PSRO(game, meta_solver)
    setup = time.perf_counter() - started
    seconds, nash_convs = [], []
    for _ in range(iterations):
        started = time.perf_counter()
        run.update_meta_strategies()
        run.update_agents()
        run.update_empirical_gamestate()
        seconds.append(time.perf_counter() - started)
        run.update_meta_strategies()  # what OpenSpiel's iteration ends with: sigma of the grown meta-game
        nash_convs.append(run.nash_conv())
    return {"setup_s": setup, "seconds": seconds, "nash_conv": nash_convs,
            "population_sizes": [len(population) for population in run.populations]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench psro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", nargs="+", default=["kuhn_poker", "leduc_poker"])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--xdo-game", default="leduc_poker", help="game of the XDO-against-PSRO run ('' skips it)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    results: dict = {"benchmark": "psro", "iterations": args.iterations, "games": {}}
    for name in args.games:
        row = {"openspiel_prd": openspiel_psro(name, args.iterations)}
        for meta_solver in ("prd", "nash"):
            row[f"gamelab_{meta_solver}"] = gamelab_psro(name, meta_solver, args.iterations)
        anchor = sum(row["openspiel_prd"]["seconds"]) / args.iterations
        for meta_solver in ("prd", "nash"):
            ours = row[f"gamelab_{meta_solver}"]
            ours["ratio_per_iteration"] = anchor / (sum(ours["seconds"]) / args.iterations)
        results["games"][name] = row
        print(f"{name}: seconds per iteration: OpenSpiel {anchor:.3f}, "
              + ", ".join(f"gamelab {m} {sum(row[f'gamelab_{m}']['seconds']) / args.iterations:.4f} "
                          f"({row[f'gamelab_{m}']['ratio_per_iteration']:.0f}x)" for m in ("prd", "nash")), flush=True)
        print("  NashConv after each iteration:", flush=True)
        for label, key in (("OpenSpiel prd", "openspiel_prd"), ("gamelab prd  ", "gamelab_prd"),
                           ("gamelab nash ", "gamelab_nash")):
            print(f"    {label}: " + " ".join(f"{value:.4f}" for value in row[key]["nash_conv"]), flush=True)
    if args.xdo_game:
        results["xdo_against_psro"] = xdo_against_psro(args.xdo_game)
    if args.json:
        print(json.dumps(results))
    return results


def xdo_against_psro(name: str, target: float = 0.01, psro_iterations: int = 150) -> dict:
    """Iterations and seconds to NashConv <= ``target``: XDO against PSRO (nash)."""
    from games.loading import load_game
    from solvers import psro
    from solvers.xdo import xdo

    game = load_game(name)
    started = time.perf_counter()
    _, history = xdo(game, iterations=100, target_nash_conv=target, restricted_nash_conv=target / 4)
    xdo_row = {"iterations": len(history), "seconds": time.perf_counter() - started,
               "nash_conv": history[-1].nash_conv}
    started = time.perf_counter()
    run = psro.run(game, "nash", iterations=psro_iterations, target_nash_conv=target)
    psro_row = {"iterations": run.iteration, "seconds": time.perf_counter() - started, "nash_conv": run.nash_conv(),
                "reached": run.nash_conv() <= target}
    print(f"{name}, NashConv <= {target}: XDO {xdo_row['iterations']} iterations, {xdo_row['seconds']:.1f} s "
          f"(NashConv {xdo_row['nash_conv']:.4f}); PSRO (nash) "
          + (f"{psro_row['iterations']} iterations" if psro_row["reached"] else
             f"not reached in {psro_row['iterations']} iterations") + f", {psro_row['seconds']:.1f} s "
          f"(NashConv {psro_row['nash_conv']:.4f})", flush=True)
    return {"target": target, "xdo": xdo_row, "psro_nash": psro_row}


if __name__ == "__main__":
    main()
