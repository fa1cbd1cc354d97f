"""`gamelab render`, `train` and `evaluate`: Markov games, their policies and training runs."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from games.errors import GamelabError
from marl.commands.common import _check_output_path, _check_writable_folder, _device, _setting, _trainer_params


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

    folder = args.out or os.path.join("runs", f"{args.algorithm}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', args.scenario)}-"
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


def _trainer_config(args: argparse.Namespace, folder: str, config_class: type, named: dict[str, Any],
                    algorithm: str) -> tuple[Any, dict[str, Any] | None]:
    """The run's config (``MADDPGConfig``, ``MAPPOConfig``) from ``--param`` and the ``named`` flags (None:
    not given), and on ``--resume`` the checkpoint it was read from (read once): a resumed run keeps the
    settings it was trained with, and only ``--env-steps`` may change."""
    import dataclasses
    import os

    from marl import checkpoint

    overrides = _trainer_params(args.param)
    overrides.update({key: value for key, value in named.items() if value is not None})
    if not args.resume:
        if args.env_steps is not None:
            overrides["env_steps"] = args.env_steps
        return config_class.from_dict(overrides), None
    path = os.path.join(folder, "checkpoint.pt")
    saved = checkpoint.load(path)
    recorded = saved.get("algorithm", "maddpg")  # MADDPG checkpoints predate the marker
    if recorded != algorithm:
        raise GamelabError(f"--resume: {path} is a {recorded} run, not a {algorithm} one")
    values = dict(saved["config"])
    if "hidden_sizes" in values:
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    for key, value in overrides.items():
        if values.get(key) != value:
            raise GamelabError(
                f"--resume: {path} was trained with {key}={values.get(key)!r}; "
                f"a resumed run keeps its settings (only --env-steps can change)"
            )
    if args.env_steps is not None:
        values["env_steps"] = args.env_steps
    config = config_class.from_dict(values)
    # Settings added since the checkpoint was written take their defaults.
    if {key: value for key, value in dataclasses.asdict(config).items() if key in values} != values:
        raise GamelabError(f"--resume: {path} holds settings this gamelab does not read")
    return config, saved


def _evaluate_policy(policy: Any, name: str, settings: dict[str, Any], episodes: int, seed: int, device: Any,
                     gif: str | None) -> dict[str, Any]:
    """Mean return per agent of ``policy`` and of uniform random play over the same episodes, overall and
    per team (role): in a competitive game (``tag``) the overall mean averages predators and prey. On
    navigation, also ``scenarios.navigation.episode_metrics`` of ``policy`` (from the same episodes)."""
    from games.markov import teams
    from games.policy import random_policy, team_returns
    from games.render import record_gif
    from marl.envs import make_game

    game = make_game(name, episodes, device=device, seed=seed, settings=settings)
    groups = teams(game.possible_agents)
    everyone = [list(game.possible_agents), *groups.values()]
    measured: dict[str, Any] = {}
    if name == "navigation":
        from scenarios.navigation import episode_metrics

        measured = episode_metrics(policy, game, seed)
        per_episode = measured.pop("episode_returns")
        trained = per_episode[None].expand(len(everyone), -1).cpu()  # navigation has one team
    else:
        trained = team_returns(policy, game, seed, everyone).cpu()
    random = team_returns(random_policy(seed), game, seed, everyone).cpu()
    out = {
        "mean_episode_return": float(trained[0].mean()),
        "episode_return_std": float(trained[0].std()) if episodes > 1 else 0.0,
        "random_return": float(random[0].mean()),
        "team_returns": {role: float(trained[1 + index].mean()) for index, role in enumerate(groups)},
        "random_team_returns": {role: float(random[1 + index].mean()) for index, role in enumerate(groups)},
        "eval_episodes": episodes,
        "episodes": episodes,
        **measured,
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

    if args.algorithm == "mappo":
        from marl.commands.mappo import command_train_mappo

        return command_train_mappo(args)

    from rich.console import Console

    from marl.envs import make_game
    from marl.train import reachable_budget

    console = Console(stderr=args.json)
    folder = _run_folder(args)
    from marl.maddpg import MADDPGConfig

    named = {"num_envs": args.num_envs, "seed": args.seed, "centralized_critic": False if args.independent else None}
    config, saved = _trainer_config(args, folder, MADDPGConfig, named, "maddpg")
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
    import os

    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

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
    algorithm = "maddpg" if config.centralized_critic else "independent-ddpg"
    write_run_result(args, console, folder, {"algorithm": algorithm}, evaluation, result, config,
                     f"[bold]{algorithm}[/bold] on {args.scenario}")
    return 0


def _evaluated_policy(args: argparse.Namespace, device: Any) -> tuple[Any, str, dict[str, Any], str]:
    """``(policy, scenario, settings, filter)`` that ``gamelab evaluate`` plays."""
    from marl import checkpoint

    settings = dict(_setting(text) for text in args.set)
    if (args.checkpoint is None) == (args.policy is None):
        raise GamelabError("give a CHECKPOINT or --policy scripted|random (one of the two)")
    if args.checkpoint is None:
        if args.scenario is None:
            raise GamelabError(f"--policy {args.policy}: name the game with --scenario")
        if args.sample:
            raise GamelabError(f"--sample: draws from a trained MAPPO policy; --policy {args.policy} has no distribution "
                               "to draw from")
        return _load_policy(args.policy, args.scenario, settings), args.scenario, settings, "none"
    saved = checkpoint.load(args.checkpoint)  # its header is checked there
    recorded = saved["game"]
    scenario = args.scenario or recorded["name"]
    if scenario == recorded["name"]:
        settings = {**dict(recorded.get("settings", {})), **settings}
    if saved.get("algorithm") == "mappo":
        from marl.envs import make_game
        from marl.mappo_train import load_policy as load_mappo

        game = make_game(scenario, 1, device=device, seed=args.seed, settings=settings)
        policy = load_mappo(saved, args.checkpoint, game, device, sample=args.sample, seed=args.seed)
        trained_with = policy.learner.config.filter
        if trained_with == "online-cbf" and args.filter not in (None, "online-cbf"):
            raise GamelabError(f"{args.checkpoint} sets CBF gains (trained with --filter online-cbf); it plays only "
                               "through its filter")
        if args.filter == "online-cbf" and trained_with != "online-cbf":
            raise GamelabError(f"--filter online-cbf: {args.checkpoint} was not trained with --filter online-cbf")
        return policy, scenario, settings, trained_with
    from marl.train import load_policy

    if args.filter == "online-cbf":
        raise GamelabError(f"--filter online-cbf: {args.checkpoint} was not trained with --filter online-cbf")
    if args.sample:
        raise GamelabError(f"--sample: {args.checkpoint} holds a deterministic (MADDPG) policy; --sample draws from a "
                           "MAPPO policy")
    policy = load_policy(args.checkpoint, game_name=scenario, game_settings=settings, device=device, saved=saved)
    return policy, scenario, settings, "none"


def _cbf_filter(args: argparse.Namespace) -> Any:
    """The fixed-gain filter of ``--filter cbf --param alpha=A``; ``--param`` refused without it."""
    from marl.cbf import CBFFilter

    params = dict(_setting(text) for text in args.param)
    if args.filter != "cbf":
        if params:
            raise GamelabError(f"--param {next(iter(params))}: filter settings need --filter cbf")
        return None
    names = ("alpha", "margin", "neighbours", "barrier", "detour", "share", "pairs")  # CBFFilter's, on the command line
    unknown = sorted(set(params) - set(names))
    if unknown:
        listed = f"{', '.join(names[:-1])} and {names[-1]}"
        raise GamelabError(f"--param {unknown[0]}: the cbf filter's settings are {listed}")
    return CBFFilter(**params)


def write_run_result(args: argparse.Namespace, console: Any, folder: str, head: dict[str, Any],
                     evaluation: dict[str, Any], result: Any, config: Any, heading: str) -> None:
    """Writes a training run's ``result.json`` and prints it (``--json``) or its summary."""
    import dataclasses
    import os

    from games.io import atomic_write_text
    from marl.train import POLICY_FILE

    payload = {
        "scenario": args.scenario, "settings": dict(_setting(text) for text in args.set), **head, **evaluation,
        "env_steps": result.env_steps, "updates": result.updates, "seconds": result.seconds, "run_dir": folder,
        "checkpoint": os.path.join(folder, "checkpoint.pt"), "policy": os.path.join(folder, POLICY_FILE),
        "config": dataclasses.asdict(config),
    }
    atomic_write_text(os.path.join(folder, "result.json"), json.dumps(payload, indent=2) + "\n")
    if args.json:
        print(json.dumps(payload))
        return
    console.print(f"{heading}: {result.env_steps:,} env steps, {result.updates:,} updates, {result.seconds:.1f} s")
    console.print(f"mean return per agent over {evaluation['eval_episodes']} episodes: "
                  f"{evaluation['mean_episode_return']:+.2f} (uniform random {evaluation['random_return']:+.2f})")
    if "time_to_goal" in evaluation:
        console.print(f"T {evaluation['time_to_goal']:.3f}, collisions per agent {evaluation['collisions_per_agent']:.3f}, "
                      f"S% {evaluation['success_rate']:.1f}; safe rate {evaluation['safe_rate']:.3f}, success rate "
                      f"{evaluation['agent_success_rate']:.3f}")
    if _team_lines(evaluation):
        console.print(f"per team: {_team_lines(evaluation)}")
    console.print(f"run folder {folder}: checkpoint.pt, policy.pt, result.json, TensorBoard logs"
                  + (", trained.gif" if evaluation["gif"] else ""))


def command_evaluate(args: argparse.Namespace) -> int:
    if args.gif is not None:
        _check_output_path(args.gif, "--gif")
        if not args.gif.lower().endswith(".gif"):
            raise GamelabError(f"--gif {args.gif!r}: the name must end in .gif")
    device = _device(args.device)
    cbf = _cbf_filter(args)
    policy, scenario, settings, applied = _evaluated_policy(args, device)
    if cbf is not None:
        if scenario != "navigation":
            raise GamelabError("--filter cbf: the safety filter runs on the navigation scenario")
        if args.policy == "scripted":
            from marl.cbf import scripted_cbf_policy

            policy = scripted_cbf_policy(cbf)
        else:
            policy = cbf(policy)
        applied = "cbf"
    evaluation = _evaluate_policy(policy, scenario, settings, args.episodes, args.seed, device, args.gif)
    source = args.checkpoint or args.policy
    payload = {"checkpoint": args.checkpoint, "policy": args.policy, "scenario": scenario, "settings": settings,
               "filter": applied, "sample": args.sample, **evaluation}
    if args.json:
        print(json.dumps(payload))
    else:
        print(f"{source} on {scenario}: mean return per agent over {args.episodes} episodes "
              f"{evaluation['mean_episode_return']:+.2f} (std {evaluation['episode_return_std']:.2f}; "
              f"uniform random {evaluation['random_return']:+.2f})")
        if "time_to_goal" in evaluation:
            print(f"T {evaluation['time_to_goal']:.3f}, collisions per agent {evaluation['collisions_per_agent']:.3f}, "
                  f"S% {evaluation['success_rate']:.1f}; safe rate {evaluation['safe_rate']:.3f}, finish rate "
                  f"{evaluation['finish_rate']:.3f}, success rate {evaluation['agent_success_rate']:.3f}")
        if _team_lines(evaluation):
            print(f"per team: {_team_lines(evaluation)}")
        if evaluation["gif"]:
            print(f"wrote {evaluation['gif']}")
    return 0
