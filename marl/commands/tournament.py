"""`gamelab tournament`: a round-robin from a YAML config, its tables and report."""

from __future__ import annotations

import argparse
import json
from typing import Any

from games.errors import GamelabError
from marl.commands.common import _check_writable_folder


def _print_tournament(console: Any, result: Any) -> None:
    from rich.table import Table

    from marl.tournaments.run import RATING_COLUMNS, rating_cells

    payload = result.to_json()
    ratings = Table(title=f"{result.config.name}: ratings ({'exact' if result.exact else 'sampled'}, "
                          f"{result.matches_total} matches), best first by Nash averaging")
    for column in ("player", *(heading for heading, _ in RATING_COLUMNS), "forfeits"):
        ratings.add_column(column, justify="left" if column == "player" else "right")
    for name in payload["ranking"]:
        ratings.add_row(name, *rating_cells(payload, name), str(payload["forfeits"][name]))
    console.print(ratings)
    labels = payload["rating_labels"]
    console.print("\n".join(f"[dim]{heading}: {labels[key]}[/dim]" for heading, key in RATING_COLUMNS))
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
