"""A MAPPO training run: rollouts, updates, logs, checkpoints and resuming.

The run reads top to bottom (``train``):

1. build the learner (``marl.mappo.MAPPO``) and the controller (``online-cbf``: ``marl.cbf``);
2. reset the game's ``B`` copies, or restore everything from a checkpoint;
3. loop: a rollout of ``rollout_length`` steps in every copy into ``(T, B, ...)`` storage
   allocated up front, GAE (and with ``group_size`` above 1, the groups' leave-one-out
   advantages), then the PPO epochs (``MAPPO.update``);
4. after about every ``log_every`` copy-steps, log the mean return per agent of the episodes
   that finished to TensorBoard and the caller;
5. every ``checkpoint_minutes`` and at the end (Ctrl-C included), write ``checkpoint.pt``
   atomically, between rollouts.

Resuming restores the networks, the optimizer, the value normalizer, the generator, the
counters and the game's state (positions, velocities, counters of every copy): the resumed
run goes on as the uninterrupted one would.
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
from marl import checkpoint
from marl.errors import TrainingError
from marl.mappo import MAPPO, MAPPOConfig, MAPPOPolicy, PolicySpec, gae, group_advantages
from marl.plots import summary_writer

CHECKPOINT_FILE = "checkpoint.pt"
POLICY_FILE = "policy.pt"
ALGORITHM = "mappo"


@dataclass
class MAPPOResult:
    """What ``train`` returns."""

    learner: MAPPO
    env_steps: int
    updates: int
    seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)
    """One entry per log: ``env_steps``, ``seconds``, ``episode_return`` (mean per agent over the
    sampled training episodes that finished)."""


def controller_of(config: MAPPOConfig) -> Callable | None:
    """The controller between the policy's actions and the game's: ``None``, or the online CBF."""
    if config.filter != "online-cbf":
        return None
    from marl.cbf import CBFFilter, OnlineCBF

    return OnlineCBF(CBFFilter(alpha=config.cbf_alpha, margin=config.cbf_margin, neighbours=config.cbf_neighbours,
                               barrier=config.cbf_barrier, detour=config.cbf_detour), config.cbf_gain)


def train(game: Any, config: MAPPOConfig, *, device: torch.device | str = "cpu",
          run_dir: str | os.PathLike | None = None, game_name: str = "", game_settings: dict[str, Any] | None = None,
          resume: bool = False, saved: dict[str, Any] | None = None, time_limit: float | None = None,
          callback: Callable[[dict[str, float], MAPPO], None] | None = None) -> MAPPOResult:
    """Trains MAPPO on ``game`` (``config.num_envs`` copies) and returns the learner.

    Args:
        game: a batched ``MarkovGame`` with ``config.num_envs`` copies.
        config: the settings.
        device: where the networks live and learn.
        run_dir: folder of ``checkpoint.pt`` and TensorBoard logs; ``None`` writes nothing.
        game_name, game_settings: recorded in checkpoints, and checked when resuming.
        resume: continue from ``run_dir/checkpoint.pt`` (``saved``: its payload, if read already).
        time_limit: stop after this many seconds (between rollouts).
        callback: ``callback(stats, learner)`` at every log.
    """
    device = torch.device(device)
    if game.num_envs != config.num_envs:
        raise TrainingError(f"the game has {game.num_envs} copies but config.num_envs is {config.num_envs}")
    if config.group_size > 1 and getattr(getattr(game, "config", None), "terminate_on_goals", False):
        raise TrainingError(f"group_size {config.group_size} needs episodes of one length in every copy of a group, "
                            "but this game ends an episode once every agent is home; set terminate_on_goals=false")
    spec = PolicySpec.of(game, config)
    settings = dict(game_settings or {})
    learner = MAPPO(spec, config, device)
    controller = controller_of(config)
    env_steps, seconds_before, curve = 0, 0.0, []
    path = None if run_dir is None else os.path.join(os.fspath(run_dir), CHECKPOINT_FILE)
    agents = list(game.possible_agents)
    copies, count, length = config.num_envs, len(agents), config.rollout_length

    returns = torch.zeros(copies, dtype=torch.float64, device=device)
    if resume:
        if path is None:
            raise TrainingError("resuming needs a run folder")
        saved = checkpoint.load(path) if saved is None else saved
        checkpoint.check_game(saved, path, game_name, settings)
        if saved.get("algorithm") != ALGORITHM or "run" not in saved:
            raise checkpoint.CheckpointError(f"{path}: not a MAPPO training checkpoint")
        if saved["spec"] != spec.to_dict():
            raise checkpoint.CheckpointError(f"{path}: the checkpoint's observation and action layout does not fit")
        run = saved["run"]
        try:
            learner.load_state_dict(saved["learner"])
            env_steps, seconds_before, curve = int(run["env_steps"]), float(run["seconds"]), list(run["curve"])
            game.reset(seed=config.seed)
            game.load_state_dict(run["game_state"])
            returns.copy_(run["returns"])
        except (AttributeError, KeyError, RuntimeError, TypeError, ValueError, GamelabError) as error:
            raise checkpoint.CheckpointError(f"{path}: the checkpoint does not fit this run: {error}") from None
        observations = {agent: value.to(game.device) for agent, value in run["game_state"]["observed"].items()}
    else:
        streams = {"streams": torch.arange(copies) // config.group_size} if config.group_size > 1 else None
        observations, _ = game.reset(seed=config.seed, options=streams)

    writer = summary_writer(run_dir, env_steps if resume else None)
    start = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - start

    def write_checkpoint() -> None:
        if path is None:
            return
        checkpoint.save(path, {
            "algorithm": ALGORITHM,
            "game": {"name": game_name, "settings": settings},
            "spec": spec.to_dict(),
            "config": dataclasses.asdict(config),
            "learner": learner.state_dict(),
            "run": {"env_steps": env_steps, "seconds": seconds_before + elapsed(), "curve": curve,
                    "game_state": game.state_dict(), "returns": returns.cpu()},
        })

    # Returns of the episodes that finished since the last log, summed on the device (no sync per step).
    finished_sum = torch.zeros((), dtype=torch.float64, device=device)
    finished_count = torch.zeros((), dtype=torch.float64, device=device)
    next_log = (env_steps // config.log_every + 1) * config.log_every
    last_written = 0.0
    losses: dict[str, float] = {}
    interrupted = False
    try:
        while env_steps < config.env_steps:
            if time_limit is not None and elapsed() >= time_limit:
                break
            # 1. Rollout into (T, B, ...) storage.
            snapshots: dict[str, list[torch.Tensor]] = {}
            actions, log_probs, values = [], [], []
            rewards = torch.zeros(length, copies, count, device=device)
            done = torch.zeros(length, copies, dtype=torch.bool, device=device)
            for step in range(length):
                snapshot = {key: value.to(device) for key, value in learner.model.observe(game, observations).items()}
                with torch.no_grad():
                    outputs, value = learner.model.act_and_value(snapshot)
                    chosen = learner.sample(outputs)
                    log_probs.append(learner.distribution(outputs).log_prob(chosen))
                for key, tensor in snapshot.items():
                    snapshots.setdefault(key, []).append(tensor)
                actions.append(chosen)
                values.append(value)  # the critic's output: normalized when value_normalization is on
                played = learner.played(chosen)
                if controller is not None:
                    played = controller(game, played)
                played = played.to(game.device)
                observations, reward, terminated, truncated, _ = game.step(
                    {agent: played[:, index] for index, agent in enumerate(agents)})
                rewards[step] = torch.stack([reward[agent] for agent in agents], 1).to(device, torch.float32)
                ended = (terminated[agents[0]] | truncated[agents[0]]).to(device)
                done[step] = ended
                returns += rewards[step].to(torch.float64).mean(1)
                finished_sum += torch.where(ended, returns, 0.0).sum()
                finished_count += ended.sum()
                returns.masked_fill_(ended, 0.0)
            # 2. Advantages and returns.
            with torch.no_grad():
                last = {key: value.to(device) for key, value in learner.model.observe(game, observations).items()}
                last_value = learner.model.value(last)
                if config.value_normalization:
                    last_value = learner.value_norm.denormalize(last_value)
            critic_values = torch.stack(values)  # (T, B, N), as the critic gives them
            stacked_values = (learner.value_norm.denormalize(critic_values) if config.value_normalization
                              else critic_values)
            advantages = gae(rewards, stacked_values, last_value, done, config.gamma, config.gae_lambda)
            targets = advantages + stacked_values
            if config.group_size > 1:
                grouped = done.view(length, copies // config.group_size, config.group_size)
                if bool((grouped != grouped[..., :1]).any()):
                    raise TrainingError(
                        f"group_size {config.group_size}: copies of a group ended their episodes at different steps, "
                        "so they no longer play the same episodes; give every episode one length (navigation: "
                        "terminate_on_goals=false)")
                advantages = group_advantages(targets, config.group_size)
            # 3. PPO epochs over the T B copy-steps.
            flat = {key: torch.cat(value) for key, value in snapshots.items()}
            losses = learner.update(flat, torch.cat(actions), torch.cat(log_probs), critic_values.flatten(0, 1),
                                    advantages.flatten(0, 1), targets.flatten(0, 1))
            env_steps += length * copies

            # 4. Logs.
            if env_steps >= next_log or env_steps >= config.env_steps:
                next_log = (env_steps // config.log_every + 1) * config.log_every
                count_finished = float(finished_count)
                stats = {"env_steps": float(env_steps), "seconds": seconds_before + elapsed(),
                         "episode_return": float(finished_sum) / count_finished if count_finished else math.nan,
                         **losses}
                finished_sum.zero_()
                finished_count.zero_()
                if not math.isnan(stats["episode_return"]):
                    curve.append({key: stats[key] for key in ("env_steps", "seconds", "episode_return")})
                if writer is not None:
                    for name, value in stats.items():
                        if name != "env_steps" and not math.isnan(value):
                            writer.add_scalar(f"train/{name}", value, env_steps)
                if callback is not None:
                    callback(stats, learner)
            # 5. Checkpoints.
            if config.checkpoint_minutes and elapsed() - last_written >= 60 * config.checkpoint_minutes:
                write_checkpoint()
                last_written = elapsed()
    except KeyboardInterrupt:
        interrupted = True
    write_checkpoint()
    if writer is not None:
        writer.close()
    if interrupted:
        raise KeyboardInterrupt
    return MAPPOResult(learner, env_steps, learner.updates, seconds_before + elapsed(), curve)


def policy_payload(learner: MAPPO, game_name: str, game_settings: dict[str, Any]) -> dict[str, Any]:
    """What a MAPPO policy file holds: the game, the layout, the settings and the model (no optimizer)."""
    state = learner.state_dict()
    return {"algorithm": ALGORITHM, "game": {"name": game_name, "settings": dict(game_settings)},
            "spec": learner.spec.to_dict(), "config": dataclasses.asdict(learner.config),
            "learner": {"model": {k: v.detach().cpu().clone() for k, v in state["model"].items()},
                        "log_std": state["log_std"]}}


def save_policy(path: str | os.PathLike, learner: MAPPO, game_name: str, game_settings: dict[str, Any]) -> None:
    """Writes the trained model alone as a small checkpoint."""
    checkpoint.save(path, policy_payload(learner, game_name, game_settings))


def load_policy(saved: dict[str, Any], path: str | os.PathLike, game: Any | None = None,
                device: torch.device | str = "cpu", sample: bool = False, seed: int = 0) -> MAPPOPolicy:
    """A ``MAPPOPolicy`` from a checkpoint's payload (``checkpoint.load``), checked against ``game`` when given;
    its actions drawn from the policy with ``sample`` (seeded by ``seed``), else the deterministic ones.

    A ``gnn`` model runs with any number of agents; an ``mlp`` model needs the observation size
    (and, for its critic, the number of agents) it was trained with.
    """
    try:
        # Checkpoints from before the braking barrier were trained with the high-order CBF and no detour.
        config = MAPPOConfig.from_dict({"cbf_barrier": "hocbf", "cbf_detour": 0.0, **saved["config"]})
        spec = PolicySpec(**saved["spec"])
    except (KeyError, TypeError, TrainingError) as error:
        raise checkpoint.CheckpointError(f"{os.fspath(path)}: malformed MAPPO checkpoint header: {error}") from None
    if game is not None:
        try:
            present = PolicySpec.of(game, config)
        except TrainingError as error:
            raise checkpoint.CheckpointError(f"{os.fspath(path)}: {error}") from None
        layout = ("observation_size", "action_size", "continuous")
        if any(getattr(present, key) != getattr(spec, key) for key in layout):
            raise checkpoint.CheckpointError(
                f"{os.fspath(path)}: trained for observations of size {spec.observation_size} and "
                f"{spec.action_size} {'continuous' if spec.continuous else 'discrete'} actions; this game has "
                f"{present.observation_size} and {present.action_size} "
                f"{'continuous' if present.continuous else 'discrete'} (another observation layout)")
        if config.model == "mlp" and present.num_agents != spec.num_agents:
            raise checkpoint.CheckpointError(f"{os.fspath(path)}: an mlp policy runs with the {spec.num_agents} agents "
                                             f"it was trained with, not {present.num_agents}; a gnn policy runs with any")
        spec = dataclasses.replace(spec, num_agents=present.num_agents, sensing_radius=present.sensing_radius)
    learner = MAPPO(spec, config, device)
    try:
        learner.load_state_dict(saved["learner"], policy_only=True)
    except (KeyError, RuntimeError, TypeError) as error:
        raise checkpoint.CheckpointError(f"{os.fspath(path)}: the checkpoint's model does not fit: {error}") from None
    return MAPPOPolicy(learner, controller_of(config), sample=sample, seed=seed)


__all__ = ["MAPPOResult", "controller_of", "load_policy", "policy_payload", "save_policy", "train"]
