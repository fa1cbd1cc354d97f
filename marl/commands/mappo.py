"""`gamelab train mappo`: MAPPO and IPPO runs, with MLP or GNN models and the online CBF."""

from __future__ import annotations

import argparse
import math
from typing import Any

from marl.commands.common import _device, _setting
from marl.commands.markov import _evaluate_policy, _run_folder, _trainer_config, write_run_result


def command_train_mappo(args: argparse.Namespace) -> int:
    import os
    import signal

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from marl.envs import make_game
    from marl.mappo import MAPPOConfig, MAPPOPolicy, PolicySpec
    from marl.mappo_train import POLICY_FILE, controller_of, save_policy, train
    from marl.plots import write_learning_curves

    console = Console(stderr=args.json)
    folder = _run_folder(args)
    named = {"num_envs": args.num_envs, "seed": args.seed, "model": args.model, "filter": args.filter,
             "centralized_critic": False if args.ippo else None}
    config, saved = _trainer_config(args, folder, MAPPOConfig, named, "mappo")
    device = _device(args.device)
    settings = dict(_setting(text) for text in args.set)
    game = make_game(args.scenario, config.num_envs, device=device, seed=config.seed, settings=settings)
    PolicySpec.of(game, config)  # refuses a model or filter the game cannot take before the folder is made
    created = not os.path.exists(folder)
    os.makedirs(folder, exist_ok=True)
    name = "MAPPO" if config.centralized_critic else "IPPO"
    try:
        with Progress(TextColumn(f"[bold]{name} {args.scenario}"), BarColumn(),
                      TextColumn("{task.completed:,}/{task.total:,} steps"), TextColumn("return {task.fields[ret]}"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                      disable=not console.is_terminal) as progress:
            task = progress.add_task("train", total=config.env_steps, ret="-")

            def show(stats: dict[str, float], _: Any) -> None:
                value = stats["episode_return"]
                progress.update(task, completed=int(stats["env_steps"]), ret="-" if math.isnan(value) else f"{value:+.2f}")

            def terminate(signum: int, frame: Any) -> None:
                raise KeyboardInterrupt

            previous = signal.signal(signal.SIGTERM, terminate)
            try:
                result = train(game, config, device=device, run_dir=folder, game_name=args.scenario,
                               game_settings=settings, resume=args.resume, saved=saved,
                               time_limit=None if args.minutes is None else 60 * args.minutes, callback=show)
            except KeyboardInterrupt:
                console.print(f"interrupted: the checkpoint in {folder} is up to date; continue with --resume")
                return 130
            finally:
                signal.signal(signal.SIGTERM, previous)
    except BaseException:
        if created and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)  # a run that failed before writing anything leaves no empty --out folder
        raise
    save_policy(os.path.join(folder, POLICY_FILE), result.learner, args.scenario, settings)
    gif = None if args.no_gif else os.path.join(folder, "trained.gif")
    policy = MAPPOPolicy(result.learner, controller_of(config))
    evaluation = _evaluate_policy(policy, args.scenario, settings, config.eval_episodes, config.seed + 1, device, gif)
    if result.curve:
        write_learning_curves(os.path.join(folder, "learning_curve.png"), {name: result.curve},
                              title=f"{name} ({config.model}) on {args.scenario}",
                              references={"uniform random": evaluation["random_return"]})
    write_run_result(args, console, folder, {"algorithm": name.lower(), "model": config.model, "filter": config.filter},
                     evaluation, result, config, f"[bold]{name}[/bold] ({config.model}) on {args.scenario}")
    return 0
