"""Simulation speed of batched particle worlds: gamelab against mpe2 and VMAS, in one run.

    python -m benchmarks.sim [--device cpu] [--batches 1,64,1024,4096,16384] [--seconds 1.5] [--json]
    gamelab bench sim [--json]

One env-step is one joint step of one copy: B copies stepped once count B env-steps.
Every library plays uniformly random discrete actions drawn inside the timed loop, in
25-step episodes with every copy reset at the end of each (gamelab resets itself; VMAS
is reset with its vectorized ``reset()``; mpe2 with ``reset()``). Measured:

1. gamelab ``spread`` (N = 3) at each B;
2. mpe2 ``simple_spread_v3`` (N = 3), one ParallelEnv in this process;
3. VMAS ``simple_spread`` (N = 3) on the same device at each B;
4. gamelab ``spread`` and VMAS ``simple_spread`` with N = 10 at B = 1024.

Each measurement runs in its own Python process (so that one library's allocations and
thread pools do not slow the next), runs whole episodes for at least ``--seconds`` after
a warm-up episode, and keeps the best of ``--repeats`` runs (the machines are shared and
noisy). Printed ratios are gamelab env-steps/s over the anchor's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import torch

import scenarios

EPISODE = 25


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(run_episode: Callable[[], None], env_steps_per_episode: int, seconds: float, repeats: int,
          device: torch.device) -> float:
    """Best env-steps/s over ``repeats`` timed runs of whole episodes, after one warm-up episode."""
    run_episode()
    best = 0.0
    for _ in range(repeats):
        _synchronize(device)
        start, episodes = time.perf_counter(), 0
        while True:
            run_episode()
            episodes += 1
            _synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, episodes * env_steps_per_episode / elapsed)
    return best


def gamelab_rate(batch: int, agents: int, device: torch.device, seconds: float, repeats: int) -> float:
    game = scenarios.make("spread", num_envs=batch, device=device, seed=0, num_agents=agents, max_cycles=EPISODE)
    game.reset()
    names = game.possible_agents

    def episode() -> None:
        for _ in range(EPISODE):
            game.step({agent: torch.randint(5, (batch,), device=device) for agent in names})

    return _rate(episode, EPISODE * batch, seconds, repeats, device)


def vmas_rate(batch: int, agents: int, device: torch.device, seconds: float, repeats: int) -> float | None:
    try:
        import vmas
    except ImportError:
        return None
    env = vmas.make_env(
        "simple_spread", num_envs=batch, device=device, continuous_actions=False, n_agents=agents, seed=0,
        max_steps=EPISODE,
    )
    env.reset()
    count = len(env.agents)

    def episode() -> None:
        for _ in range(EPISODE):
            env.step([torch.randint(5, (batch,), device=device) for _ in range(count)])
        env.reset()

    return _rate(episode, EPISODE * batch, seconds, repeats, device)


def mpe2_rate(seconds: float, repeats: int) -> float | None:
    try:
        from mpe2 import simple_spread_v3
    except ImportError:
        return None
    import numpy as np

    env = simple_spread_v3.parallel_env(N=3, max_cycles=EPISODE)
    rng = np.random.default_rng(0)
    env.reset(seed=0)

    def episode() -> None:
        env.reset()
        while env.agents:
            env.step({agent: int(rng.integers(5)) for agent in env.agents})

    return _rate(episode, EPISODE, seconds, repeats, torch.device("cpu"))


def measure(library: str, batch: int, agents: int, device: torch.device, seconds: float, repeats: int) -> float | None:
    """One measurement in a fresh Python process; ``None`` when the library is missing."""
    import subprocess

    command = [sys.executable, "-m", "benchmarks.sim", "--one", f"{library}:{batch}:{agents}",
               "--device", str(device), "--seconds", str(seconds), "--repeats", str(repeats)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_here(spec: str, device: torch.device, seconds: float, repeats: int) -> float | None:
    library, batch, agents = spec.split(":")
    if library == "gamelab":
        return gamelab_rate(int(batch), int(agents), device, seconds, repeats)
    if library == "vmas":
        return vmas_rate(int(batch), int(agents), device, seconds, repeats)
    return mpe2_rate(seconds, repeats)


def run(device: torch.device, batches: list[int], seconds: float, repeats: int, wide: int = 1024) -> dict:
    results: dict = {"device": str(device), "threads": torch.get_num_threads(), "episode_steps": EPISODE}
    mpe2 = measure("mpe2", 1, 3, device, seconds, repeats)
    results["mpe2_simple_spread_v3"] = mpe2
    rows = []
    for batch in batches:
        ours = measure("gamelab", batch, 3, device, seconds, repeats)
        theirs = measure("vmas", batch, 3, device, seconds, repeats)
        rows.append({
            "num_envs": batch,
            "gamelab": ours,
            "vmas": theirs,
            "vs_vmas": None if theirs is None else ours / theirs,
            "vs_mpe2": None if mpe2 is None else ours / mpe2,
        })
        _print_row(rows[-1])
    results["spread_n3"] = rows
    ours = measure("gamelab", wide, 10, device, seconds, repeats)
    theirs = measure("vmas", wide, 10, device, seconds, repeats)
    results["spread_n10"] = {"num_envs": wide, "gamelab": ours, "vmas": theirs,
                             "vs_vmas": None if theirs is None else ours / theirs}
    return results


def _print_row(row: dict) -> None:
    vmas = "n/a" if row["vmas"] is None else f"{row['vmas']:>13,.0f}"
    ratio = "" if row["vs_vmas"] is None else f"  {row['vs_vmas']:6.1f}x VMAS"
    versus_mpe2 = "" if row["vs_mpe2"] is None else f"  {row['vs_mpe2']:8.0f}x mpe2"
    print(f"  B={row['num_envs']:>6}  gamelab {row['gamelab']:>13,.0f}  VMAS {vmas}{ratio}{versus_mpe2}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gamelab bench sim", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,64,1024,4096,16384", help="comma-separated B values")
    parser.add_argument("--seconds", type=float, default=1.5, help="minimum timed seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the best is kept")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # LIBRARY:B:N, one measurement (used internally)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.one:
        print(json.dumps(_measure_here(args.one, device, args.seconds, args.repeats)))
        return 0
    batches = [int(b) for b in args.batches.split(",") if b]
    print(f"env-steps/s, spread N=3, random discrete actions, {EPISODE}-step episodes, device {device}, "
          f"{torch.get_num_threads()} threads", flush=True)
    results = run(device, batches, args.seconds, args.repeats)
    mpe2 = results["mpe2_simple_spread_v3"]
    print(f"  mpe2 simple_spread_v3, one process: {mpe2:,.0f} env-steps/s" if mpe2 else "  mpe2 not installed")
    wide = results["spread_n10"]
    wide_vmas = "n/a" if wide["vmas"] is None else f"{wide['vmas']:,.0f} ({wide['vs_vmas']:.1f}x)"
    print(f"  N=10, B={wide['num_envs']}: gamelab {wide['gamelab']:,.0f}  VMAS {wide_vmas}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
