"""A tournament's report folder: a payoff heatmap, rating bars and an HTML page that shows them.

``write_report(result, folder)`` writes, each file atomically:

- ``payoffs.png``: the payoff table as a heatmap, every cell annotated (with its 95%
  confidence half-width for sampled play);
- ``ratings.png``: one bar chart per method, titled with what it measures: Nash averaging,
  mean payoff, Elo (fitted to wins) with its standard-error bars, alpha-rank mass and the
  meta-game Nash mixture, players best first;
- ``results.json``: what ``gamelab tournament --json`` prints;
- ``index.html``: the tables and both images, readable offline.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

import numpy as np

from games.io import atomic_write_bytes, atomic_write_text
from marl.plots import png_bytes, pyplot


def payoff_heatmap(result: Any) -> bytes:
    """PNG bytes of the payoff table (row player's mean payoff)."""
    plt = pyplot()
    names = result.names
    payoffs = result.tables.payoffs
    confidence = result.tables.confidence
    n = len(names)
    size = max(4.5, 0.6 * n + 2.5)
    figure, axes = plt.subplots(figsize=(size + 1.2, size))
    bound = float(np.abs(payoffs).max()) or 1.0
    image = axes.imshow(payoffs, cmap="RdBu", vmin=-bound, vmax=bound)
    axes.set_xticks(range(n), names, rotation=45, ha="right")
    axes.set_yticks(range(n), names)
    axes.set_xlabel("opponent")
    axes.set_ylabel("player (row payoff)")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                text = f"{payoffs[i, j]:.2f}"
                if not result.exact and confidence[i, j] > 0:
                    text += f"\n±{confidence[i, j]:.2f}"
                axes.text(j, i, text, ha="center", va="center", fontsize=7 if n > 8 else 8,
                          color="white" if abs(payoffs[i, j]) > 0.6 * bound else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_title(f"{result.config.name}: mean payoff of the row player")
    figure.tight_layout()
    return png_bytes(figure)


def rating_bars(result: Any) -> bytes:
    """PNG bytes of one bar chart per rating method, each titled with what it measures.

    Players are in the ranking's order (Nash averaging, then mean payoff); values within
    rounding noise of zero are drawn as zero, and the Elo axis is centred on its base, 1500.
    """
    from marl.tournaments.run import denoised, mean_payoffs, ranking

    plt = pyplot()
    names = result.names
    rated = result.ratings
    payoffs = result.tables.payoffs
    order = [names.index(name) for name in ranking(names, result.tables, rated)]
    elo = rated["elo"]
    panels = [
        ("Nash averaging\n(payoff against the Nash mixture)", denoised(rated["nash_averaging"].values, payoffs), None),
        ("mean payoff\n(against the other players)", denoised(mean_payoffs(payoffs), payoffs), None),
        ("Elo: Bradley-Terry on wins\n(blind to payoff sizes)", np.asarray(elo.values), elo.errors),
        ("alpha-rank mass", np.asarray(rated["alpha_rank"].values), None),
        ("meta-game Nash mixture", denoised(rated["meta_nash"].mixture, payoffs), None),
    ]
    height = max(3.0, 0.32 * len(names) + 1.6)
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), height), sharey=True)
    positions = np.arange(len(names))
    for axis, (title, values, errors) in zip(axes, panels):
        values = np.asarray(values, dtype=float)[order]
        errors = None if errors is None else np.asarray(errors, dtype=float)[order]
        base = 1500.0 if title.startswith("Elo") else 0.0
        axis.barh(positions, values - base, left=base, xerr=errors, color="#4c72b0", ecolor="#333333", capsize=3)
        axis.set_title(title, fontsize=9)
        axis.axvline(base, color="#999999", linewidth=0.8)
        reach = float(np.max(np.abs(values - base) + (0 if errors is None else errors))) if len(values) else 0.0
        if reach == 0.0:
            reach = 1.0 if title.startswith("Elo") else 1e-3  # nothing to show: an axis around the base, no bars
        low = base if float(values.min(initial=0.0)) >= 0.0 and base == 0.0 else base - 1.1 * reach  # masses: from 0
        axis.set_xlim(low, base + 1.1 * reach)
    axes[0].set_yticks(positions, [names[i] for i in order])
    axes[0].invert_yaxis()
    figure.suptitle(f"{result.config.name}: ratings, best first by Nash averaging", fontsize=11)
    figure.tight_layout()
    return png_bytes(figure)


def _html(result: Any, payload: dict[str, Any]) -> str:
    from marl.tournaments.run import RATING_COLUMNS, rating_cells

    names = result.names
    escape = html.escape
    rows = [f"<tr><td>{escape(name)}</td>" + "".join(f"<td>{cell}</td>" for cell in rating_cells(payload, name))
            + f"<td>{payload['forfeits'][name]}</td></tr>" for name in payload["ranking"]]
    labels = payload["rating_labels"]
    legend = "".join(f"<li><b>{escape(heading)}</b>: {escape(labels[key])}</li>" for heading, key in RATING_COLUMNS)
    headings = "".join(f"<th>{escape(heading)}</th>" for heading, _ in RATING_COLUMNS)
    payoffs = result.tables.payoffs
    confidence = result.tables.confidence
    header = "".join(f"<th>{escape(name)}</th>" for name in names)
    cells = []
    for i, name in enumerate(names):
        entries = "".join(
            f"<td>{payoffs[i, j]:+.3f}" + ("" if result.exact else f" ± {confidence[i, j]:.3f}") + "</td>"
            for j in range(len(names))
        )
        cells.append(f"<tr><th>{escape(name)}</th>{entries}</tr>")
    forfeits = "".join(f"<li><b>{escape(name)}</b>: {escape(error)}</li>"
                       for name, error in payload["forfeit_errors"].items())
    evaluation = "exact expected payoffs" if result.exact else f"{result.config.matches_per_pair} sampled matches per pair"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(result.config.name)}: gamelab tournament</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f4f4f4}}img{{max-width:100%}}</style>
</head><body>
<h1>{escape(result.config.name)}</h1>
<p>Game <code>{escape(result.config.game)}</code>, {len(names)} players, {evaluation}, seed {result.config.seed};
{result.matches_total} matches in <code>{escape(os.path.basename(result.database))}</code>.</p>
<h2>Ratings</h2>
<table><tr><th>player</th>{headings}<th>forfeits</th></tr>
{''.join(rows)}</table>
<ul>{legend}</ul>
<p>Meta-game Nash: value {payload['meta_nash_value']:+.4f}, exploitability {payload['meta_nash_exploitability']:.2e}.</p>
<img src="ratings.png" alt="rating bars">
<h2>Payoffs (row player's mean payoff{'' if result.exact else ', 95% confidence'})</h2>
<table><tr><th></th>{header}</tr>{''.join(cells)}</table>
<img src="payoffs.png" alt="payoff heatmap">
{'<h2>Forfeits</h2><ul>' + forfeits + '</ul>' if forfeits else ''}
</body></html>
"""


def write_report(result: Any, folder: str | os.PathLike) -> list[str]:
    """Writes the report files into ``folder`` (created if needed); returns their paths."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    payload = result.to_json()
    files = {
        "payoffs.png": payoff_heatmap(result),
        "ratings.png": rating_bars(result),
    }
    written = []
    for name, data in files.items():
        path = os.path.join(folder, name)
        atomic_write_bytes(path, data)
        written.append(path)
    for name, text in (("results.json", json.dumps(payload, indent=2) + "\n"), ("index.html", _html(result, payload))):
        path = os.path.join(folder, name)
        atomic_write_text(path, text)
        written.append(path)
    return written


__all__ = ["payoff_heatmap", "rating_bars", "write_report"]
