"""Tournament throughput on ``tag``: in-process, with Ray, the SQLite cost, and mpe2 as the anchor.

    python -m benchmarks.tournament [--matches 1000] [--players 16] [--device cpu] [--json]
    gamelab bench tournament [--json]

The tournament: 16 players, every pair including self-play (136 pairs), 1,000 matches per
pair (136,000 matches), seats alternating. A match is one 25-step episode of ``tag`` in
which one player's three predators chase the other player's prey. The players:

- 8 trained-network checkpoints (``policy.pt`` files of MADDPG actors, 64-64 hidden
  units; their weights are freshly initialised with 8 seeds: the cost of a match does not
  depend on what the weights learned);
- 6 scripted ``scenarios.tag.pursuit_policy`` variants (lead 0, 0.15, 0.3; margin 0.5, 0.8);
- 2 uniform random players.

Measured in this process, one after another:

1. in-process: matches per second of playing and storing every match (from the first
   block to the last stored row; loading the players and rating excluded);
2. the SQLite bookkeeping alone: the same rows inserted block by block into a new
   database, seconds per match;
3. Ray (a local Ray with ``--ray-cpus`` CPUs, started before timing): matches per
   second, and its overhead per match against in-process;
4. the anchor: mpe2's ``simple_tag_v3`` (the same game) played one episode at a time
   through its PettingZoo API with uniform random actions (its cheapest players), as a
   user of PettingZoo would run matches; the ratio is gamelab's in-process rate over it.

Goals (2 CPU cores): >= 20,000 matches/s in-process, and Ray adds <= 10% per match.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

from marl.tournaments.config import parse_config
from marl.tournaments.run import open_store, run_tournament


def players(folder: str, count: int) -> list[dict]:
    """``count`` players: networks, scripted pursuit variants and random ones (see the docstring)."""
    import scenarios
    from marl.maddpg import MADDPG, GameSpec, MADDPGConfig
    from marl.train import save_policy

    spec = GameSpec.of(scenarios.make("tag", num_envs=1))
    networks = count // 2
    scripted = [(lead, margin) for margin in (0.8, 0.5) for lead in (0.0, 0.15, 0.3)]
    entries = []
    for seed in range(networks):
        save_policy(os.path.join(folder, f"net{seed}.pt"), MADDPG(spec, MADDPGConfig(seed=seed), "cpu"), "tag", {})
        entries.append({"name": f"net{seed}", "kind": "checkpoint", "path": f"net{seed}.pt"})  # in the config's folder
    for lead, margin in scripted[: max(0, count - networks - 2)]:
        entries.append({"name": f"pursuit-{lead}-{margin}", "kind": "scripted",
                        "arguments": {"lead": lead, "margin": margin}})
    for index in range(count - len(entries)):
        entries.append({"name": f"random{index}", "kind": "uniform"})
    return entries


def timed_run(config, database: str, **kwargs) -> tuple[float, object]:
    """Seconds from the first block to the last stored row, and the result."""
    marks: dict[str, float] = {}

    def on_start(todo: int, total: int) -> None:
        marks["start"] = time.perf_counter()

    def on_rows(rows) -> None:
        marks["end"] = time.perf_counter()

    result = run_tournament(config, database, on_start=on_start, on_rows=on_rows, **kwargs)
    return marks["end"] - marks["start"], result


def sqlite_seconds_per_match(config, rows_by_block: list[list], folder: str) -> float:
    store = open_store(config, os.path.join(folder, "bookkeeping.sqlite"))
    start = time.perf_counter()
    for rows in rows_by_block:
        store.add(rows)
    seconds = time.perf_counter() - start
    store.close()
    return seconds / sum(len(rows) for rows in rows_by_block)


def mpe2_matches_per_second(episodes: int) -> float | None:
    try:
        from mpe2 import simple_tag_v3
    except ImportError:
        return None
    env = simple_tag_v3.parallel_env(max_cycles=25)
    start = time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        for agent in env.agents:
            env.action_space(agent).seed(episode)
        while env.agents:
            env.step({agent: env.action_space(agent).sample() for agent in env.agents})
    env.close()
    return episodes / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gamelab bench tournament", description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=1000, help="matches per pair (default 1000)")
    parser.add_argument("--players", type=int, default=16, help="players (default 16)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    parser.add_argument("--anchor-episodes", type=int, default=300, help="mpe2 episodes to time (default 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    results: dict = {"players": args.players, "matches_per_pair": args.matches, "device": args.device,
                     "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as folder:
        fields = {"name": "bench", "game": "tag", "matches_per_pair": args.matches, "batch_size": args.matches,
                  "device": args.device, "players": players(folder, args.players)}
        config = parse_config(fields, folder=folder)
        pairs = args.players * (args.players + 1) // 2
        total = pairs * args.matches
        print(f"tag tournament: {args.players} players, {pairs} pairs, {args.matches} matches per pair "
              f"({total:,} matches), device {args.device}, {torch.get_num_threads()} threads", flush=True)

        seconds, local = timed_run(config, os.path.join(folder, "local.sqlite"))
        results["local_matches_per_second"] = total / seconds
        results["local_seconds"] = seconds
        print(f"  in-process: {seconds:.2f} s, {total / seconds:,.0f} matches/s", flush=True)

        store = open_store(config, local.database)
        rows = store.rows()
        store.close()
        blocks = [rows[i: i + args.matches] for i in range(0, len(rows), args.matches)]
        bookkeeping = sqlite_seconds_per_match(config, blocks, folder)
        results["sqlite_seconds_per_match"] = bookkeeping
        results["sqlite_share_of_local"] = bookkeeping * total / seconds
        print(f"  SQLite bookkeeping: {bookkeeping * 1e6:.2f} us per match "
              f"({100 * results['sqlite_share_of_local']:.1f}% of the in-process time)", flush=True)

        if not args.no_ray:
            import ray

            ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
            try:
                # A first, untimed tournament starts the workers and loads the players in them.
                warm = parse_config({**fields, "matches_per_pair": 2, "batch_size": 2}, folder=folder)
                run_tournament(warm, os.path.join(folder, "warm.sqlite"), backend="ray")
                ray_seconds, distributed = timed_run(config, os.path.join(folder, "ray.sqlite"), backend="ray")
            finally:
                ray.shutdown()
            same = (distributed.tables.payoffs == local.tables.payoffs).all()
            results["ray_matches_per_second"] = total / ray_seconds
            results["ray_seconds"] = ray_seconds
            results["ray_overhead_per_match"] = ray_seconds / seconds - 1.0
            results["ray_table_equals_local"] = bool(same)
            print(f"  Ray ({args.ray_cpus} CPUs): {ray_seconds:.2f} s, {total / ray_seconds:,.0f} matches/s, "
                  f"overhead per match {100 * results['ray_overhead_per_match']:+.1f}%, identical table: {same}",
                  flush=True)

    anchor = mpe2_matches_per_second(args.anchor_episodes)
    results["mpe2_matches_per_second"] = anchor
    if anchor:
        results["ratio_vs_mpe2"] = results["local_matches_per_second"] / anchor
        print(f"  anchor, mpe2 simple_tag_v3 one episode at a time (random actions): {anchor:,.1f} matches/s; "
              f"gamelab in-process is {results['ratio_vs_mpe2']:,.0f}x", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
