"""Pictures: matplotlib without a display, figures written as PNG atomically, learning curves, and
the TensorBoard event writer of a run folder (:func:`summary_writer`).

Every PNG that gamelab writes (learning curves, ``gamelab solve --plot``, tournament
reports) goes through :func:`png_bytes` / :func:`write_png`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any


def summary_writer(folder: str | os.PathLike | None, purge_step: int | None) -> Any:
    """TensorBoard's writer for a run folder (None: no folder, no writer). A resumed run passes the step
    it resumes at as ``purge_step``, so events an interrupted run logged past it are dropped."""
    if folder is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(os.fspath(folder), purge_step=purge_step)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(figure: Any, dpi: int = 110) -> bytes:
    """The PNG of ``figure``, which is closed afterwards."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        pyplot().close(figure)
    return buffer.getvalue()


def write_png(path: str | os.PathLike, figure: Any, dpi: int = 110) -> None:
    """Writes ``figure`` to ``path`` as a PNG, atomically, and closes it."""
    from games.io import atomic_write_bytes

    atomic_write_bytes(path, png_bytes(figure, dpi))


def write_learning_curves(
    path: str | os.PathLike,
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    title: str,
    references: Mapping[str, float] | None = None,
) -> None:
    """Writes a PNG with two panels, return vs env steps and return vs seconds, atomically.

    Args:
        path: the ``.png`` to write.
        curves: ``{label: [{"env_steps", "seconds", "episode_return"[, "greedy_return"]}, ...]}``: the
            exploring training episodes' return as a thin line, greedy evaluations as dots.
        title: the figure title.
        references: ``{label: return}`` drawn as horizontal dashed lines (random play, a script).
    """
    plt = pyplot()
    figure, (by_steps, by_time) = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for index, (label, points) in enumerate(curves.items()):
        color = f"C{index}"
        training = [p for p in points if not math.isnan(p.get("episode_return", math.nan))]
        greedy = [p for p in points if "greedy_return" in p]
        for axes, key in ((by_steps, "env_steps"), (by_time, "seconds")):
            axes.plot([p[key] for p in training], [p["episode_return"] for p in training], color=color, alpha=0.55,
                      linewidth=1, label=f"{label}: training episodes (exploring)" if axes is by_steps else None)
            if greedy:
                axes.plot([p[key] for p in greedy], [p["greedy_return"] for p in greedy], color=color, marker="o",
                          markersize=4, label=f"{label}: greedy evaluation" if axes is by_steps else None)
    for axes, name in ((by_steps, "environment steps"), (by_time, "seconds")):
        for label, value in (references or {}).items():
            axes.axhline(value, linestyle="--", linewidth=1, color="gray")
            axes.annotate(label, (0.01, value), xycoords=("axes fraction", "data"), fontsize=8,
                          color="dimgray", va="bottom")
        axes.set_xlabel(name)
        axes.grid(True, alpha=0.3)
    by_steps.set_ylabel("mean episode return per agent")
    figure.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)  # below the panels, off the data
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    write_png(path, figure)


def write_nash_conv_curve(path: str | os.PathLike, history: Sequence[Any], *, title: str,
                          label: str = "NashConv", log: bool = True) -> None:
    """Writes a PNG with two panels, ``label`` (log scale unless ``log`` is False: an estimate that can be
    negative) against iterations and against seconds, atomically.

    ``history``: records with ``iteration``, ``seconds`` and ``nash_conv`` (a PSRO, XDO or NeuPL run's).
    """
    figure, (by_iteration, by_time) = pyplot().subplots(1, 2, figsize=(10, 4), sharey=True)
    values = [max(record.nash_conv, 1e-16) if log else record.nash_conv for record in history]
    marker = "o" if len(values) < 30 else None
    by_iteration.plot([record.iteration for record in history], values, marker=marker)
    by_time.plot([record.seconds for record in history], values, marker=marker)
    if log:
        by_iteration.set_yscale("log")
    by_iteration.set_ylabel(label)
    for axes, axis_label in ((by_iteration, "iteration"), (by_time, "seconds")):
        axes.set_xlabel(axis_label)
        axes.grid(True, which="both", alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    write_png(path, figure)
