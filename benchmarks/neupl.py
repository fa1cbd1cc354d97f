"""NeuPL against PSRO at equal wall time, Simplex-NeuPL's responses to mixtures, and the command's cost.

    python -m benchmarks.neupl [--game leduc_poker] [--population 16] [--seconds 300] [--json] [--plot FILE]

1) NeuPL (``psro-n``, N policies in one network) and PSRO (exact best responses, ``nash``,
   until its populations hold N members) on one game, each from its start: NashConv of
   its meta-Nash mixture against seconds of training (NashConv measurements excluded
   from PSRO's clock, included in NeuPL's: its iterations measure U anyway). Then the
   share of NeuPL's iterations below PSRO's final NashConv, and NeuPL's median over the
   last two-thirds of its run (its policies keep training, so its NashConv moves). Then the
   relative population performance (Balduzzi et al., ICML 2019) of the two populations:
   the value of the zero-sum game ``A[i, j]``, NeuPL's policy i against PSRO's generation j
   (its two best responses of iteration j as one policy), seats averaged; positive when
   NeuPL's population is not exploited by PSRO's.
2) Simplex-NeuPL (``--simplex``, with the opponent-prediction head) trained for the same
   time: for 100 mixtures drawn from the flat Dirichlet over its unique policies, the
   exact value of its conditioned response against the mixture, against the exact best
   response's, as a share of the game's payoff range; the head's distance from the exact
   posterior over the opponent's identity; and its NashConv beside plain NeuPL's.
3) ``gamelab neupl`` as a user runs it (a subprocess, Kuhn poker, 10 iterations): the
   command's wall time beside the run's own seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def neupl_run(game: str, population: int, seconds: float, simplex: float = 0.0, seed: int = 0,
              predict_opponent: float = 0.0) -> tuple[dict, object]:
    from marl.neupl import NeuPL, NeuPLConfig, load_neupl_game, run

    tree, observations, decisions = load_neupl_game(game)
    neupl = NeuPL(tree, NeuPLConfig(population=population, simplex=simplex, seed=seed,
                                    predict_opponent=predict_opponent), observations=observations, decisions=decisions)
    run(neupl, seconds=seconds)
    history = [{"iteration": r.iteration, "seconds": r.seconds, "nash_conv": r.nash_conv,
                "effective_population": r.effective_population} for r in neupl.history]
    return {"population": population, "simplex": simplex, "iterations": neupl.iteration, "history": history,
            "final_nash_conv": history[-1]["nash_conv"],
            "best_nash_conv": min(r["nash_conv"] for r in history)}, neupl


def psro_run(game: str, population: int) -> tuple[dict, object]:
    from games.loading import load_game
    from solvers import psro

    tree = load_game(game)
    run = psro.PSRO(tree, "nash")
    seconds, history = 0.0, []
    while min(len(members) for members in run.populations) < population:
        started = time.perf_counter()
        run.update_meta_strategies()
        added = run.update_agents()
        run.update_empirical_gamestate()
        seconds += time.perf_counter() - started
        run.update_meta_strategies()
        history.append({"iteration": len(history) + 1, "seconds": seconds, "nash_conv": run.nash_conv(),
                        "population": min(len(members) for members in run.populations)})
        if not any(added):
            break
    return {"population": population, "iterations": len(history), "history": history,
            "final_nash_conv": history[-1]["nash_conv"]}, run


def relative_population_performance(neupl, run) -> float:
    """The value of ``A`` (NeuPL policy i against PSRO generation j, seats averaged) for NeuPL, by LP."""
    import torch

    from games.normal_form import NormalFormGame
    from solvers import registry

    game = neupl.game
    first = (game.infoset_player == 0)[:, None]
    generations = min(len(members) for members in run.populations)
    psro_policies = torch.stack([torch.where(first, run.populations[0][k], run.populations[1][k])
                                 for k in range(generations)]).to(game.dtype)
    with torch.no_grad():
        table = neupl.tree.payoffs(neupl.tree.reach(neupl.strategies()), neupl.tree.reach(psro_policies))
    result = registry.solve(NormalFormGame(torch.stack([table, -table])), "lp")
    return float(result.strategies[0] @ table @ result.strategies[1])


def simplex_shortfalls(neupl, draws: int = 100) -> dict:
    import torch

    strategies = neupl.strategies()
    opponents = neupl.tree.reach(strategies)
    mixtures = neupl.simplex_mixtures(draws)  # the flat Dirichlet over its unique policies, from the run's generator
    shortfalls = []
    for weights in mixtures:
        with torch.no_grad():
            response = neupl.policies(weights[None])
            value = float((weights[None] * neupl.tree.payoffs(neupl.tree.reach(response), opponents)).sum())
        shortfalls.append(float(neupl.tree.best_response_value(strategies, weights)) - value)
    utilities = neupl.game.terminal_utilities
    payoff_range = float(utilities.max() - utilities.min())
    row = {"draws": draws, "payoff_range": payoff_range, "mean_shortfall": sum(shortfalls) / draws,
           "max_shortfall": max(shortfalls), "mean_shortfall_share": sum(shortfalls) / draws / payoff_range}
    if neupl.config.predict_opponent > 0:
        row["opponent_prediction_error"] = neupl.prediction_error(mixtures)
    return row


def command_timing(game: str = "kuhn_poker", iterations: int = 10) -> dict:
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "marl.cli", "neupl", game, "--iterations", str(iterations),
                                "--json"], capture_output=True, text=True, check=True,
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    wall = time.perf_counter() - started
    payload = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"game": game, "iterations": iterations, "command_wall_s": wall, "run_s": payload["seconds"],
            "nash_conv": payload["nash_conv"]}


def at(history: list[dict], seconds: float) -> float | None:
    """NashConv of the last record at or before ``seconds``."""
    before = [r["nash_conv"] for r in history if r["seconds"] <= seconds]
    return before[-1] if before else None


def plot(results: dict, path: str) -> None:
    """NashConv against seconds of PSRO, NeuPL and Simplex-NeuPL (seconds on a log axis: PSRO's run is
    over in about half a second), written as a PNG."""
    from marl.plots import pyplot, write_png

    figure, axes = pyplot().subplots(figsize=(7, 4))
    for key, label in (("psro", "PSRO (exact best responses)"), ("neupl", "NeuPL"), ("simplex", "Simplex-NeuPL")):
        if key in results:
            history = results[key]["history"]
            axes.plot([r["seconds"] for r in history], [r["nash_conv"] for r in history], label=label,
                      drawstyle="steps-post")
    if "psro" in results:  # PSRO's populations are full: its NashConv stays where it ended
        end = max(r["seconds"] for key in ("neupl", "simplex") if key in results for r in results[key]["history"])
        last = results["psro"]["history"][-1]
        axes.plot([last["seconds"], end], [last["nash_conv"]] * 2, color="C0", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("seconds of training (2 CPU cores)")
    axes.set_ylabel("NashConv of the meta-Nash mixture")
    axes.set_title(f"{results['game']}, populations of {results['population']}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    write_png(path, figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench neupl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", default="leduc_poker")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=300.0, help="NeuPL's training budget, each run")
    parser.add_argument("--simplex", type=float, default=0.3, help="Simplex-NeuPL's weight (0 skips part 2)")
    parser.add_argument("--predict-opponent", type=float, default=1.0,
                        help="weight of Simplex-NeuPL's opponent-prediction head (0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--plot", metavar="FILE", help="write NashConv against seconds of each run as a PNG")
    args = parser.parse_args(argv)
    results: dict = {"benchmark": "neupl", "game": args.game, "population": args.population}

    psro_row, psro = psro_run(args.game, args.population)
    print(f"PSRO (exact best responses, nash) on {args.game}: {psro_row['iterations']} iterations to "
          f"{args.population} members in {psro_row['history'][-1]['seconds']:.2f} s, NashConv "
          f"{psro_row['final_nash_conv']:.4f}", flush=True)
    neupl_row, neupl = neupl_run(args.game, args.population, args.seconds)
    print(f"NeuPL (psro-n, N={args.population}) on {args.game}: {neupl_row['iterations']} iterations in "
          f"{neupl_row['history'][-1]['seconds']:.1f} s, NashConv {neupl_row['final_nash_conv']:.4f} "
          f"(lowest {neupl_row['best_nash_conv']:.4f})", flush=True)
    psro_seconds = psro_row["history"][-1]["seconds"]
    equal = {"seconds": psro_seconds, "psro": psro_row["final_nash_conv"],
             "neupl": at(neupl_row["history"], psro_seconds)}
    print(f"  at PSRO's {psro_seconds:.2f} s: PSRO {equal['psro']:.4f}, NeuPL "
          + ("(no iteration yet)" if equal["neupl"] is None else f"{equal['neupl']:.4f}"), flush=True)
    # NeuPL's NashConv moves while every policy keeps training: the share of its iterations below PSRO's
    # final figure, its median over the last two-thirds of the run, and when it last crossed above it.
    history = neupl_row["history"]
    late = sorted(r["nash_conv"] for r in history[len(history) // 3:])
    above = [r["seconds"] for r in history if r["nash_conv"] >= psro_row["final_nash_conv"]]
    summary = {"late_median": late[len(late) // 2], "share_below_psro": 1 - len(above) / len(history),
               "below_psro_after_s": above[-1] if above else 0.0}
    neupl_row["summary"] = summary
    print(f"  NeuPL's median NashConv over the last two-thirds of its iterations {summary['late_median']:.4f}; "
          f"{100 * summary['share_below_psro']:.0f}% of its iterations below PSRO's final "
          f"{psro_row['final_nash_conv']:.4f}, and every one after {summary['below_psro_after_s']:.1f} s", flush=True)
    rpp = relative_population_performance(neupl, psro)
    print(f"  relative population performance of NeuPL's population against PSRO's: {rpp:+.4f}", flush=True)
    results.update(psro=psro_row, neupl=neupl_row, equal_time=equal, relative_population_performance=rpp)

    if args.simplex > 0:
        simplex_row, simplex = neupl_run(args.game, args.population, args.seconds, simplex=args.simplex,
                                         predict_opponent=args.predict_opponent)
        shortfalls = simplex_shortfalls(simplex)
        simplex_row["responses"] = shortfalls
        results["simplex"] = simplex_row
        print(f"Simplex-NeuPL (p={args.simplex}): NashConv {simplex_row['final_nash_conv']:.4f} (NeuPL's "
              f"{neupl_row['final_nash_conv']:.4f}); over {shortfalls['draws']} mixtures its response falls short "
              f"of the exact best response by {shortfalls['mean_shortfall']:.4f} on average "
              f"({100 * shortfalls['mean_shortfall_share']:.2f}% of the payoff range), "
              f"{shortfalls['max_shortfall']:.4f} at most", flush=True)
        if "opponent_prediction_error" in shortfalls:
            print(f"  its opponent head, against the exact posterior over those mixtures: mean total-variation "
                  f"distance {shortfalls['opponent_prediction_error']:.4f}, reach-weighted", flush=True)
    results["command"] = command_timing()
    print(f"gamelab neupl kuhn_poker --iterations 10: {results['command']['command_wall_s']:.1f} s as a command, "
          f"{results['command']['run_s']:.1f} s of it training", flush=True)
    if args.plot:
        plot(results, args.plot)
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
