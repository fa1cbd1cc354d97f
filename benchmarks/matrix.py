"""Matrix-game solving: gamelab against its anchors, in one process and one run.

    python -m benchmarks.matrix [--size 1000] [--batch 4096] [--device cpu] [--n-player] [--nash-sgd]
        [--skip-two-player] [--json]

1) A seeded random ``size x size`` zero-sum game (payoffs uniform on [-1, 1]) solved to
   NashConv <= 1e-6: gamelab's ``solve_zero_sum`` (batched interior point + exact
   polish) against ``nashpy.Game(A).linear_program()``. Both results' NashConv is
   recomputed independently in numpy.
2) ``batch`` random 8x8 bimatrix (general-sum) games: gamelab's batched Lemke-Howson in
   one call against pygambit's ``lcp_solve`` (C++ Lemke-Howson) called once per game.
   nashpy's ``lemke_howson`` is not used as an anchor here: on float payoffs its
   integer-pivoting tableau overflows and does not terminate on some of these games.

3) N-player games (``--n-player``): seeded random 3-player games of 3x3x3, 4x4x4 and
   5x5x5 actions and 4-player games of 3^4, ``--games`` of each: gamelab's ``auto``
   (support enumeration with Newton's method) against pygambit's ``enumpoly``, ``gnm`` and
   ``ipa``, each given up to ``--anchor-limit`` seconds per game. Reported per method: the
   fraction of games solved to NashConv <= 1e-9 (recomputed by gamelab) and the mean seconds
   per game.
4) Nash-SGD's iteration (``--nash-sgd``): microseconds per iteration of ``nash_sgd`` with exact
   values on one seeded random game of 2x2x2, 3x3x3, 4x4x4 and 3^4 actions, eager and replayed
   (the default), the best of three 1,000-iteration runs after a warm-up; then one call on
   ``--batch`` random 4x4x4 games, per iteration. No anchor: Gemp et al.'s code is not a
   dependency; the figure answers the goal of tens of microseconds per iteration.

Times are wall-clock seconds of the solve alone (game construction excluded); on CUDA
the device is synchronized before each reading. Printed ratios are anchor / gamelab.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from games import catalog
from solvers.lemke_howson import lemke_howson
from solvers.zero_sum import solve_zero_sum


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def numpy_nash_conv(matrix_row: np.ndarray, matrix_column: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """NashConv of (x, y) in the bimatrix game, in numpy only (independent of gamelab)."""
    row_gain = (matrix_row @ y).max() - x @ matrix_row @ y
    column_gain = (x @ matrix_column).max() - x @ matrix_column @ y
    return float(row_gain + column_gain)


def zero_sum_benchmark(size: int, device: torch.device, run_anchor: bool) -> dict:
    game = catalog.random_zero_sum(size, size, seed=0, device=device)
    matrix = game.payoffs[0].cpu().numpy()
    solve_zero_sum(catalog.random_zero_sum(20, 20, seed=1, device=device))  # warm-up (kernels, BLAS)
    _synchronize(device)
    start = time.perf_counter()
    solution, report = solve_zero_sum(game, tolerance=1e-6)
    _synchronize(device)
    ours = time.perf_counter() - start
    x, y = (s.cpu().numpy() for s in solution.strategies)
    out = {
        "size": size,
        "gamelab_seconds": ours,
        "gamelab_nash_conv": numpy_nash_conv(matrix, -matrix, x, y),
        "gamelab_iterations": report.iterations,
    }
    if run_anchor:
        import nashpy

        start = time.perf_counter()
        x_anchor, y_anchor = nashpy.Game(matrix).linear_program()
        out["nashpy_seconds"] = time.perf_counter() - start
        out["nashpy_nash_conv"] = numpy_nash_conv(matrix, -matrix, np.asarray(x_anchor), np.asarray(y_anchor))
        out["speedup"] = out["nashpy_seconds"] / ours
    return out


def bimatrix_benchmark(batch: int, device: torch.device, run_anchor: bool) -> dict:
    game = catalog.random_game([8, 8], batch_size=batch, seed=0, device=device)
    lemke_howson(catalog.random_game([8, 8], batch_size=8, seed=1, device=device))  # warm-up
    _synchronize(device)
    start = time.perf_counter()
    result = lemke_howson(game)
    _synchronize(device)
    ours = time.perf_counter() - start
    payoffs = game.payoffs.cpu().numpy()
    rows, columns = result.row_strategy.cpu().numpy(), result.column_strategy.cpu().numpy()
    worst = max(numpy_nash_conv(payoffs[i, 0], payoffs[i, 1], rows[i], columns[i]) for i in range(batch))
    out = {
        "games": batch,
        "gamelab_seconds": ours,
        "gamelab_max_nash_conv": worst,
        "gamelab_converged": int(result.converged.sum()),
    }
    if run_anchor:
        import pygambit

        start = time.perf_counter()
        worst_anchor = 0.0
        for i in range(batch):
            gambit_game = pygambit.Game.from_arrays(payoffs[i, 0], payoffs[i, 1])
            profile = pygambit.nash.lcp_solve(gambit_game, rational=False, stop_after=1).equilibria[0]
            x, y = ([float(p) for _, p in profile[player]] for player in gambit_game.players)
            worst_anchor = max(worst_anchor, numpy_nash_conv(payoffs[i, 0], payoffs[i, 1], np.array(x), np.array(y)))
        out["pygambit_seconds"] = time.perf_counter() - start
        out["pygambit_max_nash_conv"] = worst_anchor
        out["speedup"] = out["pygambit_seconds"] / ours
    return out


N_PLAYER_SHAPES = [(3, 3, 3), (4, 4, 4), (5, 5, 5), (3, 3, 3, 3)]


def _timed_gambit(game, method: str, limit: float) -> tuple[float, float | None]:
    """pygambit's ``method`` on ``game`` in a child process killed after ``limit`` seconds: (seconds, NashConv)."""
    import multiprocessing

    import pygambit  # imported here, before the fork, so the child's clock sees the solve alone

    from solvers.exploitability import nash_conv
    from solvers.gambit import profile_to_tensors, to_pygambit

    solvers = {"enumpoly": lambda g: pygambit.nash.enumpoly_solve(g, stop_after=1),
               "gnm": pygambit.nash.gnm_solve, "ipa": pygambit.nash.ipa_solve}
    converted = to_pygambit(game)

    def work(queue) -> None:
        started = time.perf_counter()
        try:
            found = solvers[method](converted).equilibria
            seconds = time.perf_counter() - started
            gap = float(nash_conv(game, profile_to_tensors(found[0], game))) if found else None
        except Exception:  # noqa: BLE001 - a method that fails on a game counts as unsolved
            seconds, gap = time.perf_counter() - started, None
        queue.put((seconds, gap))

    queue = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(target=work, args=(queue,))
    process.start()
    process.join(limit)
    if process.is_alive():
        process.kill()
        process.join()
        return limit, None
    return queue.get() if not queue.empty() else (limit, None)


def n_player_benchmark(games: int, limit: float, run_anchor: bool) -> dict:
    from games.loading import load_game
    from solvers import registry

    rows = {}
    for shape in N_PLAYER_SHAPES:
        label = "x".join(map(str, shape))
        results: dict[str, list] = {"gamelab": []}
        methods = ("enumpoly", "gnm", "ipa") if run_anchor else ()
        for method in methods:
            results[f"pygambit-{method}"] = []
        # Warm-up, not timed: the first solve of a shape pays one-time set-up (pygambit is timed in a child
        # process, on the solve alone).
        registry.solve(load_game(f"random({','.join(map(str, shape))},seed=1000000)", dtype=torch.float64))
        for seed in range(games):
            game = load_game(f"random({','.join(map(str, shape))},seed={seed})", dtype=torch.float64)
            started = time.perf_counter()
            solved = registry.solve(game)
            results["gamelab"].append((time.perf_counter() - started, solved.nash_conv))
            for method in methods:
                results[f"pygambit-{method}"].append(_timed_gambit(game, method, limit))
        rows[label] = {name: {"solved": sum(gap is not None and gap <= 1e-9 for _, gap in runs) / len(runs),
                              "mean_seconds": float(np.mean([seconds for seconds, _ in runs]))}
                       for name, runs in results.items()}
    return rows


def nash_sgd_benchmark(batch: int, device: torch.device, iterations: int = 1000) -> dict:
    from solvers.nash_sgd import nash_sgd

    rows = {}
    for shape in ([2, 2, 2], [3, 3, 3], [4, 4, 4], [3, 3, 3, 3]):
        game = catalog.random_game(shape, seed=0, device=device)
        row = {}
        for mode, trace in (("eager", False), ("replayed", True)):
            nash_sgd(game, iterations=20, trace=trace)  # warm-up (allocator, the record)
            seconds = []
            for _ in range(3):
                _synchronize(device)
                start = time.perf_counter()
                nash_sgd(game, iterations=iterations, trace=trace)
                _synchronize(device)
                seconds.append(time.perf_counter() - start)
            row[f"{mode}_microseconds"] = min(seconds) / iterations * 1e6
        rows["x".join(map(str, shape))] = row
    games = catalog.random_game([4, 4, 4], seed=0, batch_size=batch, device=device)
    nash_sgd(games, iterations=20)
    _synchronize(device)
    start = time.perf_counter()
    nash_sgd(games, iterations=200)
    _synchronize(device)
    per_iteration = (time.perf_counter() - start) / 200
    return {"single_game": rows, "batch": {"games": batch, "shape": "4x4x4", "milliseconds_per_iteration":
                                            per_iteration * 1e3, "microseconds_per_game_iteration": per_iteration / batch * 1e6}}


def _print_nash_sgd(result: dict) -> None:
    print("Nash-SGD, exact values, microseconds per iteration (best of 3 runs of 1,000):")
    for label, row in result["single_game"].items():
        print(f"  {label:8s} eager {row['eager_microseconds']:7.1f}   replayed {row['replayed_microseconds']:7.1f}")
    batch = result["batch"]
    print(f"  {batch['games']} games of {batch['shape']} in one call: {batch['milliseconds_per_iteration']:.2f} ms per "
          f"iteration, {batch['microseconds_per_game_iteration']:.2f} us per game")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench matrix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="actions per player of the zero-sum game")
    parser.add_argument("--batch", type=int, default=4096,
                        help="games in one call: 8x8 bimatrix games (section 2), 4x4x4 games (section 4)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-anchor", action="store_true", help="skip nashpy and pygambit")
    parser.add_argument("--n-player", action="store_true", help="also run the N-player comparison (section 3)")
    parser.add_argument("--games", type=int, default=5, help="N-player games of each shape")
    parser.add_argument("--anchor-limit", type=float, default=30.0, help="seconds a pygambit method gets per game")
    parser.add_argument("--nash-sgd", action="store_true", help="also time Nash-SGD's iteration (section 4)")
    parser.add_argument("--skip-two-player", action="store_true", help="skip sections 1 and 2")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if args.skip_two_player and not (args.n_player or args.nash_sgd):
        parser.error("--skip-two-player leaves nothing to run: add --n-player or --nash-sgd")
    device = torch.device(args.device)
    results: dict = {}
    if not args.skip_two_player:
        results = {
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "zero_sum": zero_sum_benchmark(args.size, device, not args.no_anchor),
            "bimatrix": bimatrix_benchmark(args.batch, device, not args.no_anchor),
        }
        _print_two_player(results, args.size, args.batch)
    if args.n_player:
        results["n_player"] = n_player_benchmark(args.games, args.anchor_limit, not args.no_anchor)
        _print_n_player(results["n_player"])
    if args.nash_sgd:
        results["nash_sgd"] = nash_sgd_benchmark(args.batch, device)
        _print_nash_sgd(results["nash_sgd"])
    if args.json:
        print(json.dumps(results))
    return results


def _print_two_player(results: dict, size: int, batch: int) -> None:
    zero_sum, bimatrix = results["zero_sum"], results["bimatrix"]
    print(f"device {results['device']}, torch threads {results['torch_threads']}")
    print(f"{size}x{size} zero-sum to NashConv <= 1e-6:")
    print(f"  gamelab  {zero_sum['gamelab_seconds']:8.3f} s   NashConv {zero_sum['gamelab_nash_conv']:.2e}")
    if "nashpy_seconds" in zero_sum:
        print(f"  nashpy   {zero_sum['nashpy_seconds']:8.3f} s   NashConv {zero_sum['nashpy_nash_conv']:.2e}")
        print(f"  ratio nashpy / gamelab: {zero_sum['speedup']:.1f}x")
    print(f"{batch} random 8x8 bimatrix games, one equilibrium each:")
    print(f"  gamelab  {bimatrix['gamelab_seconds']:8.3f} s   max NashConv {bimatrix['gamelab_max_nash_conv']:.2e}"
          f"   converged {bimatrix['gamelab_converged']}/{batch}")
    if "pygambit_seconds" in bimatrix:
        print(f"  pygambit {bimatrix['pygambit_seconds']:8.3f} s   max NashConv {bimatrix['pygambit_max_nash_conv']:.2e}")
        print(f"  ratio pygambit / gamelab: {bimatrix['speedup']:.1f}x")


def _print_n_player(rows: dict) -> None:
    print("N-player random games to NashConv <= 1e-9 (fraction solved, mean seconds per game):")
    for label, methods in rows.items():
        print(f"  {label:8s} " + "   ".join(f"{name} {row['solved']:.0%} {row['mean_seconds']:.3f} s"
                                          for name, row in methods.items()))


if __name__ == "__main__":
    main()
