"""Reading Gambit ``.nfg`` files: gamelab's reader against pygambit's, in one process and one run.

    python -m benchmarks.nfg [--sizes 100 300 1000] [--anchor-limit 300] [--json]

For each size ``n``, a seeded random ``n x n`` zero-sum game is written in the payoff
version with 6-decimal payoffs (``0.123456 -0.123456`` per profile, the way random games
are usually shared), then read:

- gamelab: ``games.nfg.read_nfg``, the best of three reads;
- pygambit: ``pygambit.read_nfg`` (Gambit's C++ reader), once, for sizes up to
  ``--anchor-limit`` (on a 1000 x 1000 file it had not finished after 6 minutes here).

Each row prints the file size, both times, the ratio pygambit / gamelab, and the growth
of gamelab's peak resident memory over the payoff table's size. Warm-up (imports, a first
small read) is excluded for both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np


def write_random_zero_sum(path: str, size: int, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).integers(-10**6, 10**6, size=(size, size)) / 10**6
    with open(path, "w") as handle:
        handle.write(f'NFG 1 R "random {size}x{size} zero-sum" {{ "Row" "Column" }} {{ {size} {size} }}\n\n')
        for column in range(size):
            handle.write("\n".join(f"{value:.6f} {-value:.6f}" for value in matrix[:, column]) + "\n")
    return matrix


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="gamelab bench nfg", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--anchor-limit", type=int, default=300, help="largest size pygambit reads (default 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)

    from games.nfg import read_nfg

    try:
        import pygambit
    except ImportError:
        pygambit = None
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        warm = os.path.join(folder, "warm.nfg")
        write_random_zero_sum(warm, 10)
        read_nfg(warm)
        if pygambit is not None:
            pygambit.read_nfg(warm)
        for size in args.sizes:
            path = os.path.join(folder, f"random{size}.nfg")
            matrix = write_random_zero_sum(path, size)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            times = []
            for _ in range(3):
                started = time.perf_counter()
                game = read_nfg(path)
                times.append(time.perf_counter() - started)
            growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            assert np.array_equal(game.payoffs[0].numpy(), matrix), "gamelab read other payoffs"
            row = {"size": size, "file_mb": os.path.getsize(path) / 1e6, "gamelab_s": min(times),
                   "payoffs_mb": 2 * size * size * 8 / 1e6, "peak_rss_growth_mb": growth_mb,
                   "pygambit_s": None, "ratio": None}
            if pygambit is not None and size <= args.anchor_limit:
                started = time.perf_counter()
                pygambit.read_nfg(path)
                row["pygambit_s"] = time.perf_counter() - started
                row["ratio"] = row["pygambit_s"] / row["gamelab_s"]
            rows.append(row)
            anchor = "not run" if row["pygambit_s"] is None else f"{row['pygambit_s']:.3f} s, ratio {row['ratio']:.1f}x"
            print(f"{size}x{size} ({row['file_mb']:.1f} MB): gamelab {row['gamelab_s']:.3f} s, pygambit {anchor}; "
                  f"peak memory growth {growth_mb:.0f} MB for {row['payoffs_mb']:.0f} MB of payoffs", flush=True)
    result = {"benchmark": "nfg", "rows": rows}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
