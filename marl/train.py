"""A MADDPG training run: games, the loop, logs, checkpoints and resuming.

The run reads top to bottom (``train``):

1. build the learner (``marl.maddpg.MADDPG``) and a replay buffer on the training device;
2. reset the game's ``B`` copies (or restore everything from a checkpoint);
3. loop: act in every copy with exploration, step, store ``B`` transitions, and run one
   update per ``transitions_per_update`` transitions once ``learning_starts`` are stored;
4. every ``log_every`` transitions, log the mean return of the episodes that finished
   (per agent, and per team when there are several; on the game's reward scale) to TensorBoard and the caller;
5. every ``checkpoint_every`` transitions or ``checkpoint_minutes`` minutes, whichever comes
   first, at the next step where every copy starts a new episode, write ``checkpoint.pt``
   atomically. Ctrl-C (and SIGTERM through the CLI) writes one too.

Resuming loads the checkpoint (weights, targets, optimizers, generators, the replay buffer,
counters, and the game's state: every copy's positions, velocities and counters, so a run
stopped mid-episode goes on mid-episode) and goes on: the resumed run is the uninterrupted
run, transition for transition, wherever it stopped. PettingZoo environments keep their
state in Python objects that cannot be saved; their interrupted episodes restart.

Games come from ``marl.envs.make_game``: scenario names, or PettingZoo environments
through the adapter.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from games.errors import GamelabError
from games.markov import teams
from marl import checkpoint
from marl.errors import TrainingError
from marl.maddpg import MADDPG, GameSpec, MADDPGConfig
from marl.plots import summary_writer
from marl.replay import ReplayBuffer

CHECKPOINT_FILE = "checkpoint.pt"
POLICY_FILE = "policy.pt"


@dataclass
class TrainResult:
    """What ``train`` returns."""

    learner: MADDPG
    env_steps: int
    updates: int
    seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)
    """One entry per log: ``env_steps``, ``seconds``, ``episode_return`` (mean per agent over the
    exploring training episodes; the callback's and TensorBoard's stats add ``episode_return/ROLE``
    per team when there are several) and, at evaluation points, ``greedy_return``."""


def _joint(values: dict[str, torch.Tensor], agents: tuple[str, ...], device: torch.device) -> torch.Tensor:
    return torch.cat([values[agent].reshape(values[agent].shape[0], -1) for agent in agents], dim=1).to(
        device=device, dtype=torch.float32
    )


def train(
    game: Any,
    config: MADDPGConfig,
    *,
    device: torch.device | str = "cpu",
    run_dir: str | os.PathLike | None = None,
    game_name: str = "",
    game_settings: dict[str, Any] | None = None,
    resume: bool = False,
    saved: dict[str, Any] | None = None,
    time_limit: float | None = None,
    callback: Callable[[dict[str, float], MADDPG], None] | None = None,
    initial_actors: dict[str, torch.Tensor] | None = None,
    evaluate: Callable[[MADDPG], float] | None = None,
) -> TrainResult:
    """Trains MADDPG (or independent DDPG) on ``game`` for ``config.env_steps`` transitions.

    Args:
        game: a ``MarkovGame`` with ``config.num_envs`` copies.
        config: the settings.
        device: where the networks and the replay buffer live.
        run_dir: folder for TensorBoard logs and ``checkpoint.pt``; ``None`` writes nothing.
        game_name, game_settings: recorded in checkpoints, and checked against on resume.
        resume: continue from ``run_dir/checkpoint.pt``.
        saved: that checkpoint, when the caller has already read it with ``checkpoint.load``.
        time_limit: stop after this many seconds of this call (the run can be resumed).
        callback: called as ``callback(stats, learner)`` after every log.
        initial_actors: actor weights to start from instead of fresh ones (a warm start; the
            target actors start equal to them); ignored when resuming.
        evaluate: ``evaluate(learner) -> mean return per agent`` of the greedy policy, on games of
            its own (it must not touch the training game or the learner's generator); called at
            the first log after every ``config.eval_every`` transitions and at the end, and
            recorded as ``greedy_return`` in the stats and the curve.
    """
    device = torch.device(device)
    if game.num_envs != config.num_envs:
        raise TrainingError(f"the game has {game.num_envs} copies but config.num_envs is {config.num_envs}")
    spec = GameSpec.of(game)
    settings = dict(game_settings or {})
    learner = MADDPG(spec, config, device)
    if initial_actors is not None and not resume:
        try:
            learner.actors.load_state_dict(initial_actors)
        except RuntimeError as error:
            raise TrainingError(f"the actors to start from do not fit this game's agents: {error}") from None
        learner.target_actors.load_state_dict(initial_actors)
    buffer = ReplayBuffer(config.buffer_size, learner.joint_observation_size, learner.joint_action_size,
                          spec.num_agents, device=device)
    copies, agents = config.num_envs, spec.agents
    members = torch.zeros(copies, spec.num_agents, dtype=torch.int64, device=device)
    env_steps, updates, seconds_before, curve = 0, 0, 0.0, []
    path = None if run_dir is None else os.path.join(os.fspath(run_dir), CHECKPOINT_FILE)

    if resume:
        if path is None:
            raise TrainingError("resuming needs a run folder")
        saved = checkpoint.load(path) if saved is None else saved
        checkpoint.check_game(saved, path, game_name, settings)
        if saved["spec"] != spec.to_dict():
            raise checkpoint.CheckpointError(f"{path}: the checkpoint's agents and spaces do not fit the game")
        if "run" not in saved:
            raise checkpoint.CheckpointError(f"{path}: a policy file, not a training checkpoint; it cannot be resumed")
        run = saved["run"]
        try:
            learner.load_state_dict(saved["learner"])
            buffer.load_state_dict(run["replay"])
            env_steps, updates, seconds_before = int(run["env_steps"]), int(run["updates"]), float(run["seconds"])
            curve = list(run["curve"])
            members.copy_(run["members"].to(device))
            episodes = run["episodes"]
        except (AttributeError, KeyError, RuntimeError, TypeError, ValueError) as error:
            raise checkpoint.CheckpointError(f"{path}: the checkpoint does not fit this run: {error}") from None
        observations, _ = game.reset(seed=config.seed, options={"episodes": episodes})
        if run.get("game_state") is not None:  # stopped mid-episode: the copies go on from where they were
            try:
                game.load_state_dict(run["game_state"])
            except GamelabError as error:
                raise checkpoint.CheckpointError(f"{path}: the checkpoint's game state does not fit: {error}") from None
            observations = {agent: value.to(game.device) for agent, value in run["game_state"]["observed"].items()}
    else:
        observations, _ = game.reset(seed=config.seed)

    writer = summary_writer(run_dir, env_steps if resume else None)

    last_written = 0.0  # elapsed() when the last checkpoint was written

    resumable = bool(getattr(game, "resumable", False))

    def write_checkpoint() -> None:
        nonlocal last_written
        if path is None:
            return
        last_written = elapsed()
        # A game whose state lives in tensors is saved as it is, mid-episode or not; in other
        # games (PettingZoo environments) copies in the middle of an episode restart at their next one.
        episodes = (game.episodes + (0 if resumable else (game.steps > 0).to(game.episodes.dtype))).cpu()
        checkpoint.save(path, {
            "game": {"name": game_name, "settings": settings},
            "spec": spec.to_dict(),
            "config": dataclasses.asdict(config),
            "learner": learner.state_dict(),
            "run": {
                "env_steps": env_steps, "updates": updates, "seconds": seconds_before + elapsed(),
                "curve": curve, "members": members.cpu(), "episodes": episodes, "replay": buffer.state_dict(),
                "game_state": game.state_dict() if resumable else None,
                "returns": returns.cpu(), "finished": [finished_sum.cpu(), finished_count.cpu()],
            },
        })

    start = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - start

    joint_observations = _joint(observations, agents, device)
    # Returns per copy: column 0 is the mean over every agent, then one column per team (role).
    roles = teams(agents)
    weights = torch.zeros(spec.num_agents, 1 + len(roles), dtype=torch.float64, device=device)
    weights[:, 0] = 1.0 / spec.num_agents
    for column, team in enumerate(roles.values(), start=1):
        weights[[agents.index(agent) for agent in team], column] = 1.0 / len(team)
    returns = torch.zeros(copies, 1 + len(roles), dtype=torch.float64, device=device)
    finished_sum = torch.zeros(1 + len(roles), dtype=torch.float64, device=device)
    finished_count = torch.zeros((), dtype=torch.float64, device=device)
    if resume and run.get("game_state") is not None:  # the running episodes' returns so far
        returns.copy_(run["returns"])
        finished_sum.copy_(run["finished"][0])
        finished_count.copy_(run["finished"][1])
    losses: dict[str, torch.Tensor] = {}
    next_log = (env_steps // config.log_every + 1) * config.log_every
    next_eval = (env_steps // config.eval_every + 1) * config.eval_every if config.eval_every else None
    next_checkpoint = (env_steps // config.checkpoint_every + 1) * config.checkpoint_every
    slack = copies * max(1, min(game.max_steps, 10_000))
    interrupted = False
    try:
        while env_steps < config.env_steps:
            if time_limit is not None and elapsed() >= time_limit:
                break
            joint_actions = learner.act(joint_observations, members, explore=True)
            observations, rewards, terminated, truncated, infos = game.step(
                learner.game_actions(joint_actions, game.device)
            )
            final = _joint({agent: infos[agent]["final_observation"] for agent in agents}, agents, device)
            reward_rows = torch.stack([rewards[agent] for agent in agents], dim=1).to(device, torch.float32)
            ended = torch.stack([terminated[agent] for agent in agents], dim=1).to(device)
            cut = torch.stack([truncated[agent] for agent in agents], dim=1).to(device)
            buffer.add(observations=joint_observations, actions=joint_actions, rewards=reward_rows,
                       next_observations=final, terminated=ended.float(), members=members)
            joint_observations = _joint(observations, agents, device)
            env_steps += copies

            done = (ended | cut).any(1)
            returns += reward_rows.to(torch.float64) @ weights
            finished_sum += (returns * done[:, None]).sum(0)
            finished_count += done.sum()
            returns.masked_fill_(done[:, None], 0.0)
            if learner.members > 1:
                fresh = torch.randint(learner.members, members.shape, generator=learner.generator, device=device)
                members = torch.where(done[:, None], fresh, members)

            if env_steps >= config.learning_starts:
                due = (env_steps - config.learning_starts) // config.transitions_per_update + 1
                while updates < due:
                    losses = learner.update(buffer.sample(config.batch_size, learner.generator))
                    updates += 1

            if env_steps >= next_log or env_steps >= config.env_steps:
                next_log = (env_steps // config.log_every + 1) * config.log_every
                count = float(finished_count)
                sums = finished_sum.tolist()
                stats = {
                    "env_steps": float(env_steps),
                    "updates": float(updates),
                    "seconds": seconds_before + elapsed(),
                    "episode_return": sums[0] / count if count else math.nan,
                    **({f"episode_return/{role}": total / count if count else math.nan
                        for role, total in zip(roles, sums[1:])} if len(roles) > 1 else {}),
                    **{name: float(value) for name, value in losses.items()},
                }
                finished_sum.zero_()
                finished_count.zero_()
                if evaluate is not None and next_eval is not None and (
                        env_steps >= next_eval or env_steps >= config.env_steps):
                    next_eval = (env_steps // config.eval_every + 1) * config.eval_every
                    stats["greedy_return"] = float(evaluate(learner))
                if count or "greedy_return" in stats:
                    curve.append({key: stats[key] for key in ("env_steps", "seconds", "episode_return", "greedy_return")
                                  if key in stats})
                if writer is not None:
                    for name, value in stats.items():
                        if name not in ("env_steps",) and not math.isnan(value):
                            writer.add_scalar(f"train/{name}", value, env_steps)
                if callback is not None:
                    callback(stats, learner)

            if config.checkpoint_minutes and elapsed() - last_written >= 60 * config.checkpoint_minutes:
                next_checkpoint = min(next_checkpoint, env_steps)  # due by the clock
            if env_steps >= next_checkpoint:
                at_boundary = bool((game.steps == 0).all())
                if at_boundary or env_steps >= next_checkpoint + slack:
                    write_checkpoint()
                    next_checkpoint = (env_steps // config.checkpoint_every + 1) * config.checkpoint_every
    except KeyboardInterrupt:
        interrupted = True
    write_checkpoint()
    if writer is not None:
        writer.close()
    if interrupted:
        raise KeyboardInterrupt
    return TrainResult(learner, env_steps, updates, seconds_before + elapsed(), curve)


def reachable_budget(config: MADDPGConfig, explicit: set[str] | frozenset[str] = frozenset(),
                     flag: str = "--env-steps") -> tuple[MADDPGConfig, str | None]:
    """``config`` with a budget that reaches learning, and a line saying what changed (None: nothing did).

    openai/maddpg's ``learning_starts`` (25,600 transitions) would leave a short run with
    few updates or none, and its greedy evaluation of untrained actors is worse than random
    play. When ``env_steps`` is under twice ``learning_starts``, ``learning_starts`` drops to
    a quarter of the budget (at least one batch), unless the user set it (it is in
    ``explicit``): then a budget that ends before the first update is refused.

    Raises:
        TrainingError: for a budget that cannot reach the first update, naming ``flag``.
    """
    steps, starts = config.env_steps, config.learning_starts
    first_update = max(starts, config.batch_size)
    if "learning_starts" in explicit:
        if steps < first_update + config.transitions_per_update:
            raise TrainingError(f"{flag} {steps:,} ends before the first update (learning_starts={starts:,}, "
                                f"batch_size={config.batch_size:,}): raise {flag} or lower learning_starts")
        return config, None
    if steps >= 2 * starts:
        return config, None
    lowered = max(config.batch_size, steps // 4)
    if steps < lowered + 10 * config.transitions_per_update:
        raise TrainingError(f"{flag} {steps:,} is too short to train: MADDPG needs a batch of {config.batch_size:,} "
                            f"transitions before its first update and some updates after it")
    adjusted = dataclasses.replace(config, learning_starts=lowered)
    return adjusted, (f"learning_starts lowered from {starts:,} to {lowered:,} so that {flag} {steps:,} trains "
                      f"({(steps - lowered) // config.transitions_per_update:,} updates); set it with "
                      "--param learning_starts=N")


def policy_payload(learner: MADDPG, game_name: str, game_settings: dict[str, Any]) -> dict[str, Any]:
    """What a policy file holds: the game, the agents' spaces, the settings and the actors (tensors
    and plain values, which ``load_policy(..., saved=payload)`` reads back)."""
    return {
        "game": {"name": game_name, "settings": dict(game_settings)},
        "spec": learner.spec.to_dict(),
        "config": dataclasses.asdict(learner.config),
        "learner": {"actors": {name: value.detach().cpu().clone() for name, value in learner.actors.state_dict().items()}},
    }


def save_policy(path: str | os.PathLike, learner: MADDPG, game_name: str, game_settings: dict[str, Any]) -> None:
    """Writes the trained actors alone (no optimizers, no replay) as a small checkpoint."""
    checkpoint.save(path, policy_payload(learner, game_name, game_settings))


def load_policy(path: str | os.PathLike, game: Any | None = None, game_name: str | None = None,
                game_settings: dict[str, Any] | None = None, device: torch.device | str = "cpu",
                saved: dict[str, Any] | None = None):
    """A ``TrainedPolicy`` on ``device`` from a checkpoint or policy file, checked against the game when given.

    A MAPPO file (``marl.mappo_train``) gives a ``MAPPOPolicy``: it is checked against the game's
    observation layout rather than its settings, since a ``gnn`` policy plays any number of agents.

    ``saved``: the file's payload when the caller has read it already (``checkpoint.load``).
    """
    from marl.maddpg import TrainedPolicy

    saved = checkpoint.load(path) if saved is None else saved
    if saved.get("algorithm") == "mappo":  # MAPPO's policies (marl.mappo_train) play wherever MADDPG's do
        from marl.envs import make_game
        from marl.mappo_train import load_policy as load_mappo_policy

        if game is None and game_name is not None:
            game = make_game(game_name, 1, device=device, settings=dict(game_settings or {}))
        return load_mappo_policy(saved, path, game, device)
    if game_name is not None:
        checkpoint.check_game(saved, path, game_name, dict(game_settings or {}))
    try:
        spec = GameSpec(**{key: tuple(value) if isinstance(value, list) else value
                           for key, value in saved["spec"].items()})
        config = MADDPGConfig.from_dict(saved["config"])  # hidden_sizes becomes a tuple there
    except (AttributeError, KeyError, TypeError, ValueError, TrainingError) as error:
        raise checkpoint.CheckpointError(f"{os.fspath(path)}: malformed checkpoint header: {error}") from None
    if game is not None and GameSpec.of(game) != spec:
        raise checkpoint.CheckpointError(f"{os.fspath(path)}: the checkpoint's agents and spaces do not fit the game")
    learner = MADDPG(spec, config, device)
    try:
        learner.actors.load_state_dict(saved["learner"]["actors"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise checkpoint.CheckpointError(f"{os.fspath(path)}: the checkpoint's actors do not fit: {error}") from None
    return TrainedPolicy(learner)
