"""`gamelab solve`, `games`, `solvers` and `scenarios`: equilibria of one game, and the catalogues."""

from __future__ import annotations

import argparse
import json
from typing import Any

from marl.commands.common import _check_output_path, _device

EXACT_NASH_CONV = 1e-9
"""A result whose NashConv, measured in float64 in the whole game, is at most this is reported as
exact (``"exact": true`` in the JSON); otherwise ``nash_conv`` is the certified bound."""


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
        "exact": result.nash_conv <= EXACT_NASH_CONV,
        "expected_payoffs": result.value,
    }
    if _is_extensive(game):
        from games.extensive_form import strategy_to_dict

        out["strategies"] = strategy_to_dict(game, result.strategies[0])
        if game.action_labels is not None:  # the names a person reads, beside the ids the strategies use
            out["action_names"] = {key: list(names) for key, names in zip(game.infoset_keys, game.action_labels)}
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

    figure, axes = pyplot().subplots(figsize=(6, 4))
    axes.set_title(f"{result.solver} on {spec}")
    if len(result.history) < 2:  # a one-shot solver: one value, no curve
        axes.axis("off")
        axes.text(0.5, 0.5, f"{result.solver} is not iterative: no curve to draw\nNashConv {result.nash_conv:.3e}",
                  ha="center", va="center", fontsize=12, transform=axes.transAxes)
        write_png(path, figure, dpi=120)
        return
    iterations = [i for i, _ in result.history]
    # A log axis cannot show an exact 0: such points sit on a floor below the smallest positive value.
    positive = [v for _, v in result.history if v > 0]
    floor = min(positive) / 10 if positive else 1e-16
    values = [max(v, floor) for _, v in result.history]
    axes.plot(iterations, values, marker="o" if len(values) < 30 else None)
    axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_ylabel("NashConv")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    write_png(path, figure, dpi=120)


EXTRA_LABELS = {"equilibria_found": "equilibria found"}
"""The solver extras a person reads in the text output as they are (``gap`` and ``equilibria`` are
written out below); the others (``polished``, ``lp_fallback``) are in ``--json`` only."""


def _print_summary(console: Any, result: Any) -> None:
    """The expected payoffs, NashConv (marked exact when it is), solver, iterations and seconds."""
    console.print(f"expected payoffs: {', '.join(f'{v:.6g}' for v in result.value)}")
    console.print(f"NashConv: {result.nash_conv:.3e}{' (exact)' if result.nash_conv <= EXACT_NASH_CONV else ''}   "
                  f"solver: {result.solver}   iterations: {result.iterations}   seconds: {result.seconds:.3f}")


def _print_target(console: Any, args: argparse.Namespace, result: Any) -> None:
    """Says whether ``--target-nash-conv`` was met, and what to change when it was not."""
    if args.target_nash_conv is None:
        return
    if result.nash_conv <= args.target_nash_conv:
        console.print(f"target NashConv {args.target_nash_conv:g} reached")
    else:
        console.print(f"[yellow]target NashConv {args.target_nash_conv:g} not reached[/yellow]: NashConv "
                      f"{result.nash_conv:.3e} after {result.iterations} iterations; raise --iterations or "
                      "try another --solver (see gamelab solvers)")


def _print_extensive_result(console: Any, game: Any, result: Any, shown: int = 24) -> None:
    from rich.table import Table

    from games.extensive_form import strategy_to_dict

    table = Table(title=f"average strategy ({game.num_infosets} infosets)", title_justify="left")
    table.add_column("player", justify="right")
    table.add_column("information state")
    table.add_column("action: probability")
    mapping = strategy_to_dict(game, result.strategies[0])
    players = game.infoset_player.tolist()
    labels = game.action_labels
    for infoset, (key, row) in enumerate(list(mapping.items())[:shown]):
        names = labels[infoset] if labels is not None else [str(a) for a in row]
        table.add_row(str(players[infoset]), key.replace("\n", " | "),  # whole: rows must not look alike
                      "  ".join(f"{name}: {p:.4f}" for name, p in zip(names, row.values())))
    if game.num_infosets > shown:
        table.caption = f"{game.num_infosets - shown} more infosets: --out FILE writes them all"
    console.print(table)
    _print_summary(console, result)


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
            if probability >= 5e-7 or len(strategy) <= 12:  # longer lists leave out what prints as 0.000000
                table.add_row(name, f"{probability:.6f}")
                shown += 1
        if shown < len(strategy):
            table.caption = f"{len(strategy) - shown} more actions, each with probability below 5e-7 (--json lists all)"
        console.print(table)
    if result.joint is not None:
        console.print(f"joint distribution (correlated): {result.joint.tolist()}")
    _print_summary(console, result)
    for key, value in result.extra.items():
        if key == "gap":
            kind = "coarse correlated" if result.solver == "cce" else "correlated"
            console.print(f"{kind}-equilibrium gap: {value:.3e} (NashConv above is of the joint's marginals)")
        elif key == "equilibria" and len(value) > 1:
            for number, profile in enumerate(value, start=1):
                console.print(f"equilibrium {number}: " + " / ".join(
                    " ".join(f"{name}:{p:.4f}" for name, p in zip(names, strategy) if p > 5e-7)
                    for names, strategy in zip(game.action_names, profile)))
        elif key in EXTRA_LABELS:
            console.print(f"{EXTRA_LABELS[key]}: {value}")


def _load_with_progress(console: Any, spec: str, device: Any) -> Any:
    """``load_game``, showing the nodes walked and the memory taken while a game tree compiles."""
    import torch

    from games.extensive_form import BYTES_PER_NODE
    from games.loading import load_game
    from games.memory import format_bytes

    if not console.is_terminal:
        return load_game(spec, device=device, dtype=torch.float64)
    with console.status(f"loading {spec}") as status:
        def progress(nodes: int) -> None:
            status.update(f"compiling {spec}: {nodes:,} nodes walked, about {format_bytes(nodes * BYTES_PER_NODE)}")

        return load_game(spec, device=device, dtype=torch.float64, progress=progress)


def command_solve(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from games.io import atomic_write_text
    from solvers import registry

    console = Console(stderr=args.json)
    device = _device(args.device)
    _check_output_path(args.out, "--out")
    _check_output_path(args.plot, "--plot")
    if args.solver != "auto":
        registry.spec(args.solver)  # an unknown name fails (with a did-you-mean) before the game is loaded
    game = _load_with_progress(console, args.game, device)
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
    if args.target_nash_conv is not None:
        payload["target_nash_conv"] = args.target_nash_conv
        payload["target_reached"] = result.nash_conv <= args.target_nash_conv
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
        _print_target(console, args, result)
        if args.plot and len(result.history) < 2:
            console.print(f"{args.plot}: {result.solver} is not iterative, so there is no curve to draw; the "
                          "picture states its one NashConv")
    return 0


def command_games(_: argparse.Namespace) -> int:
    """The games ``gamelab solve`` takes: the catalog, the generators, example files, OpenSpiel's games."""
    import os

    from games import catalog
    from games.adapters.openspiel import registered_games

    print("Classic games (catalog names):")
    for name in catalog.names():
        print(f"  {name:32s} {catalog.load(name).title}")
    print("Generators:")
    print("  random(3,3,3,seed=1)              a general-sum game, one payoff table per player (any sizes)")
    print("  random_zero_sum(100,100,seed=0)   a 2-player zero-sum game")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    files = [os.path.join(folder, name) for folder in ("examples", os.path.join("tests", "data", "gambit"))
             if os.path.isdir(os.path.join(root, folder))
             for name in sorted(os.listdir(os.path.join(root, folder))) if name.endswith((".nfg", ".efg"))]
    if files:
        shown = [path for path in files if path.startswith("examples")] or files[:5]
        print(f"Gambit files ({len(files)} in this checkout; a path to any .nfg or .efg works):")
        for path in shown:
            print(f"  {path}")
        if len(files) > len(shown):
            print(f"  ... and {len(files) - len(shown)} more in tests/data/gambit/")
    games = registered_games()
    print(f"OpenSpiel games that load with default parameters ({len(games)}; others take name(param=value)):")
    print(f"  {'name':28s} {'kind':13s} {'information':11s} {'players':>7s} {'max length':>10s} {'actions':>8s}")
    for row in games:
        print(f"  {row['name']:28s} {row['kind']:13s} {row['information']:11s} {row['players']:7d} "
              f"{row['max_length']:10d} {row['actions']:8d}")
    print("Sequential games are compiled to a tree; large ones are refused with an estimate. "
          "Normal-form ones load as payoff tables.")
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
