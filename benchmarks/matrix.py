"""Matrix-game solving: gamelab against its anchors, in one process and one run.

    python -m benchmarks.matrix [--size 1000] [--batch 4096] [--device cpu] [--json]

1) A seeded random ``size x size`` zero-sum game (payoffs uniform on [-1, 1]) solved to
   NashConv <= 1e-6: gamelab's ``solve_zero_sum`` (batched interior point + exact
   polish) against ``nashpy.Game(A).linear_program()``. Both results' NashConv is
   recomputed independently in numpy.
2) ``batch`` random 8x8 bimatrix (general-sum) games: gamelab's batched Lemke-Howson in
   one call against pygambit's ``lcp_solve`` (C++ Lemke-Howson) called once per game.
   nashpy's ``lemke_howson`` is not used as an anchor here: on float payoffs its
   integer-pivoting tableau overflows and does not terminate on some of these games.

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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench matrix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="actions per player of the zero-sum game")
    parser.add_argument("--batch", type=int, default=4096, help="number of 8x8 bimatrix games")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-anchor", action="store_true", help="skip nashpy and pygambit")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    results = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "zero_sum": zero_sum_benchmark(args.size, device, not args.no_anchor),
        "bimatrix": bimatrix_benchmark(args.batch, device, not args.no_anchor),
    }
    zero_sum, bimatrix = results["zero_sum"], results["bimatrix"]
    print(f"device {device}, torch threads {results['torch_threads']}")
    print(f"{args.size}x{args.size} zero-sum to NashConv <= 1e-6:")
    print(f"  gamelab  {zero_sum['gamelab_seconds']:8.3f} s   NashConv {zero_sum['gamelab_nash_conv']:.2e}")
    if "nashpy_seconds" in zero_sum:
        print(f"  nashpy   {zero_sum['nashpy_seconds']:8.3f} s   NashConv {zero_sum['nashpy_nash_conv']:.2e}")
        print(f"  ratio nashpy / gamelab: {zero_sum['speedup']:.1f}x")
    print(f"{args.batch} random 8x8 bimatrix games, one equilibrium each:")
    print(f"  gamelab  {bimatrix['gamelab_seconds']:8.3f} s   max NashConv {bimatrix['gamelab_max_nash_conv']:.2e}"
          f"   converged {bimatrix['gamelab_converged']}/{args.batch}")
    if "pygambit_seconds" in bimatrix:
        print(f"  pygambit {bimatrix['pygambit_seconds']:8.3f} s   max NashConv {bimatrix['pygambit_max_nash_conv']:.2e}")
        print(f"  ratio pygambit / gamelab: {bimatrix['speedup']:.1f}x")
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
