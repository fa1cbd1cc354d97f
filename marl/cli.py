"""The ``gamelab`` command line.

    gamelab solve GAME [--solver NAME] [--iterations N] [--target-nash-conv X] [--seed S]
                       [--device D] [--out FILE] [--plot FILE] [--json]
    gamelab games      list the catalog of classic games
    gamelab solvers    list the solvers and what they do

GAME is a catalog name (``gamelab games``), a Gambit ``.nfg`` path, ``random(3,3,3,seed=1)``,
``random_zero_sum(100,100,seed=0)``, or an OpenSpiel game string: normal-form
(``matrix_rps``, ``blotto``) or sequential (``kuhn_poker``, ``leduc_poker``), which is
compiled to an extensive-form game and solved by the CFR family. For those, ``--out``
writes ``{information state: {action id: probability}}``.

Errors a user can cause (unknown names, malformed files, bad values) print one line on
stderr and exit with code 2; nothing is written. ``--json`` prints one JSON object as the
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


def build_parser() -> argparse.ArgumentParser:
    from solvers import registry

    parser = argparse.ArgumentParser(
        prog="gamelab", description="Compute equilibria of games, train agent populations, run tournaments."
    )
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
    solve.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    commands.add_parser("games", help="list the catalog of classic games")
    commands.add_parser("solvers", help="list the solvers")
    commands.add_parser("scenarios", help="list the Markov-game scenarios and their settings")

    render = commands.add_parser("render", help="write an animated GIF of one episode of a scenario")
    render.add_argument("scenario", help="scenario name; see `gamelab scenarios`")
    render.add_argument("--policy", default="random",
                        help="random, scripted (spread, navigation) or module:callable taking (game, observations)")
    render.add_argument("--out", required=True, help="the .gif to write")
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario setting, e.g. --set num_agents=5 (repeatable)")
    render.add_argument("--steps", type=_positive_int, default=None, help="steps to play (default: one episode)")
    render.add_argument("--seed", type=int, default=0, help="reset seed (default 0)")
    render.add_argument("--fps", type=_positive_int, default=10, help="frames per second (default 10)")
    render.add_argument("--device", default="cpu", help="torch device (default cpu)")

    bench = commands.add_parser("bench", help="run a benchmark against its anchors (from a source checkout)")
    bench.add_argument("target", choices=["sim", "matrix", "cfr"], help="which benchmark")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the benchmark, e.g. --json")
    return parser


def _device(name: str) -> Any:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise GamelabError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GamelabError(f"device {name!r} was asked for, but CUDA is not available")
    return device


def _check_output_path(path: str | None, option: str) -> None:
    import os

    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise GamelabError(f"{option} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise GamelabError(f"{option} {path}: is a folder")


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
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from games.io import atomic_write_bytes

    iterations = [i for i, _ in result.history]
    # A log axis cannot show an exact 0: such points sit on a floor below the smallest positive value.
    positive = [v for _, v in result.history if v > 0]
    floor = min(positive) / 10 if positive else 1e-16
    values = [max(v, floor) for _, v in result.history]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(iterations, values, marker="o" if len(values) < 30 else None)
    axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_ylabel("NashConv")
    axes.set_title(f"{result.solver} on {spec}")
    axes.grid(True, which="both", alpha=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


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
    iterative = solver in registry.ITERATIVE or solver in registry.EXTENSIVE or solver == "nash-sgd"
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

    for name, text in registry.describe().items():
        print(f"{name:18s} {text}")
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


def _load_policy(spec: str, scenario: str) -> Any:
    import importlib

    if spec == "random":
        return "random"
    if spec == "scripted":
        from scenarios.navigation import goal_seeking_policy
        from scenarios.spread import greedy_assignment_policy

        scripted = {"spread": greedy_assignment_policy, "navigation": goal_seeking_policy}
        if scenario not in scripted:
            raise GamelabError(
                f"no scripted policy for {scenario!r} (there are for {', '.join(sorted(scripted))}); "
                "use random or module:callable"
            )
        return scripted[scenario]
    if ":" not in spec:
        raise GamelabError(f"--policy {spec!r}: expected random, scripted or module:callable")
    module_name, attribute = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise GamelabError(f"--policy {spec!r}: cannot import {module_name!r}: {error}") from None
    policy = getattr(module, attribute, None)
    if not callable(policy):
        raise GamelabError(f"--policy {spec!r}: {module_name} has no callable {attribute!r}")
    return policy


def command_render(args: argparse.Namespace) -> int:
    import scenarios
    from games.render import record_gif

    _check_output_path(args.out, "--out")
    if not args.out.lower().endswith(".gif"):
        raise GamelabError(f"--out {args.out!r}: the animation is written as GIF, so the name must end in .gif")
    settings = dict(_setting(text) for text in args.set)
    game = scenarios.make(args.scenario, num_envs=1, device=_device(args.device), seed=args.seed, **settings)
    policy = _load_policy(args.policy, args.scenario)
    frames = record_gif(game, policy, args.out, steps=args.steps, seed=args.seed, fps=args.fps)
    print(f"wrote {args.out}: {frames} frames of {args.scenario}")
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
        "bench": command_bench,
    }
    try:
        return handlers[args.command](args)
    except GamelabError as error:
        print(f"gamelab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gamelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
