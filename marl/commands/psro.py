"""`gamelab psro`: PSRO, JPSRO and XDO runs (exact oracles), PSRO with MADDPG oracles on Markov games, run folders and plots."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from games.errors import GamelabError
from marl.commands.common import _check_output_path, _flag, _run_folder

MARKOV_DEFAULTS = {"oracle_steps": 200_000, "num_envs": 64, "sims_per_entry": 64, "seed": 0, "device": "cpu"}
MARKOV_FLAGS = ("oracle_steps", "num_envs", "sims_per_entry", "seed", "device", "set", "param", "warm_start")


def _markov_space(args: argparse.Namespace, state: dict | None, state_path: str | None) -> Any:
    """The policy space of a Markov-game run: from the flags, or on ``--resume`` from the run's record
    (a flag that differs from what the run was started with is refused)."""
    from marl.commands.common import _device, _setting, _trainer_params
    from marl.maddpg import MADDPGConfig
    from marl.psro_oracle import MarkovPopulations
    from marl.train import reachable_budget

    params = _trainer_params(args.param, {"env_steps": "--oracle-steps", "num_envs": "--num-envs", "seed": "--seed"})
    device = _device(args.device or MARKOV_DEFAULTS["device"])
    if state is not None:
        space = MarkovPopulations.from_record(args.game, state.get("markov"), device, source=state_path)
        recorded_values = {"oracle_steps": space.oracle.env_steps, "num_envs": space.oracle.num_envs,
                           "sims_per_entry": space.sims_per_entry, "seed": space.seed}
        for name, recorded in recorded_values.items():
            given = getattr(args, name)
            if given is not None and given != recorded:
                raise GamelabError(f"--resume: {state_path} was run with {_flag(name)} {recorded}; a resumed run "
                                   "keeps its settings")
        settings = dict(_setting(text) for text in args.set)
        if (settings and settings != space.settings) or (args.warm_start and not space.warm_start) or any(
                getattr(space.oracle, key) != value for key, value in params.items()):
            raise GamelabError(f"--resume: {state_path} keeps the settings it was started with; drop --set, --param "
                               "and --warm-start, or start a new run")
        return space
    values = {name: default if getattr(args, name) is None else getattr(args, name)
              for name, default in MARKOV_DEFAULTS.items()}
    oracle = MADDPGConfig.from_dict({**params, "env_steps": values["oracle_steps"], "num_envs": values["num_envs"],
                                     "checkpoint_minutes": 0, **({} if "log_every" in params else {"log_every": 5_000})})
    oracle, adjusted = reachable_budget(oracle, set(params), "--oracle-steps")
    if adjusted:
        from rich.console import Console

        Console(stderr=True).print(adjusted)
    return MarkovPopulations(args.game, dict(_setting(text) for text in args.set), oracle=oracle,
                             sims_per_entry=values["sims_per_entry"], seed=values["seed"],
                             warm_start=args.warm_start, device=device)


def _check_oracle(args: argparse.Namespace, markov: bool) -> str:
    """The oracle the run uses; refuses flags and oracles that do not fit the game."""
    oracle = args.oracle or ("maddpg" if markov else "best-response")
    if markov and oracle != "maddpg":
        raise GamelabError(f"--oracle {oracle}: {args.game} is a Markov game, whose best responses are trained: "
                           "use --oracle maddpg")
    if not markov and oracle == "maddpg":
        raise GamelabError(f"--oracle maddpg: {args.game} is not a Markov game; its best responses are exact "
                           "(--oracle best-response)")
    if not markov:
        given = [name for name in MARKOV_FLAGS if getattr(args, name) not in (None, False, [])]
        if given:
            raise GamelabError(f"{_flag(given[0])} applies to --oracle maddpg on Markov games; {args.game} takes "
                               "exact best responses")
        return oracle
    if args.variant == "xdo":
        raise GamelabError(f"--variant xdo: {args.game} is a Markov game; XDO restricts the actions of a game tree")
    if args.backend == "ray" and args.device not in (None, "cpu"):
        raise GamelabError(f"--backend ray trains the best responses in Ray's CPU workers; drop --device {args.device} "
                           "or use --backend local")
    return oracle


def _psro_plot(path: str, spec: str, meta_solver: str, history: list[Any],
               label: str = "NashConv of the mixtures") -> None:
    from marl.plots import write_nash_conv_curve

    write_nash_conv_curve(path, history, title=f"PSRO ({meta_solver}) on {spec}", label=label)


def command_psro(args: argparse.Namespace) -> int:
    import os

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from games.extensive_form import ExtensiveFormGame, strategy_to_dict
    from games.io import atomic_write_bytes, atomic_write_text
    from games.loading import load_game
    from solvers import psro

    psro.meta_solver(args.meta_solver)  # an unknown name fails before the game is loaded
    if args.ray_address is not None and args.backend != "ray":
        raise GamelabError("--ray-address joins a Ray cluster; pass --backend ray with it")
    from marl.envs import is_markov_game

    markov = is_markov_game(args.game)
    oracle = _check_oracle(args, markov)
    _check_output_path(args.plot, "--plot")
    state_path, state = _run_folder(args, "PSRO")
    space = _markov_space(args, state, state_path) if markov else None
    game = space.probe if markov else load_game(args.game, dtype=torch.float64)
    tree = isinstance(game, ExtensiveFormGame)
    if args.variant == "xdo":
        if not tree:
            raise GamelabError(f"--variant xdo: {args.game} is a normal-form game; XDO restricts the actions of a "
                               "game tree (on a normal-form game PSRO with --meta-solver nash is the double oracle)")
        if args.resume:
            raise GamelabError("--resume continues PSRO runs; an XDO run starts afresh")
        return _command_xdo(args, game, console=Console(stderr=args.json))
    start = None
    if args.resume:
        start = psro.PSRO(game, args.meta_solver, policy_space=space)
        start.load_state_dict(state, source=state_path)

    def save_state(run: Any) -> None:
        import io

        buffer = io.BytesIO()
        torch.save({**run.state_dict(), "game": args.game, **({"markov": space.record()} if markov else {})}, buffer)
        atomic_write_bytes(state_path, buffer.getvalue())
    console = Console(stderr=args.json)
    with Progress(TextColumn(f"[bold]PSRO {args.meta_solver}"), BarColumn(),
                  TextColumn("iteration {task.completed}/{task.total}"), TextColumn("population {task.fields[sizes]}"),
                  TextColumn("NashConv {task.fields[nash_conv]}"), TextColumn("{task.fields[oracle]}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("psro", total=args.iterations, sizes="-", nash_conv="-", oracle="")
        if markov:
            total = space.oracle.env_steps
            space.progress = lambda team, stats: progress.update(
                task, oracle=f"training team {team}: {int(stats['env_steps']):,}/{total:,} steps")

        run = start if start is not None else psro.PSRO(game, args.meta_solver, policy_space=space)

        def show(record: Any) -> None:
            progress.update(task, completed=record.iteration, sizes="x".join(map(str, record.population_sizes)),
                            nash_conv=f"{record.nash_conv:.2e}")
            if state_path is not None:
                save_state(run)

        backend = psro.RayOracles(address=args.ray_address) if args.backend == "ray" else contextlib.nullcontext()
        try:
            with backend as oracles:
                run.oracle_backend = oracles
                psro.run(game, args.meta_solver, iterations=args.iterations, target_nash_conv=args.target_nash_conv,
                         callback=show, start=run)
        except KeyboardInterrupt:
            if state_path is None:
                raise
            console.print(f"interrupted: {state_path} holds the finished iterations; continue with --resume")
            return 130
    final = run.gap()
    measure = "estimated_nash_conv" if markov else {"cce": "cce_gap", "ce": "ce_gap"}.get(args.meta_solver, "nash_conv")
    history = run.history
    seconds = history[-1].seconds if history else 0.0
    payload = {
        "game": args.game,
        "meta_solver": args.meta_solver,
        "oracle": oracle,
        "backend": args.backend,
        "iterations": run.iteration,
        "seconds": seconds,
        "nash_conv": final,
        "measure": measure,
        "history": [{"iteration": r.iteration, "seconds": r.seconds, "nash_conv": r.nash_conv,
                     "meta_nash_conv": r.meta_nash_conv} for r in history],
        "population_sizes": [len(population) for population in run.populations],
        "meta_strategy": [strategy.tolist() for strategy in run.meta_strategies],
    }
    plot_label = "NashConv estimated by the best responses" if markov else "NashConv of the mixtures"
    if args.out is not None:
        folder = args.out
        for player, population in enumerate(run.populations):
            for index, member in enumerate(population):
                if markov:
                    _write_member(os.path.join(folder, "population", f"team{player}_{index:03d}"), member)
                    continue
                body = strategy_to_dict(game, member) if tree else {"player": player, "strategy": member.tolist()}
                atomic_write_text(os.path.join(folder, "population", f"player{player}_{index:03d}.json"),
                                  json.dumps(body, indent=1) + "\n")
        atomic_write_text(os.path.join(folder, "meta_game.json"), json.dumps({
            "payoffs": run.meta_game.tolist(),
            "meta_strategies": [r.meta_strategies for r in history] + [payload["meta_strategy"]],
        }) + "\n")
        atomic_write_text(os.path.join(folder, "result.json"), json.dumps(payload, indent=2) + "\n")
        if history:
            _psro_plot(os.path.join(folder, "nash_conv.png"), args.game, args.meta_solver, history, plot_label)
    if args.plot and history:
        _psro_plot(args.plot, args.game, args.meta_solver, history, plot_label)
    if args.json:
        print(json.dumps(payload))
        return 0
    reached = "" if args.target_nash_conv is None else (
        " (target reached)" if final <= args.target_nash_conv else f" (target {args.target_nash_conv:g} not reached)")
    how = "MADDPG best responses" if markov else "exact best responses"
    console.print(f"[bold]PSRO ({args.meta_solver}, {how})[/bold] on {getattr(game, 'title', '') or args.game}: "
                  f"{run.iteration} iterations, populations {payload['population_sizes']}, {seconds:.2f} s")
    label = {"nash_conv": "NashConv of the mixtures", "cce_gap": "CCE gap of the joint meta-strategy",
             "ce_gap": "CE gap of the joint meta-strategy",
             "estimated_nash_conv": "NashConv estimated by the last best responses (what they gain over the mixtures)",
             }[measure]
    console.print(f"{label}: {final:.3e}{reached}")
    if args.out is not None:
        console.print(f"run folder {args.out}: population/, meta_game.json, result.json, nash_conv.png")
    return 0


def _write_member(stem: str, member: Any) -> None:
    """A Markov-game member as a file: a MADDPG policy file (``.pt``), or ``.json`` for random play."""
    from games.io import atomic_write_text
    from marl import checkpoint

    payload = member.payload()
    if payload["kind"] == "uniform":
        atomic_write_text(stem + ".json", json.dumps(payload) + "\n")
    else:
        checkpoint.save(stem + ".pt", {key: value for key, value in payload.items() if key != "kind"})


def _command_xdo(args: argparse.Namespace, game: Any, console: Any) -> int:
    """``gamelab psro GAME --variant xdo``: the extensive-form double oracle."""
    import os

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from games.extensive_form import strategy_to_dict
    from games.io import atomic_write_text
    from solvers.xdo import xdo

    target = args.target_nash_conv
    restricted = 1e-3 if target is None else max(target / 4, 1e-9)
    with Progress(TextColumn("[bold]XDO"), BarColumn(), TextColumn("iteration {task.completed}/{task.total}"),
                  TextColumn("actions {task.fields[actions]}"), TextColumn("NashConv {task.fields[nash_conv]}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("xdo", total=args.iterations, actions="-", nash_conv="-")
        strategy, history = xdo(game, iterations=args.iterations, target_nash_conv=target,
                                restricted_nash_conv=restricted,
                                callback=lambda record: progress.update(task, completed=record.iteration,
                                                                        actions=record.allowed_actions,
                                                                        nash_conv=f"{record.nash_conv:.2e}"))
    final = history[-1]
    payload = {
        "game": args.game, "variant": "xdo", "meta_solver": "cfr+", "oracle": "best-response",
        "iterations": len(history), "seconds": final.seconds, "nash_conv": final.nash_conv,
        "history": [{"iteration": r.iteration, "seconds": r.seconds, "nash_conv": r.nash_conv,
                     "restricted_nash_conv": r.restricted_nash_conv, "cfr_iterations": r.cfr_iterations,
                     "allowed_actions": r.allowed_actions} for r in history],
        "allowed_actions": final.allowed_actions,
    }
    if args.out is not None:
        atomic_write_text(os.path.join(args.out, "strategy.json"),
                          json.dumps(strategy_to_dict(game, strategy), indent=1) + "\n")
        atomic_write_text(os.path.join(args.out, "result.json"), json.dumps(payload, indent=2) + "\n")
        _psro_plot(os.path.join(args.out, "nash_conv.png"), args.game, "xdo", history)
    if args.plot:
        _psro_plot(args.plot, args.game, "xdo", history)
    if args.json:
        print(json.dumps(payload))
        return 0
    console.print(f"[bold]XDO (restricted games solved by CFR+)[/bold] on {game.title or args.game}: {len(history)} "
                  f"iterations, {final.allowed_actions} of {int(game.legal_mask.sum())} actions allowed, "
                  f"{final.seconds:.2f} s")
    console.print(f"NashConv: {final.nash_conv:.3e}")
    if args.out is not None:
        console.print(f"run folder {args.out}: strategy.json, result.json, nash_conv.png")
    return 0
