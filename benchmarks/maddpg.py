"""Learning quality and speed of MADDPG on ``spread``, with mpe2 as the anchor, in one run.

    python -m benchmarks.maddpg [--minutes 10] [--ratio-steps 100000] [--device cpu] [--plot FILE] [--json]
    gamelab bench maddpg [--json]

Measured, one after another in this process:

1. MADDPG with the default ``MADDPGConfig`` on gamelab's ``spread`` (N = 3, mpe2's
   ``simple_spread_v3`` rewards) for ``--minutes`` of training. Every ``--eval-seconds``
   the current actors play 100 evaluation episodes without exploration (their time is not
   counted as training time). Reported: mean per-agent episode return against training
   seconds and env steps, the final evaluation, and the first time it reached -12.
2. Independent DDPG (``centralized_critic=False``), everything else equal, same budget.
3. Wall-clock of the same short training run (``--ratio-steps`` transitions, default 100,000;
   settings) on gamelab's ``spread`` and on mpe2's ``simple_spread_v3`` through the
   PettingZoo adapter; the ratio is mpe2's seconds over gamelab's.

References (mpe2 ``simple_spread_v3``, mean per-agent episode return): uniform random
-27.0; a script that assigns agents to distinct landmarks and moves greedily -9.2.
The goal: MADDPG reaches >= -12 within 10 minutes on 2 CPU cores, above independent DDPG.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time

import torch

from games.policy import episode_returns
from marl.envs import make_game
from marl.maddpg import MADDPG, MADDPGConfig, TrainedPolicy
from marl.plots import write_learning_curves
from marl.train import train

RANDOM_REFERENCE = -27.0
SCRIPTED_REFERENCE = -9.2
GOAL = -12.0


def learning_run(label: str, config: MADDPGConfig, minutes: float, eval_seconds: float, device: torch.device,
                 log: bool) -> dict:
    """Trains for ``minutes``; evaluates the greedy actors every ``eval_seconds`` of training."""
    game = make_game("spread", config.num_envs, device=device, seed=config.seed)
    evaluation_game = make_game("spread", 100, device=device, seed=config.seed + 1)
    curve, spent, next_eval = [], [0.0], [0.0]

    def evaluate(stats: dict, learner: MADDPG) -> None:
        training_seconds = stats["seconds"] - spent[0]
        if training_seconds < next_eval[0] and stats["env_steps"] < config.env_steps:
            return
        start = time.perf_counter()
        value = float(episode_returns(TrainedPolicy(learner), evaluation_game, 12345).mean())
        spent[0] += time.perf_counter() - start
        next_eval[0] = training_seconds + eval_seconds
        curve.append({"env_steps": stats["env_steps"], "seconds": training_seconds, "episode_return": value})
        if log:
            print(f"  {label}: {training_seconds:6.0f} s  {int(stats['env_steps']):>10,} steps  "
                  f"{int(stats['updates']):>7,} updates  eval return {value:+.2f}", file=sys.stderr, flush=True)

    result = train(game, config, device=device, time_limit=60 * minutes, callback=evaluate)
    final = float(episode_returns(TrainedPolicy(result.learner), evaluation_game, 12345).mean())
    reached = next((point["seconds"] for point in curve if point["episode_return"] >= GOAL), None)
    return {"label": label, "curve": curve, "final_return": final, "env_steps": result.env_steps,
            "updates": result.updates, "seconds": result.seconds - spent[0], "seconds_to_goal": reached}


def timed_training(name: str, steps: int, device: torch.device, settings: dict | None = None) -> float:
    config = dataclasses.replace(MADDPGConfig(), env_steps=steps)
    game = make_game(name, config.num_envs, device=device, seed=0, settings=settings)
    start = time.perf_counter()
    train(game, config, device=device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gamelab bench maddpg", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training minutes per learner (default 10)")
    parser.add_argument("--eval-seconds", type=float, default=30.0, help="evaluate every this many seconds")
    parser.add_argument("--ratio-steps", type=int, default=100_000, help="transitions of the mpe2 comparison")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", default="maddpg_learning_curve.png", help="the learning-curve PNG to write")
    parser.add_argument("--skip-independent", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    log = True
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}", file=sys.stderr)

    config = dataclasses.replace(MADDPGConfig(), env_steps=10**9)
    runs = [learning_run("MADDPG", config, args.minutes, args.eval_seconds, device, log)]
    if not args.skip_independent:
        independent = dataclasses.replace(config, centralized_critic=False)
        runs.append(learning_run("independent DDPG", independent, args.minutes, args.eval_seconds, device, log))

    gamelab_seconds = timed_training("spread", args.ratio_steps, device)
    mpe2_seconds = timed_training("pettingzoo:mpe2.simple_spread_v3", args.ratio_steps, device,
                                  {"max_cycles": 25, "continuous_actions": False})

    write_learning_curves(args.plot, {run["label"]: run["curve"] for run in runs},
                          title=f"spread (N=3): greedy evaluation return, {args.minutes:g} min per learner",
                          references={"uniform random (mpe2)": RANDOM_REFERENCE,
                                      "scripted (mpe2)": SCRIPTED_REFERENCE, "goal": GOAL})
    summary = {
        "runs": [{key: value for key, value in run.items()} for run in runs],
        "goal": GOAL,
        "references": {"random": RANDOM_REFERENCE, "scripted": SCRIPTED_REFERENCE},
        "equal_steps": {"env_steps": args.ratio_steps, "gamelab_seconds": gamelab_seconds,
                        "mpe2_seconds": mpe2_seconds, "ratio": mpe2_seconds / gamelab_seconds},
        "plot": args.plot,
    }
    for run in runs:
        reached = run["seconds_to_goal"]
        print(f"{run['label']:>17}: final return {run['final_return']:+.2f} after {run['seconds']:.0f} s, "
              f"{run['env_steps']:,} env steps, {run['updates']:,} updates; "
              f"reached {GOAL} at {'never' if reached is None else f'{reached:.0f} s'}")
    if len(runs) == 2:
        print(f"MADDPG minus independent DDPG: {runs[0]['final_return'] - runs[1]['final_return']:+.2f}")
    print(f"training {args.ratio_steps:,} env steps: gamelab spread {gamelab_seconds:.1f} s, mpe2 through the "
          f"adapter {mpe2_seconds:.1f} s, ratio {mpe2_seconds / gamelab_seconds:.1f}x")
    print(f"learning curve: {args.plot}")
    if args.json:
        print(json.dumps(summary, default=lambda value: None if isinstance(value, float) and math.isnan(value) else value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
