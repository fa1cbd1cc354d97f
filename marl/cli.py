"""The ``gamelab`` command line.

    gamelab solve GAME [--solver NAME] [--iterations N] [--target-nash-conv X] [--seed S]
                       [--device D] [--out FILE] [--plot FILE] [--json]
    gamelab games      list the catalog of classic games
    gamelab solvers    list the solvers and what they do
    gamelab train maddpg --scenario NAME [--env-steps N] [--num-envs B] [--seed S]
                       [--device D] [--out DIR] [--resume] [--json]
    gamelab evaluate CHECKPOINT [--scenario NAME] [--episodes N] [--gif FILE] [--json]
    gamelab tournament CONFIG.yaml [--db FILE] [--backend local|ray] [--ray-address ADDR]
                       [--report DIR] [--allow-code] [--json]

GAME is a catalog name (``gamelab games``), a Gambit ``.nfg`` path, ``random(3,3,3,seed=1)``,
``random_zero_sum(100,100,seed=0)``, or an OpenSpiel game string: normal-form
(``matrix_rps``, ``blotto``) or sequential (``kuhn_poker``, ``leduc_poker``), which is
compiled to an extensive-form game and solved by the CFR family. For those, ``--out``
writes ``{information state: {action id: probability}}``.

Errors a user can cause (unknown names, malformed files, bad values, a wrong option)
print one line on stderr and exit with code 2; nothing is written. ``--json`` prints one JSON object as the
last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from games.errors import GamelabError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported on one line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gamelab")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from solvers import registry

    parser = _Parser(
        prog="gamelab", description="Compute equilibria of games, train agent populations, run tournaments."
    )
    parser.add_argument("--version", action="version", version=f"gamelab {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    solve = commands.add_parser("solve", help="compute an equilibrium of a game")
    solve.add_argument("game", help="catalog name, .nfg path, random(...) or an OpenSpiel game string")
    solve.add_argument("--solver", default="auto", choices=registry.names(), metavar="NAME",
                       help="solver (default: auto); see `gamelab solvers`")
    solve.add_argument("--iterations", type=_positive_int, default=None,
                       help=f"iteration budget of iterative solvers (default {registry.DEFAULT_ITERATIONS})")
    solve.add_argument("--target-nash-conv", type=_non_negative_float, default=None,
                       help="stop once NashConv is at most this")
    solve.add_argument("--seed", type=int, default=0, help="seed for solvers that sample (default 0)")
    solve.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    solve.add_argument("--out", help="write the strategies as JSON to this file")
    solve.add_argument("--plot", help="write a NashConv-vs-iterations PNG to this file")
    solve.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    solve.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    psro = commands.add_parser(
        "psro", help="grow populations of policies by best responses (PSRO)",
        description="Policy-Space Response Oracles (Lanctot et al. 2017) with exact best responses on a "
                    "normal-form or extensive-form game: each iteration solves the meta-game of the "
                    "populations, adds each player's best response to the others' mixtures, and reports the "
                    "mixtures' NashConv in the full game.",
    )
    psro.add_argument("game", help="as for `gamelab solve`: catalog name, .nfg/.efg path, random(...), OpenSpiel game")
    psro.add_argument("--meta-solver", default="nash",
                      help="nash (default), prd, rm, alpharank, rectified, uniform, or cce/ce (JPSRO)")
    psro.add_argument("--variant", choices=["psro", "xdo"], default="psro",
                      help="psro (default), or xdo: the extensive-form double oracle (McAleer et al. 2021), whose "
                           "restricted game keeps the best responses' actions at every infoset and is solved by CFR+")
    psro.add_argument("--iterations", type=_positive_int, default=50, help="most iterations (default 50)")
    psro.add_argument("--target-nash-conv", type=_non_negative_float, default=None,
                      help="stop once the mixtures' NashConv is at most this")
    psro.add_argument("--out", default=None,
                      help="run folder: the populations, the meta-game, sigma at every iteration, nash_conv.png, "
                           "and state.pt, saved after every iteration")
    psro.add_argument("--resume", action="store_true",
                      help="continue the run in --out (after Ctrl-C or kill -9) up to --iterations in all")
    psro.add_argument("--plot", default=None, help="write NashConv against iterations and seconds as a PNG")
    psro.add_argument("--max-memory", default=None, metavar="SIZE",
                      help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    psro.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    commands.add_parser("games", help="list the catalog of classic games")
    commands.add_parser("solvers", help="list the solvers")
    commands.add_parser("scenarios", help="list the Markov-game scenarios and their settings")

    render = commands.add_parser("render", help="write an animated GIF of one episode of a scenario")
    render.add_argument("scenario", help="scenario name; see `gamelab scenarios`")
    render.add_argument("--policy", default="random",
                        help="random, scripted (spread, navigation), a checkpoint or policy .pt from "
                             "`gamelab train`, or module:callable taking (game, observations)")
    render.add_argument("--out", required=True, help="the .gif to write")
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario setting, e.g. --set num_agents=5 (repeatable)")
    render.add_argument("--steps", type=_positive_int, default=None, help="steps to play (default: one episode)")
    render.add_argument("--seed", type=int, default=0, help="reset seed (default 0)")
    render.add_argument("--fps", type=_positive_int, default=10, help="frames per second (default 10)")
    render.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    render.add_argument("--device", default="cpu", help="torch device (default cpu)")

    train = commands.add_parser("train", help="train agents on a Markov game")
    algorithms = train.add_subparsers(dest="algorithm", required=True)
    maddpg = algorithms.add_parser(
        "maddpg", help="MADDPG (Lowe et al. 2017), or independent DDPG with --independent",
        description="Trains MADDPG on a scenario or a PettingZoo environment (pettingzoo:MODULE), "
                    "then evaluates the trained agents over 100 episodes and draws one as a GIF. The run "
                    "folder's checkpoint.pt is written every 1,000,000 transitions and every 5 minutes "
                    "(--param checkpoint_every=N, checkpoint_minutes=M), and on Ctrl-C or SIGTERM.",
    )
    maddpg.add_argument("--scenario", required=True,
                        help="scenario name (see `gamelab scenarios`) or pettingzoo:MODULE, "
                             "e.g. pettingzoo:mpe2.simple_spread_v3")
    maddpg.add_argument("--env-steps", type=_positive_int, default=None,
                        help="transitions to collect, summed over copies (default 1,500,000)")
    maddpg.add_argument("--num-envs", type=_positive_int, default=None, help="copies stepped together (default 64)")
    maddpg.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    maddpg.add_argument("--device", default="cpu", help="torch device of the networks and the buffer (default cpu)")
    maddpg.add_argument("--out", default=None, help="run folder (default runs/maddpg-SCENARIO-seedS)")
    maddpg.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    maddpg.add_argument("--independent", action="store_true",
                        help="independent DDPG: critics see only their own agent (centralized_critic=false)")
    maddpg.add_argument("--minutes", type=_non_negative_float, default=None,
                        help="stop training after this many minutes (resumable)")
    maddpg.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario setting, e.g. --set num_agents=5 (repeatable)")
    maddpg.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a trainer setting of MADDPGConfig, e.g. --param batch_size=512 (repeatable)")
    maddpg.add_argument("--no-gif", action="store_true", help="skip the GIF of the trained agents")
    maddpg.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    maddpg.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    evaluate = commands.add_parser("evaluate", help="replay a trained policy and report its mean return")
    evaluate.add_argument("checkpoint", help="checkpoint.pt or policy.pt written by `gamelab train`")
    evaluate.add_argument("--scenario", default=None,
                          help="the scenario (or pettingzoo:MODULE) it was trained on (default: the one the "
                               "checkpoint records)")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="the scenario settings it was trained with (repeatable; default: the recorded ones)")
    evaluate.add_argument("--episodes", type=_positive_int, default=100, help="episodes to play (default 100)")
    evaluate.add_argument("--seed", type=int, default=1, help="seed of the evaluation episodes (default 1)")
    evaluate.add_argument("--device", default="cpu", help="torch device (default cpu)")
    evaluate.add_argument("--gif", default=None, help="also write one episode as this .gif")
    evaluate.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    tournament = commands.add_parser(
        "tournament", help="play every pair of players and rate them",
        description="Plays a round-robin tournament from a YAML config (see examples/*_tournament.yaml), "
                    "storing every match in SQLite as it finishes: running the same command again resumes.",
    )
    tournament.add_argument("config", help="the tournament's YAML file")
    tournament.add_argument("--db", default=None, help="SQLite file of the results (default runs/tournament-NAME.sqlite)")
    tournament.add_argument("--backend", choices=["local", "ray"], default="local",
                            help="play in this process (default) or as Ray tasks")
    tournament.add_argument("--ray-address", default=None,
                            help="join this Ray cluster (with --backend ray); default: start a local one")
    tournament.add_argument("--report", default=None,
                            help="write payoffs.png, ratings.png, results.json and index.html into this folder")
    tournament.add_argument("--allow-code", action="store_true",
                            help="let the config's callable players import and run the Python code they name "
                                 "(only for configs you trust; without it such a config is refused)")
    tournament.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    tournament.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    bench = commands.add_parser("bench", help="run a benchmark against its anchors (from a source checkout)")
    bench.add_argument("target", choices=["sim", "matrix", "cfr", "maddpg", "tournament", "nfg", "psro"], help="which benchmark")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the benchmark, e.g. --json")
    return parser


def _device(name: str) -> Any:
    from games.devices import parse_device

    return parse_device(name)


def _check_output_path(path: str | None, option: str) -> None:
    import os

    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise GamelabError(f"{option} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise GamelabError(f"{option} {path}: is a folder")
    _check_writable_folder(folder, f"{option} {path}")


def _check_writable_folder(folder: str, what: str) -> None:
    """Raises unless ``folder``, or the nearest folder above it that exists, is writable."""
    import os

    probe = os.path.abspath(folder)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise GamelabError(f"{what}: {probe} is not a writable folder")


def _is_extensive(game: Any) -> bool:
    from games.extensive_form import ExtensiveFormGame

    return isinstance(game, ExtensiveFormGame)


def _result_json(game: Any, spec: str, result: Any) -> dict[str, Any]:
    out = {
        "game": spec,
        "title": game.title,
        "solver": result.solver,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "nash_conv": result.nash_conv,
        "expected_payoffs": result.value,
    }
    if _is_extensive(game):
        from games.extensive_form import strategy_to_dict

        out["strategies"] = strategy_to_dict(game, result.strategies[0])
        out["num_infosets"] = game.num_infosets
    else:
        out["strategies"] = [s.tolist() for s in result.strategies]
        out["players"] = list(game.player_names)
        out["actions"] = [list(names) for names in game.action_names]
    if result.joint is not None:
        out["joint"] = result.joint.tolist()
    out.update(result.extra)
    return out


def _write_plot(path: str, spec: str, result: Any) -> None:
    from marl.plots import pyplot, write_png

    iterations = [i for i, _ in result.history]
    # A log axis cannot show an exact 0: such points sit on a floor below the smallest positive value.
    positive = [v for _, v in result.history if v > 0]
    floor = min(positive) / 10 if positive else 1e-16
    values = [max(v, floor) for _, v in result.history]
    figure, axes = pyplot().subplots(figsize=(6, 4))
    axes.plot(iterations, values, marker="o" if len(values) < 30 else None)
    axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_ylabel("NashConv")
    axes.set_title(f"{result.solver} on {spec}")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    write_png(path, figure, dpi=120)


def _print_extensive_result(console: Any, game: Any, result: Any, shown: int = 24) -> None:
    from rich.table import Table

    from games.extensive_form import strategy_to_dict

    table = Table(title=f"average strategy ({game.num_infosets} infosets)", title_justify="left")
    table.add_column("player", justify="right")
    table.add_column("information state")
    table.add_column("action: probability")
    mapping = strategy_to_dict(game, result.strategies[0])
    players = game.infoset_player.tolist()
    for infoset, (key, row) in enumerate(list(mapping.items())[:shown]):
        table.add_row(str(players[infoset]), key.replace("\n", " | ")[:60],
                      "  ".join(f"{a}: {p:.4f}" for a, p in row.items()))
    if game.num_infosets > shown:
        table.caption = f"{game.num_infosets - shown} more infosets: --out FILE writes them all"
    console.print(table)
    console.print(f"expected payoffs: {', '.join(f'{v:.6g}' for v in result.value)}")
    console.print(f"NashConv: {result.nash_conv:.3e}   solver: {result.solver}   "
                  f"iterations: {result.iterations}   seconds: {result.seconds:.3f}")


def _print_result(console: Any, game: Any, result: Any) -> None:
    from rich.table import Table

    if _is_extensive(game):
        _print_extensive_result(console, game, result)
        return

    for player, strategy in enumerate(result.strategies):
        table = Table(title=f"{game.player_names[player]}", title_justify="left")
        table.add_column("action")
        table.add_column("probability", justify="right")
        shown = 0
        for name, probability in zip(game.action_names[player], strategy.tolist()):
            if probability > 1e-9 or len(strategy) <= 12:
                table.add_row(name, f"{probability:.6f}")
                shown += 1
        if shown < len(strategy):
            table.caption = f"{len(strategy) - shown} actions with probability 0 not shown"
        console.print(table)
    if result.joint is not None:
        console.print(f"joint distribution (correlated): {result.joint.tolist()}")
    console.print(f"expected payoffs: {', '.join(f'{v:.6g}' for v in result.value)}")
    console.print(f"NashConv: {result.nash_conv:.3e}   solver: {result.solver}   "
                  f"iterations: {result.iterations}   seconds: {result.seconds:.3f}")
    for key, value in result.extra.items():
        console.print(f"{key}: {value}")


def command_solve(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from games.io import atomic_write_text
    from games.loading import load_game
    from solvers import registry

    console = Console(stderr=args.json)
    device = _device(args.device)
    _check_output_path(args.out, "--out")
    _check_output_path(args.plot, "--plot")
    game = load_game(args.game, device=device, dtype=torch.float64)
    solver = registry.auto_solver(game) if args.solver == "auto" else args.solver
    budget = args.iterations or registry.DEFAULT_ITERATIONS
    iterative = registry.spec(solver).iterative
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("NashConv {task.fields[nash_conv]}"), TimeRemainingColumn(),
        console=console, transient=True, disable=not iterative or not console.is_terminal,
    ) as progress:
        task = progress.add_task(solver, total=budget, nash_conv="-")
        result = registry.solve(
            game, solver, iterations=args.iterations, target_nash_conv=args.target_nash_conv, seed=args.seed,
            callback=lambda i, gap: progress.update(task, completed=i, nash_conv=f"{gap:.2e}"),
        )
    payload = _result_json(game, args.game, result)
    if args.out:
        written = payload["strategies"] if _is_extensive(game) else payload
        atomic_write_text(args.out, json.dumps(written, indent=2) + "\n")
    if args.plot:
        _write_plot(args.plot, args.game, result)
    if args.json:
        print(json.dumps(payload))
    else:
        shape = f"{game.num_infosets} infosets, {game.num_nodes} nodes" if _is_extensive(game) else f"actions {list(game.num_actions)}"
        console.print(f"[bold]{game.title or args.game}[/bold]: {game.num_players} players, {shape}")
        _print_result(console, game, result)
    return 0


def command_games(_: argparse.Namespace) -> int:
    from games import catalog

    for name in catalog.names():
        print(f"{name:32s} {catalog.load(name).title}")
    return 0


def command_solvers(_: argparse.Namespace) -> int:
    from solvers import registry

    print(f"{'solver':18s} {'games':8s} {'kind':18s} description")
    print(f"{'auto':18s} {'both':8s} {'':18s} {registry.describe()['auto']}")
    for spec in registry.SOLVERS.values():
        games = "both" if len(spec.kinds) == 2 else ("normal" if spec.kinds == (registry.NORMAL_FORM,) else "tree")
        kind = ("iterative" if spec.iterative else "one-shot") + (", exact" if spec.exact else "")
        print(f"{spec.name:18s} {games:8s} {kind:18s} {spec.description}")
    return 0


def command_scenarios(_: argparse.Namespace) -> int:
    import dataclasses

    import scenarios

    for name in scenarios.names():
        fields = dataclasses.fields(scenarios.config_class(name))
        settings = ", ".join(f"{field.name}={field.default!r}" for field in fields)
        print(f"{name:12s} {settings}")
    return 0


def _setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false, null)."""
    if "=" not in text:
        raise GamelabError(f"--set {text!r}: expected KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


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
    """Mean return per agent of ``policy`` and of uniform random play over the same episodes."""
    from games.policy import episode_returns, random_policy
    from games.render import record_gif
    from marl.envs import make_game

    game = make_game(name, episodes, device=device, seed=seed, settings=settings)
    trained = episode_returns(policy, game, seed)
    random = episode_returns(random_policy(seed), game, seed)
    out = {
        "mean_episode_return": float(trained.mean()),
        "episode_return_std": float(trained.std()) if episodes > 1 else 0.0,
        "random_return": float(random.mean()),
        "eval_episodes": episodes,
        "gif": None,
    }
    if gif is not None:
        single = make_game(name, 1, device=device, seed=seed, settings=settings)
        if hasattr(single, "world"):
            record_gif(single, policy, gif, seed=seed)
            out["gif"] = gif
    return out


def command_train(args: argparse.Namespace) -> int:
    import os

    from rich.console import Console

    from marl.envs import make_game

    console = Console(stderr=args.json)
    folder = _run_folder(args)
    config, saved = _trainer_config(args, folder)
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
                           time_limit=None if args.minutes is None else 60 * args.minutes, callback=show)
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
        if evaluation["gif"]:
            print(f"wrote {evaluation['gif']}")
    return 0


def _print_tournament(console: Any, result: Any) -> None:
    from rich.table import Table

    payload = result.to_json()
    rated = payload["ratings"]
    errors = rated["elo_error"]
    ratings = Table(title=f"{result.config.name}: ratings ({'exact' if result.exact else 'sampled'}, "
                          f"{result.matches_total} matches)")
    for column in ("player", "Elo", "alpha-rank", "Nash avg", "meta-Nash", "exploitability", "forfeits"):
        ratings.add_column(column, justify="left" if column == "player" else "right")
    for name in sorted(result.names, key=lambda name: -rated["elo"][name]):
        elo = f"{rated['elo'][name]:.0f}" + ("" if errors is None else f" ± {errors[name]:.0f}")
        ratings.add_row(name, elo, f"{rated['alpha_rank'][name]:.3f}", f"{rated['nash_averaging'][name]:+.4f}",
                        f"{rated['meta_nash'][name]:.3f}", f"{rated['exploitability'][name]:.4f}",
                        str(payload["forfeits"][name]))
    console.print(ratings)
    payoffs = Table(title="mean payoff of the row player" + ("" if result.exact else " (± 95% confidence)"))
    payoffs.add_column("")
    for name in result.names:
        payoffs.add_column(name, justify="right")
    table, confidence = result.tables.payoffs, result.tables.confidence
    for i, name in enumerate(result.names):
        payoffs.add_row(name, *(f"{table[i, j]:+.3f}" + ("" if result.exact else f" ±{confidence[i, j]:.3f}")
                                for j in range(len(result.names))))
    console.print(payoffs)
    for name, error in payload["forfeit_errors"].items():
        console.print(f"[yellow]{name} forfeited {payload['forfeits'][name]} matches[/yellow]: {error}")
    console.print(f"meta-game Nash value {payload['meta_nash_value']:+.4f}, exploitability "
                  f"{payload['meta_nash_exploitability']:.2e}; results in {result.database}")


def command_tournament(args: argparse.Namespace) -> int:
    import os
    import re

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from marl.tournaments.config import load_config
    from marl.tournaments.report import write_report
    from marl.tournaments.run import run_tournament

    if args.ray_address is not None and args.backend != "ray":
        raise GamelabError("--ray-address joins a Ray cluster; pass --backend ray with it")
    if args.report is not None and os.path.exists(args.report) and not os.path.isdir(args.report):
        raise GamelabError(f"--report {args.report}: exists and is not a folder")
    if args.report is not None:
        _check_writable_folder(args.report, f"--report {args.report}")
    config = load_config(args.config, allow_code=args.allow_code)
    database = args.db or os.path.join("runs", f"tournament-{re.sub(r'[^A-Za-z0-9_.-]+', '-', config.name)}.sqlite")
    if os.path.isdir(database):
        raise GamelabError(f"--db {database}: is a folder")
    console = Console(stderr=args.json)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("matches"), TimeRemainingColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task(config.name, total=None)

        def on_start(todo: int, total: int) -> None:
            progress.update(task, total=total, completed=total - todo)

        result = run_tournament(config, database, backend=args.backend, ray_address=args.ray_address,
                                on_start=on_start, on_rows=lambda rows: progress.advance(task, len(rows)))
    written = write_report(result, args.report) if args.report else []
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    _print_tournament(console, result)
    if result.matches_played < result.matches_total:
        console.print(f"{result.matches_total - result.matches_played} matches were already in {database}; "
                      f"played {result.matches_played}")
    if written:
        console.print(f"report: {os.path.join(args.report, 'index.html')}")
    return 0


def _psro_plot(path: str, spec: str, meta_solver: str, history: list[Any]) -> None:
    from marl.plots import pyplot, write_png

    figure, (by_iteration, by_time) = pyplot().subplots(1, 2, figsize=(10, 4), sharey=True)
    values = [max(record.nash_conv, 1e-16) for record in history]
    by_iteration.plot([record.iteration for record in history], values, marker="o" if len(values) < 30 else None)
    by_time.plot([record.seconds for record in history], values, marker="o" if len(values) < 30 else None)
    by_iteration.set_yscale("log")
    by_iteration.set_ylabel("NashConv of the mixtures")
    for axes, label in ((by_iteration, "iteration"), (by_time, "seconds")):
        axes.set_xlabel(label)
        axes.grid(True, which="both", alpha=0.3)
    figure.suptitle(f"PSRO ({meta_solver}) on {spec}")
    figure.tight_layout()
    write_png(path, figure)


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
    _check_output_path(args.plot, "--plot")
    state_path = None if args.out is None else os.path.join(args.out, "state.pt")
    if args.resume and (state_path is None or not os.path.isfile(state_path)):
        raise GamelabError(f"--resume: {args.out or '(no --out)'} holds no PSRO run (state.pt) to continue")
    if args.out is not None:
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise GamelabError(f"--out {args.out}: exists and is not a folder")
        if not args.resume and os.path.isdir(args.out) and os.listdir(args.out):
            raise GamelabError(f"--out {args.out}: the folder is not empty; choose another --out, or --resume a run")
        _check_writable_folder(args.out, f"--out {args.out}")
    game = load_game(args.game, dtype=torch.float64)
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
        from games.io import read_torch_file

        state = read_torch_file(state_path, what="PSRO run")
        if not isinstance(state, dict) or state.get("game") != args.game:
            recorded = state.get("game") if isinstance(state, dict) else None
            raise GamelabError(f"--resume: {state_path} is a run of {recorded!r}, not {args.game!r}")
        start = psro.PSRO(game, args.meta_solver)
        start.load_state_dict(state, source=state_path)

    def save_state(run: Any) -> None:
        import io

        buffer = io.BytesIO()
        torch.save({**run.state_dict(), "game": args.game}, buffer)
        atomic_write_bytes(state_path, buffer.getvalue())
    console = Console(stderr=args.json)
    with Progress(TextColumn(f"[bold]PSRO {args.meta_solver}"), BarColumn(),
                  TextColumn("iteration {task.completed}/{task.total}"), TextColumn("population {task.fields[sizes]}"),
                  TextColumn("NashConv {task.fields[nash_conv]}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("psro", total=args.iterations, sizes="-", nash_conv="-")

        holder: dict[str, Any] = {}

        def show(record: Any) -> None:
            progress.update(task, completed=record.iteration, sizes="x".join(map(str, record.population_sizes)),
                            nash_conv=f"{record.nash_conv:.2e}")
            if state_path is not None:
                save_state(holder["run"])

        holder["run"] = start if start is not None else psro.PSRO(game, args.meta_solver)
        try:
            run = psro.run(game, args.meta_solver, iterations=args.iterations,
                           target_nash_conv=args.target_nash_conv, callback=show, start=holder["run"])
        except KeyboardInterrupt:
            if state_path is None:
                raise
            console.print(f"interrupted: {state_path} holds the finished iterations; continue with --resume")
            return 130
    final = run.gap()
    measure = {"cce": "cce_gap", "ce": "ce_gap"}.get(args.meta_solver, "nash_conv")
    history = run.history
    seconds = history[-1].seconds if history else 0.0
    payload = {
        "game": args.game,
        "meta_solver": args.meta_solver,
        "oracle": "best-response",
        "iterations": run.iteration,
        "seconds": seconds,
        "nash_conv": final,
        "measure": measure,
        "history": [{"iteration": r.iteration, "seconds": r.seconds, "nash_conv": r.nash_conv,
                     "meta_nash_conv": r.meta_nash_conv} for r in history],
        "population_sizes": [len(population) for population in run.populations],
        "meta_strategy": [strategy.tolist() for strategy in run.meta_strategies],
    }
    if args.out is not None:
        folder = args.out
        for player, population in enumerate(run.populations):
            for index, member in enumerate(population):
                body = strategy_to_dict(game, member) if tree else {"player": player, "strategy": member.tolist()}
                atomic_write_text(os.path.join(folder, "population", f"player{player}_{index:03d}.json"),
                                  json.dumps(body, indent=1) + "\n")
        atomic_write_text(os.path.join(folder, "meta_game.json"), json.dumps({
            "payoffs": run.meta_game.tolist(),
            "meta_strategies": [r.meta_strategies for r in history] + [payload["meta_strategy"]],
        }) + "\n")
        atomic_write_text(os.path.join(folder, "result.json"), json.dumps(payload, indent=2) + "\n")
        if history:
            _psro_plot(os.path.join(folder, "nash_conv.png"), args.game, args.meta_solver, history)
    if args.plot and history:
        _psro_plot(args.plot, args.game, args.meta_solver, history)
    if args.json:
        print(json.dumps(payload))
        return 0
    reached = "" if args.target_nash_conv is None else (
        " (target reached)" if final <= args.target_nash_conv else f" (target {args.target_nash_conv:g} not reached)")
    console.print(f"[bold]PSRO ({args.meta_solver}, exact best responses)[/bold] on {game.title or args.game}: "
                  f"{run.iteration} iterations, populations {payload['population_sizes']}, {seconds:.2f} s")
    label = {"nash_conv": "NashConv of the mixtures", "cce_gap": "CCE gap of the joint meta-strategy",
             "ce_gap": "CE gap of the joint meta-strategy"}[measure]
    console.print(f"{label}: {final:.3e}{reached}")
    if args.out is not None:
        console.print(f"run folder {args.out}: population/, meta_game.json, result.json, nash_conv.png")
    return 0


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


def command_bench(args: argparse.Namespace) -> int:
    import importlib
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isdir(os.path.join(root, "benchmarks")) and root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(f"benchmarks.{args.target}")
    except ImportError as error:
        raise GamelabError(
            f"the benchmarks ship with gamelab's source checkout, not with an installed package ({error})"
        ) from None
    result = module.main(list(args.options))
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "solve": command_solve,
        "games": command_games,
        "solvers": command_solvers,
        "scenarios": command_scenarios,
        "render": command_render,
        "train": command_train,
        "evaluate": command_evaluate,
        "tournament": command_tournament,
        "psro": command_psro,
        "bench": command_bench,
    }
    try:
        from games.memory import parse_size, set_limit

        limit = getattr(args, "max_memory", None)
        set_limit(None if limit is None else parse_size(limit))  # this command's limit, not a previous call's
        return handlers[args.command](args)
    except GamelabError as error:
        print(f"gamelab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        import errno

        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        where = f" ({error.filename})" if error.filename else ""
        print(f"gamelab {args.command}: error: cannot write{where}: {error.strerror}; files written before are "
              "intact (gamelab writes through a temporary file and a rename)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gamelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
