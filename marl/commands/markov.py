"""`gamelab render`, `train` and `evaluate`: Markov games, their policies and training runs."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from games.errors import GamelabError
from marl.commands.common import _check_output_path, _check_writable_folder, _device, _setting


def _load_policy(spec: str, scenario: str, settings: dict[str, Any]) -> Any:
    if spec == "random":
        return "random"
    if spec == "scripted":
        import scenarios

        try:
            return scenarios.scripted_policy(scenario)
        except GamelabError as error:
            raise GamelabError(f"{error}; use random or module:callable") from None
    if spec.endswith(".pt"):
        from marl.train import load_policy

        return load_policy(spec, game_name=scenario, game_settings=settings)
    if ":" not in spec:
        raise GamelabError(f"--policy {spec!r}: expected random, scripted, a .pt checkpoint or module:callable")
    from marl.envs import import_callable

    try:
        function = import_callable(*spec.split(":", 1))
    except GamelabError as error:
        raise GamelabError(f"--policy {spec!r}: {error}") from None

    def policy(game: Any, observations: dict[str, Any]) -> Any:
        try:
            return function(game, observations)
        except Exception as error:  # noqa: BLE001 - the user's code: one line naming it, not a traceback
            raise GamelabError(f"--policy {spec!r} raised {type(error).__name__}: {error}; a policy is called as "
                               "policy(game, observations) and returns {agent: actions}") from None

    return policy


def command_render(args: argparse.Namespace) -> int:
    import scenarios
    from games.render import record_gif

    _check_output_path(args.out, "--out")
    if not args.out.lower().endswith(".gif"):
        raise GamelabError(f"--out {args.out!r}: the animation is written as GIF, so the name must end in .gif")
    settings = dict(_setting(text) for text in args.set)
    game = scenarios.make(args.scenario, num_envs=1, device=_device(args.device), seed=args.seed, **settings)
    policy = _load_policy(args.policy, args.scenario, settings)
    frames = record_gif(game, policy, args.out, steps=args.steps, seed=args.seed, fps=args.fps)
    print(f"wrote {args.out}: {frames} frames of {args.scenario}")
    return 0


def _run_folder(args: argparse.Namespace) -> str:
    import os
    import re

    folder = args.out or os.path.join("runs", f"maddpg-{re.sub(r'[^A-Za-z0-9_.-]+', '-', args.scenario)}-"
                                              f"seed{0 if args.seed is None else args.seed}")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise GamelabError(f"--out {folder}: exists and is not a folder")
    _check_writable_folder(folder, f"--out {folder}")
    has_run = os.path.isfile(os.path.join(folder, "checkpoint.pt"))
    if args.resume and not has_run:
        raise GamelabError(f"--resume: {folder} holds no checkpoint.pt to continue")
    if not args.resume and has_run:
        raise GamelabError(f"--out {folder} already holds a run; pass --resume to continue it, or choose another --out")
    return folder


def _trainer_config(args: argparse.Namespace, folder: str) -> tuple[Any, dict[str, Any] | None]:
    """The run's ``MADDPGConfig``, and on ``--resume`` the checkpoint it was read from (read once)."""
    import dataclasses
    import os

    from marl import checkpoint
    from marl.maddpg import MADDPGConfig

    overrides = dict(_setting(text) for text in args.param)
    if "hidden_sizes" in overrides and isinstance(overrides["hidden_sizes"], list):
        overrides["hidden_sizes"] = tuple(overrides["hidden_sizes"])
    named = {"num_envs": args.num_envs, "seed": args.seed, "centralized_critic": False if args.independent else None}
    overrides.update({key: value for key, value in named.items() if value is not None})
    if not args.resume:
        if args.env_steps is not None:
            overrides["env_steps"] = args.env_steps
        return MADDPGConfig.from_dict(overrides), None
    path = os.path.join(folder, "checkpoint.pt")
    saved = checkpoint.load(path)
    values = dict(saved["config"])
    values["hidden_sizes"] = tuple(values["hidden_sizes"])
    for key, value in overrides.items():
        if values.get(key) != value:
            raise GamelabError(
                f"--resume: {path} was trained with {key}={values.get(key)!r}; "
                f"a resumed run keeps its settings (only --env-steps can change)"
            )
    if args.env_steps is not None:
        values["env_steps"] = args.env_steps
    config = MADDPGConfig.from_dict(values)
    # Settings added since the checkpoint was written take their defaults.
    if {key: value for key, value in dataclasses.asdict(config).items() if key in values} != values:
        raise GamelabError(f"--resume: {path} holds settings this gamelab does not read")
    return config, saved


def _evaluate_policy(policy: Any, name: str, settings: dict[str, Any], episodes: int, seed: int, device: Any,
                     gif: str | None) -> dict[str, Any]:
    """Mean return per agent of ``policy`` and of uniform random play over the same episodes, overall and
    per team (role): in a competitive game (``tag``) the overall mean averages predators and prey."""
    from games.markov import teams
    from games.policy import random_policy, team_returns
    from games.render import record_gif
    from marl.envs import make_game

    game = make_game(name, episodes, device=device, seed=seed, settings=settings)
    groups = teams(game.possible_agents)
    everyone = [list(game.possible_agents), *groups.values()]
    trained = team_returns(policy, game, seed, everyone).cpu()
    random = team_returns(random_policy(seed), game, seed, everyone).cpu()
    out = {
        "mean_episode_return": float(trained[0].mean()),
        "episode_return_std": float(trained[0].std()) if episodes > 1 else 0.0,
        "random_return": float(random[0].mean()),
        "team_returns": {role: float(trained[1 + index].mean()) for index, role in enumerate(groups)},
        "random_team_returns": {role: float(random[1 + index].mean()) for index, role in enumerate(groups)},
        "eval_episodes": episodes,
        "gif": None,
    }
    if gif is not None:
        single = make_game(name, 1, device=device, seed=seed, settings=settings)
        if hasattr(single, "world"):
            record_gif(single, policy, gif, seed=seed)
            out["gif"] = gif
    return out


def _team_lines(evaluation: dict[str, Any]) -> str:
    """``adversary +41.2 (random +3.1), agent -52.0 (random -9.8)``; empty for a game of one team."""
    if len(evaluation["team_returns"]) < 2:
        return ""
    return ", ".join(f"{role} {value:+.2f} (random {evaluation['random_team_returns'][role]:+.2f})"
                     for role, value in evaluation["team_returns"].items())


def _greedy_evaluation(name: str, settings: dict[str, Any], config: Any, device: Any, episodes: int = 32) -> Any:
    """``evaluate(learner)``: the greedy policy's mean return per agent over the same ``episodes`` episodes
    every time (a game of its own, seeded apart from training and from the final evaluation)."""
    from games.policy import episode_returns
    from marl.envs import make_game
    from marl.maddpg import TrainedPolicy

    game = make_game(name, episodes, device=device, seed=config.seed + 2, settings=settings)
    return lambda learner: float(episode_returns(TrainedPolicy(learner), game, config.seed + 2).mean())


def command_train(args: argparse.Namespace) -> int:
    import os

    from rich.console import Console

    from marl.envs import make_game
    from marl.train import reachable_budget

    console = Console(stderr=args.json)
    folder = _run_folder(args)
    config, saved = _trainer_config(args, folder)
    explicit = {_setting(text)[0] for text in args.param} | (set(saved["config"]) if saved is not None else set())
    config, adjusted = reachable_budget(config, explicit)
    if adjusted:
        console.print(adjusted)
    device = _device(args.device)
    settings = dict(_setting(text) for text in args.set)
    game = make_game(args.scenario, config.num_envs, device=device, seed=config.seed, settings=settings)
    created = not os.path.exists(folder)
    os.makedirs(folder, exist_ok=True)
    try:
        return _train_in(args, console, folder, config, saved, device, settings, game)
    except BaseException:
        if created and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)  # a run that failed before writing anything leaves no empty --out folder
        raise


def _train_in(args: argparse.Namespace, console: Any, folder: str, config: Any, saved: Any, device: Any,
              settings: dict[str, Any], game: Any) -> int:
    """The training run of ``command_train`` in its (existing) run folder."""
    import dataclasses
    import os

    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from games.io import atomic_write_text
    from marl.maddpg import TrainedPolicy
    from marl.plots import write_learning_curves
    from marl.train import POLICY_FILE, save_policy, train

    with Progress(
        TextColumn(f"[bold]MADDPG {args.scenario}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} steps"),
        TextColumn("return {task.fields[episode_return]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("train", total=config.env_steps, episode_return="-")

        def show(stats: dict[str, float], _: Any) -> None:
            value = stats["episode_return"]
            progress.update(task, completed=int(stats["env_steps"]),
                            episode_return="-" if math.isnan(value) else f"{value:+.2f}")

        import signal

        def terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # SIGTERM (schedulers, `timeout`) saves the checkpoint as Ctrl-C does

        previous = signal.signal(signal.SIGTERM, terminate)
        try:
            result = train(game, config, device=device, run_dir=folder, game_name=args.scenario,
                           game_settings=settings, resume=args.resume, saved=saved,
                           time_limit=None if args.minutes is None else 60 * args.minutes, callback=show,
                           evaluate=_greedy_evaluation(args.scenario, settings, config, device))
        except KeyboardInterrupt:
            console.print(f"interrupted: the checkpoint in {folder} is up to date; continue with --resume")
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
    save_policy(os.path.join(folder, POLICY_FILE), result.learner, args.scenario, settings)
    gif = None if args.no_gif else os.path.join(folder, "trained.gif")
    evaluation = _evaluate_policy(
        TrainedPolicy(result.learner), args.scenario, settings, config.eval_episodes, config.seed + 1, device, gif
    )
    if result.curve:
        write_learning_curves(os.path.join(folder, "learning_curve.png"), {"MADDPG": result.curve},
                              title=f"MADDPG on {args.scenario}",
                              references={"uniform random": evaluation["random_return"]})
    payload = {
        "scenario": args.scenario,
        "settings": settings,
        "algorithm": "maddpg" if config.centralized_critic else "independent-ddpg",
        **evaluation,
        "env_steps": result.env_steps,
        "updates": result.updates,
        "seconds": result.seconds,
        "run_dir": folder,
        "checkpoint": os.path.join(folder, "checkpoint.pt"),
        "policy": os.path.join(folder, POLICY_FILE),
        "config": dataclasses.asdict(config),
    }
    atomic_write_text(os.path.join(folder, "result.json"), json.dumps(payload, indent=2) + "\n")
    if args.json:
        print(json.dumps(payload))
    else:
        console.print(
            f"[bold]{payload['algorithm']}[/bold] on {args.scenario}: {result.env_steps:,} env steps, "
            f"{result.updates:,} updates, {result.seconds:.1f} s"
        )
        console.print(
            f"mean return per agent over {evaluation['eval_episodes']} episodes: "
            f"{evaluation['mean_episode_return']:+.2f} (uniform random {evaluation['random_return']:+.2f})"
        )
        if _team_lines(evaluation):
            console.print(f"per team: {_team_lines(evaluation)}")
        console.print(f"run folder {folder}: checkpoint.pt, policy.pt, result.json, TensorBoard logs"
                      + (", trained.gif" if evaluation["gif"] else ""))
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    from marl.train import load_policy

    if args.gif is not None:
        _check_output_path(args.gif, "--gif")
        if not args.gif.lower().endswith(".gif"):
            raise GamelabError(f"--gif {args.gif!r}: the name must end in .gif")
    from marl import checkpoint

    settings = dict(_setting(text) for text in args.set)
    device = _device(args.device)
    saved = checkpoint.load(args.checkpoint)  # its header is checked there
    scenario = args.scenario
    if scenario is None:
        recorded = saved["game"]
        scenario = recorded["name"]
        if not args.set:
            settings = dict(recorded.get("settings", {}))
    policy = load_policy(args.checkpoint, game_name=scenario, game_settings=settings, device=device, saved=saved)
    evaluation = _evaluate_policy(policy, scenario, settings, args.episodes, args.seed, device, args.gif)
    payload = {"checkpoint": args.checkpoint, "scenario": scenario, "settings": settings, **evaluation}
    if args.json:
        print(json.dumps(payload))
    else:
        print(f"{args.checkpoint} on {scenario}: mean return per agent over {args.episodes} episodes "
              f"{evaluation['mean_episode_return']:+.2f} (std {evaluation['episode_return_std']:.2f}; "
              f"uniform random {evaluation['random_return']:+.2f})")
        if _team_lines(evaluation):
            print(f"per team: {_team_lines(evaluation)}")
        if evaluation["gif"]:
            print(f"wrote {evaluation['gif']}")
    return 0
