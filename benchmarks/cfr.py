"""CFR+ on Leduc poker: gamelab against OpenSpiel's C++ solver and LiteEFG, in one run.

    python -m benchmarks.cfr [--target 1e-3] [--device cpu] [--compile] [--skip-liars-dice] [--json]

1) Time to NashConv <= ``target`` on ``leduc_poker`` for gamelab's ``CFRPlusSolver``,
   OpenSpiel's C++ ``pyspiel.CFRPlusSolver`` and LiteEFG's CFR+ baseline (its own
   linear averaging). NashConv is checked every 10 iterations for each of them (so none
   is charged for iterations past the target that another is not) and the checks are
   excluded from the timed loop; each library's NashConv comes from its own
   routine (gamelab's is verified against OpenSpiel's elsewhere in the tests).
   Then the path a user takes: ``gamelab solve leduc_poker --target-nash-conv target
   --json`` in five fresh processes. The median of their reported ``seconds`` (the solve
   with every NashConv check it makes, spaced by their measured cost) is compared with the
   anchors' check-free time; the command's wall time (Python start-up, imports, compiling
   the tree) is printed too.
2) Iterations per second on ``liars_dice`` for gamelab and OpenSpiel's C++ CFR+.

On a CUDA device gamelab is also timed replaying each iteration as a CUDA graph
(``cuda_graph=True``). With ``--compile`` gamelab is also timed with ``torch.compile``; its
one-time compilation is reported as warm-up, outside the timed loop, like the anchors' own set-up (OpenSpiel
building its solver, LiteEFG generating its game file). Ratios printed are anchor time /
gamelab time.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from games.adapters.openspiel import extensive_form_from_openspiel
from solvers.cfr import CFRPlusSolver
from solvers.sequence_form import nash_conv


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gamelab_to_target(
    name: str, target: float, device: torch.device, check_every: int, limit: int, compile: bool = False,
    cuda_graph: bool = False,
) -> dict:
    game = extensive_form_from_openspiel(name).to(device)
    start = time.perf_counter()
    warm = CFRPlusSolver(game, compile=compile, cuda_graph=cuda_graph)
    warm.step()  # warm-up: caches the layout, first kernels (and compiles, with compile=True)
    warm_up = time.perf_counter() - start
    solver = CFRPlusSolver(game, compile=compile, cuda_graph=cuda_graph)
    # The iteration is a pure function of the state tensors, and both solvers hold the same
    # game and flags, so the timed solver reuses the warm-up's compiled function (or record, or
    # CUDA graph, into whose buffers it copies its state on the first call) instead of making
    # its own.
    solver._iterate_function = warm._iterate_function
    seconds, value = 0.0, float("inf")
    while solver.iteration < limit:
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(check_every):
            solver.step()
        _synchronize(device)
        seconds += time.perf_counter() - start
        value = float(nash_conv(game, solver.average_policy()))
        if value <= target:
            break
    return {"iterations": solver.iteration, "seconds": seconds, "nash_conv": value,
            "iterations_per_second": solver.iteration / seconds, "warm_up_seconds": warm_up}


def openspiel_to_target(name: str, target: float, check_every: int, limit: int) -> dict:
    import pyspiel

    game = pyspiel.load_game(name)
    solver = pyspiel.CFRPlusSolver(game)
    seconds, value, iterations = 0.0, float("inf"), 0
    while iterations < limit:
        start = time.perf_counter()
        for _ in range(check_every):
            solver.evaluate_and_update_policy()
        seconds += time.perf_counter() - start
        iterations += check_every
        value = pyspiel.nash_conv(game, solver.average_policy())
        if value <= target:
            break
    return {"iterations": iterations, "seconds": seconds, "nash_conv": value,
            "iterations_per_second": iterations / seconds}


def liteefg_to_target(name: str, target: float, check_every: int, limit: int) -> dict:
    import LiteEFG
    import pyspiel
    from LiteEFG.baselines import CFRplus

    env = LiteEFG.OpenSpielEnv(pyspiel.load_game(name), traverse_type="Enumerate")
    graph = CFRplus.graph()
    env.set_graph(graph)
    seconds, value, iterations = 0.0, float("inf"), 0
    while iterations < limit:
        start = time.perf_counter()
        for _ in range(check_every):
            graph.update_graph(env)
            env.update_strategy(graph.current_strategy(), update_best=False)
        seconds += time.perf_counter() - start
        iterations += check_every
        value = float(sum(env.exploitability(graph.current_strategy(), "linear-avg-iterate")))
        if value <= target:
            break
    return {"iterations": iterations, "seconds": seconds, "nash_conv": value,
            "iterations_per_second": iterations / seconds}


def iterations_per_second(name: str, device: torch.device, iterations: int) -> dict:
    import pyspiel

    game = extensive_form_from_openspiel(name).to(device)
    rates = {}
    for label, options in [("gamelab", {}), *([("gamelab_cuda_graph", {"cuda_graph": True})] if device.type == "cuda" else [])]:
        solver = CFRPlusSolver(game, **options)
        solver.step()
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            solver.step()
        _synchronize(device)
        rates[f"{label}_iterations_per_second"] = iterations / (time.perf_counter() - start)
    ours = max(rates.values())
    spiel = pyspiel.CFRPlusSolver(pyspiel.load_game(name))
    spiel.evaluate_and_update_policy()  # warm-up, like gamelab's first step
    start = time.perf_counter()
    anchor_iterations = max(5, iterations // 10)
    for _ in range(anchor_iterations):
        spiel.evaluate_and_update_policy()
    theirs = anchor_iterations / (time.perf_counter() - start)
    return {**rates, "openspiel_iterations_per_second": theirs, "ratio": ours / theirs}


def command_line_to_target(name: str, target: float, repeats: int = 5) -> dict:
    """``gamelab solve NAME --target-nash-conv TARGET --json`` in ``repeats`` fresh processes: the
    median of their own ``seconds`` (each a whole solve, checks included), every run's figure, and
    the median of the commands' wall times. A single run on a shared machine can be 30% off."""
    import statistics
    import subprocess
    import sys

    runs, walls = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "marl.cli", "solve", name, "--target-nash-conv", str(target),
                                 "--json"], capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    middle = sorted(runs, key=lambda payload: payload["seconds"])[len(runs) // 2]
    return {"seconds": middle["seconds"], "command_seconds": statistics.median(walls),
            "iterations": middle["iterations"], "nash_conv": middle["nash_conv"],
            "iterations_per_second": middle["iterations"] / middle["seconds"],
            "runs_seconds": [payload["seconds"] for payload in runs]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench cfr", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=20_000, help="give up after this many iterations")
    parser.add_argument("--skip-liteefg", action="store_true")
    parser.add_argument("--skip-liars-dice", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time gamelab with torch.compile")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    results = {"device": str(device), "torch_threads": torch.get_num_threads(), "target": args.target}
    results["gamelab"] = gamelab_to_target("leduc_poker", args.target, device, 10, args.limit)
    if device.type == "cuda":
        results["gamelab_cuda_graph"] = gamelab_to_target("leduc_poker", args.target, device, 10, args.limit, cuda_graph=True)
    if args.compile:
        results["gamelab_compiled"] = gamelab_to_target("leduc_poker", args.target, device, 10, args.limit, compile=True)
    if args.device == "cpu":
        results["gamelab_command"] = command_line_to_target("leduc_poker", args.target)
    results["openspiel_cpp"] = openspiel_to_target("leduc_poker", args.target, 10, args.limit)
    if not args.skip_liteefg:
        results["liteefg"] = liteefg_to_target("leduc_poker", args.target, 10, args.limit)
    print(f"CFR+ on leduc_poker to NashConv <= {args.target} (device {device}, {results['torch_threads']} threads; "
          "gamelab runs small CPU games on one of them, see solvers.sequence_form.intra_op_threads):")
    for label in ("gamelab", "gamelab_cuda_graph", "gamelab_compiled", "gamelab_command", "openspiel_cpp", "liteefg"):
        if label in results:
            r = results[label]
            warm = f"  (warm-up {r['warm_up_seconds']:.1f} s, not timed)" if "warm_up_seconds" in r else ""
            if "command_seconds" in r:
                spread = ", ".join(f"{seconds:.3f}" for seconds in r["runs_seconds"])
                warm = (f"  (median of {len(r['runs_seconds'])} commands: {spread} s, checks included; "
                        f"the whole command {r['command_seconds']:.2f} s)")
            print(f"  {label:17s} {r['seconds']:8.2f} s  {r['iterations']:6d} iterations  "
                  f"{r['iterations_per_second']:8.1f} it/s  NashConv {r['nash_conv']:.2e}{warm}")
    for ours in ("gamelab", "gamelab_cuda_graph", "gamelab_compiled", "gamelab_command"):
        for label in ("openspiel_cpp", "liteefg"):
            if ours in results and label in results:
                ratio = results[label]["seconds"] / results[ours]["seconds"]
                results[f"ratio_{label}_over_{ours}"] = ratio
                print(f"  time-to-target ratio {label} / {ours}: {ratio:.1f}x")
    if not args.skip_liars_dice:
        results["liars_dice"] = iterations_per_second("liars_dice", device, 100)
        r = results["liars_dice"]
        graph = (f", as a CUDA graph {r['gamelab_cuda_graph_iterations_per_second']:.2f}"
                 if "gamelab_cuda_graph_iterations_per_second" in r else "")
        print(f"liars_dice CFR+ iterations/s: gamelab {r['gamelab_iterations_per_second']:.2f}{graph}, "
              f"OpenSpiel C++ {r['openspiel_iterations_per_second']:.2f}, ratio {r['ratio']:.1f}x (gamelab's best)")
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
