"""`gamelab neupl`: NeuPL and Simplex-NeuPL runs on game trees, normal-form games and two-team Markov games,
run folders and plots.

A run folder (``--out DIR``) holds:

- ``state.pt``: the network, optimizer and everything a resumed run needs (written
  atomically after every iteration, read with ``weights_only=True``; a Markov run, whose
  state holds its replay buffer, writes it every 5 minutes and when the command ends, Ctrl-C
  included);
- ``graphs.json``: Sigma, U and the meta-Nash mixture at every meta-graph update;
  on a Markov game (``marl.neupl_markov``) U is measured from episodes and the NashConv
  recorded is the estimate ``estimated_nash_conv``;
- ``result.json``: what ``--json`` prints;
- ``interaction_graph.png``: the final Sigma drawn as a graph (networkx), and
  ``nash_conv.png``: NashConv of the meta-Nash mixture against iterations and seconds;
- TensorBoard event files (NashConv and effective population per iteration).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from games.errors import GamelabError
from marl.commands.common import _check_output_path, _flag, _run_folder

DEFAULT_ITERATIONS = 30
MARKOV_FLAGS = ("num_envs", "sims_per_entry", "set", "param")
TREE_FLAGS = ("predict_opponent", "learning_rate", "gradient")
SAVE_MINUTES = 5.0
"""A Markov run writes its state.pt at most this often, and when the command ends."""
SETTING_FLAGS = {"population": "population", "graph": "graph", "meta_solver": "meta_solver", "simplex": "simplex",
                 "predict_opponent": "predict_opponent", "steps": "steps_per_iteration", "learning_rate": "learning_rate", "gradient": "gradient",
                 "seed": "seed"}
MARKOV_SETTING_FLAGS = {**{flag: field for flag, field in SETTING_FLAGS.items() if flag not in TREE_FLAGS},
                        "sims_per_entry": "sims_per_entry"}
"""The flags of a Markov run's own settings (``MarkovNeuPLConfig``) and their fields."""


def _graph_plot(path: str, sigma: Any, title: str) -> None:
    """Sigma as a directed graph: an edge i -> j of width sigma_ij where policy i trains against policy j."""
    import networkx as nx

    from marl.plots import pyplot, write_png

    size = sigma.shape[0]
    graph = nx.DiGraph()
    graph.add_nodes_from(range(size))
    for i in range(size):
        for j in range(size):
            if float(sigma[i, j]) > 1e-3:
                graph.add_edge(i, j, weight=float(sigma[i, j]))
    figure, axes = pyplot().subplots(figsize=(6, 6))
    layout = nx.circular_layout(graph)
    nx.draw_networkx_nodes(graph, layout, ax=axes, node_color="#8fb3d9", node_size=420)
    nx.draw_networkx_labels(graph, layout, ax=axes, labels={i: str(i) for i in range(size)}, font_size=9)
    edges = list(graph.edges(data="weight"))
    nx.draw_networkx_edges(graph, layout, ax=axes, edgelist=[(i, j) for i, j, _ in edges],
                           width=[0.5 + 3.5 * w for _, _, w in edges], alpha=0.7, arrows=True,
                           connectionstyle="arc3,rad=0.08", arrowsize=12)
    axes.set_title(title)
    axes.set_axis_off()
    figure.tight_layout()
    write_png(path, figure)


def _config(args: argparse.Namespace, state: dict | None, state_path: str | None) -> Any:
    """The run's settings: from the flags, or on ``--resume`` the recorded ones (a flag that differs is refused)."""
    from marl.neupl import NeuPLConfig, config_from_record

    given = {field: getattr(args, flag) for flag, field in SETTING_FLAGS.items() if getattr(args, flag) is not None}
    if state is not None:
        recorded = config_from_record(state.get("config"), state_path)
        for flag, field in SETTING_FLAGS.items():
            if field in given and given[field] != getattr(recorded, field):
                raise GamelabError(f"--resume: {state_path} was run with {_flag(flag)} {getattr(recorded, field)}; "
                                   "a resumed run keeps its settings")
        return recorded
    config = NeuPLConfig(**given)
    config.check()
    return config


def _tree_run(args: argparse.Namespace, state: dict | None, state_path: str | None) -> Any:
    from marl.commands.common import _device
    from marl.neupl import NeuPL, load_neupl_game

    given = [name for name in MARKOV_FLAGS if getattr(args, name) not in (None, [])]
    if given:
        raise GamelabError(f"{_flag(given[0])} applies to Markov games; {args.game} is a game tree or normal-form "
                           "game, whose payoffs are exact")
    config = _config(args, state, state_path)
    device = _device(args.device or "cpu")
    game, observations, decisions = load_neupl_game(args.game, device)
    neupl = NeuPL(game, config, observations=observations, decisions=decisions)
    if state is not None:
        neupl.load_state_dict(state, source=state_path)
    return neupl


def _markov_run(args: argparse.Namespace, state: dict | None, state_path: str | None) -> Any:
    """A NeuPL run of a Markov game: from the flags, or on ``--resume`` the saved run (whose settings it keeps)."""
    import dataclasses

    from marl.commands.common import _device, _setting, _trainer_params
    from marl.maddpg import MADDPGConfig
    from marl.neupl_markov import MarkovNeuPL, MarkovNeuPLConfig, default_learner, from_state

    tree_only = [name for name in TREE_FLAGS if getattr(args, name) is not None]
    if tree_only:
        raise GamelabError(f"{_flag(tree_only[0])} applies to game trees; {args.game} is a Markov game, whose "
                           "learner is MADDPG (set its settings with --param)")
    device = _device(args.device or "cpu")
    if state is not None:
        given = [name for name in dict.fromkeys((*MARKOV_SETTING_FLAGS, *MARKOV_FLAGS))
                 if getattr(args, name) not in (None, [])]
        if given:
            raise GamelabError(f"--resume: {state_path} keeps the settings it was started with; drop "
                               f"{_flag(given[0])}, or start a new run")
        return from_state(state, device, state_path)
    params = _trainer_params(args.param, {"env_steps": "--steps", "num_envs": "--num-envs", "seed": "--seed"})
    learner = default_learner()
    try:
        learner = MADDPGConfig.from_dict({**dataclasses.asdict(learner), **params,
                                          **({"num_envs": args.num_envs} if args.num_envs else {})})
    except TypeError as error:
        raise GamelabError(f"--param: {error}") from None
    values = {field: getattr(args, flag) for flag, field in MARKOV_SETTING_FLAGS.items()
              if getattr(args, flag) is not None}
    config = MarkovNeuPLConfig(**values, learner=learner)
    return MarkovNeuPL(args.game, dict(_setting(text) for text in args.set), config, device)


def command_neupl(args: argparse.Namespace) -> int:
    import io
    import math
    import time

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from games.io import atomic_write_bytes, atomic_write_text
    from marl.envs import is_markov_game
    from marl.neupl import run
    from marl.plots import summary_writer, write_nash_conv_curve

    _check_output_path(args.plot, "--plot")
    markov = is_markov_game(args.game)
    state_path, state = _run_folder(args, "NeuPL")
    neupl = _markov_run(args, state, state_path) if markov else _tree_run(args, state, state_path)
    config = neupl.config
    measure = "estimated_nash_conv" if markov else "nash_conv"
    iterations = None if args.minutes is not None else (args.iterations or DEFAULT_ITERATIONS)
    budget = None if args.minutes is None else neupl._seconds + 60 * args.minutes

    writer = summary_writer(args.out, neupl.iteration + 1 if args.resume else None)

    # A Markov run's state holds its replay buffer (about 200 MB by default, 1.4 s to write): it is
    # written every SAVE_MINUTES and when the command ends, and in between each finished iteration is
    # kept in memory, so that Ctrl-C still leaves state.pt at the last finished iteration.
    saved = {"at": time.perf_counter(), "pending": None}

    def save(state: dict | None = None) -> None:
        buffer = io.BytesIO()
        torch.save({**(neupl.state_dict() if state is None else state), "game": args.game}, buffer)
        atomic_write_bytes(state_path, buffer.getvalue())
        saved["at"], saved["pending"] = time.perf_counter(), None

    def save_pending() -> None:
        if state_path is not None and saved["pending"] is not None:
            save(saved["pending"])

    console = Console(stderr=args.json)
    total = iterations if iterations is not None else None
    started = time.perf_counter()
    with Progress(TextColumn(f"[bold]NeuPL {config.graph}"), BarColumn(),
                  TextColumn("iteration {task.completed}" + ("/{task.total}" if total else "")),
                  TextColumn("effective population {task.fields[effective]}"),
                  TextColumn("NashConv {task.fields[nash_conv]}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("neupl", total=total, completed=neupl.iteration, effective="-", nash_conv="-")

        def show(record: Any) -> None:
            progress.update(task, completed=record.iteration, effective=record.effective_population,
                            nash_conv=f"{record.nash_conv:.2e}{' (est.)' if markov else ''}")
            if writer is not None:
                writer.add_scalar(f"neupl/{measure}", record.nash_conv, record.iteration)
                writer.add_scalar("neupl/effective_population", record.effective_population, record.iteration)
                writer.flush()
            if state_path is not None:
                if markov and time.perf_counter() - saved["at"] < 60 * SAVE_MINUTES:
                    saved["pending"] = neupl.state_dict()
                else:
                    save()

        try:
            run(neupl, iterations=iterations, seconds=budget, callback=show)
        except KeyboardInterrupt:
            if state_path is None:
                raise
            save_pending()
            console.print(f"interrupted: {state_path} holds the finished iterations; continue with --resume")
            return 130
        finally:
            if writer is not None:
                writer.close()
        save_pending()
    history = neupl.history
    weights = neupl.meta_nash()

    def number(value: float) -> float | None:
        return None if value is None or math.isnan(value) else value

    if markov:
        nash_conv = number(history[-1].nash_conv) if history else neupl.estimated_nash_conv()
    else:
        nash_conv = history[-1].nash_conv if history else neupl.nash_conv(weights)
    payload = {
        "game": args.game,
        "graph": config.graph,
        "meta_solver": config.meta_solver,
        "population": config.population,
        "simplex": config.simplex,
        **({"transitions": neupl.transitions, "updates": neupl.updates} if markov else {"gradient": config.gradient}),
        "iterations": neupl.iteration,
        "effective_population": neupl.effective_population(),
        "measure": measure,
        "nash_conv": nash_conv,
        "meta_nash": weights.tolist(),
        "history": [{"iteration": r.iteration, "seconds": r.seconds, "nash_conv": number(r.nash_conv),
                     "effective_population": r.effective_population} for r in history],
        "seconds": neupl._seconds,
        "command_seconds": time.perf_counter() - started,
    }
    if not markov and config.predict_opponent > 0:
        learners = neupl.learners()
        payload["opponent_prediction_error"] = neupl.prediction_error(neupl.sigma[learners]) if learners else None
    title = f"NeuPL ({config.graph}, N={config.population}) on {args.game}"
    label = ("estimated NashConv (what the last policy gains over its mixture)" if markov
             else "NashConv of the meta-Nash mixture")
    if args.out is not None:
        folder = args.out
        atomic_write_text(os.path.join(folder, "graphs.json"), json.dumps(
            [{"iteration": r.iteration, "sigma": r.sigma, "payoffs": r.payoffs, "meta_nash": r.meta_nash}
             for r in history]) + "\n")
        atomic_write_text(os.path.join(folder, "result.json"), json.dumps(payload, indent=2) + "\n")
        _graph_plot(os.path.join(folder, "interaction_graph.png"), neupl.sigma.cpu(), f"{title}: Sigma")
        if history:
            write_nash_conv_curve(os.path.join(folder, "nash_conv.png"), history, title=title, label=label, log=not markov)
    if args.plot and history:
        write_nash_conv_curve(args.plot, history, title=title, label=label, log=not markov)
    if args.json:
        print(json.dumps(payload))
        return 0
    console.print(f"[bold]{title}[/bold]: {neupl.iteration} iterations, effective population "
                  f"{payload['effective_population']}, {neupl._seconds:.2f} s")
    if markov:
        estimate = "-" if nash_conv is None else f"{nash_conv:.3f}"
        console.print(f"estimated NashConv (the last policy's gain over the mixture it answers): {estimate}; "
                      f"meta-Nash mixture {[round(w, 3) for w in payload['meta_nash']]}")
    else:
        console.print(f"NashConv of the meta-Nash mixture: {payload['nash_conv']:.3e}")
    if args.out is not None:
        console.print(f"run folder {args.out}: state.pt, graphs.json, result.json, interaction_graph.png, "
                      "nash_conv.png, TensorBoard events")
    return 0
