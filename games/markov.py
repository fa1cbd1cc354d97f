"""Batched, device-resident Markov games in PettingZoo's vocabulary.

A ``MarkovGame`` holds ``B`` copies of one game on one torch device and steps them all at
once. Its API is PettingZoo's parallel API with a leading batch dimension:

- ``reset(seed=None, options=None) -> (observations, infos)``;
- ``step(actions) -> (observations, rewards, terminated, truncated, infos)``;
- every value is a ``dict[agent_id, ...]``: observations ``Tensor[B, obs_dim]``,
  rewards ``Tensor[B]``, terminated and truncated ``Tensor[B]`` of bool, and infos a
  ``dict`` per agent whose tensors also lead with ``B``;
- ``state() -> Tensor[B, state_dim]`` for centralized critics: the observations of all
  agents concatenated in ``possible_agents`` order (mpe2's convention);
- ``observation_space(agent)`` and ``action_space(agent)`` are gymnasium spaces that
  describe one copy, and return the same object every time for the same agent.

Invariants the scenarios and the tests rely on:

- Copies that finish (any agent terminated, or the episode reached ``max_steps``) are
  reset inside ``step``. The observations ``step`` returns are then the first ones of the
  new episode, and ``infos[agent]["final_observation"]`` holds the last observation of the
  finished one (equal to the returned observation for copies that did not finish). This
  is gymnasium's "same-step" autoreset. With ``autoreset = False`` finished copies stay
  as they ended (for drawing the last frame); stepping them further is the caller's
  choice.
- The agent set is fixed: every agent acts in every copy at every step. All agents of a
  copy finish together.
- Randomness is counter-based (``games/streams.py``): copy ``i`` draws episode ``e`` from
  the stream ``(seed, first_copy + i, e)`` (or ``(seed, streams[i], e)`` after
  ``reset(options={"streams": ...})``). ``reset(seed=s)`` restarts every copy at
  episode 0 of seed ``s``; ``reset()`` without a seed starts each copy's next episode.
- Actions are validated before anything changes: a missing or unknown agent, a wrong
  shape, dtype or device, an out-of-range index or a non-finite value raises
  ``ActionError`` naming the agent and what was expected, and the game is untouched.

Subclasses implement ``_reset_copies``, ``_advance``, ``_rewards``, ``_observations`` and
optionally ``_terminated`` and ``_extra_infos`` (see their docstrings).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from games import streams
from games.errors import GameError

AgentID = str


class ActionError(GameError):
    """Actions handed to ``MarkovGame.step`` that do not fit the game."""


class ConfigError(GameError):
    """A scenario configuration value that is out of range or of the wrong type."""


def require_int(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> None:
    """Raises ``ConfigError`` unless ``value`` is an int in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def require_float(
    name: str, value: Any, minimum: float | None = None, maximum: float | None = None, *, open_minimum: bool = False
) -> None:
    """Raises ``ConfigError`` unless ``value`` is a finite real number within the bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (open_minimum and value == minimum)):
        raise ConfigError(f"{name} must be {'>' if open_minimum else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")


def require_bool(name: str, value: Any) -> None:
    """Raises ``ConfigError`` unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def agent_role(agent: str) -> str:
    """An agent's role, its team: the name without a trailing index (``adversary_2`` -> ``adversary``).

    Agents of one role share networks in MADDPG (``share_parameters``) and sit on one
    side of a tournament match.
    """
    return re.sub(r"_?\d+$", "", agent) or agent


def teams(agents: Sequence[str]) -> dict[str, list[str]]:
    """``{role: agents}``: the agents grouped by :func:`agent_role`, in order of first appearance."""
    grouped: dict[str, list[str]] = {}
    for agent in agents:
        grouped.setdefault(agent_role(agent), []).append(agent)
    return grouped


def _spaces():
    from gymnasium import spaces

    return spaces


class MarkovGame:
    """Base class of batched Markov games (see the module docstring for the contract).

    Args:
        possible_agents: agent names, in a fixed order.
        observation_sizes: ``{agent: obs_dim}``; observations are flat float vectors.
        action_sizes: ``{agent: n}``: a discrete action in ``range(n)``, or with
            ``continuous=True`` a vector of ``n`` values in ``[action_low, action_high]``.
        continuous: whether actions are continuous.
        num_envs: ``B``, the number of copies.
        max_steps: episode length; a copy is truncated after this many steps.
        device: torch device of every tensor.
        dtype: floating dtype of observations, rewards and the simulation.
        seed: the seed of the copies' random streams; ``None`` draws one from the OS.
        first_copy: the stream index of copy 0, so that a batch can be split across
            processes and still play the same episodes.
    """

    metadata: dict[str, Any] = {"name": "markov_game", "render_modes": ["rgb_array"]}

    def __init__(
        self,
        possible_agents: Sequence[AgentID],
        observation_sizes: Mapping[AgentID, int],
        action_sizes: Mapping[AgentID, int],
        *,
        continuous: bool,
        num_envs: int,
        max_steps: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
        first_copy: int = 0,
        action_low: float = 0.0,
        action_high: float = 1.0,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ConfigError(f"max_steps must be a positive integer, got {max_steps!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if isinstance(first_copy, bool) or not isinstance(first_copy, int) or first_copy < 0:
            raise ConfigError(f"first_copy must be a non-negative integer, got {first_copy!r}")
        self.possible_agents: list[AgentID] = list(possible_agents)
        self.agents: list[AgentID] = list(possible_agents)
        self.num_envs = num_envs
        self.max_steps = max_steps
        # The concrete device ("cuda:0", not "cuda") that tensors made on it report.
        self.device = torch.empty(0, device=device).device
        self.dtype = dtype
        self.continuous = continuous
        self.first_copy = first_copy
        self._observation_sizes = {agent: int(observation_sizes[agent]) for agent in self.possible_agents}
        self._action_sizes = {agent: int(action_sizes[agent]) for agent in self.possible_agents}
        self.action_low = float(action_low)
        self.action_high = float(action_high)
        self._observation_spaces: dict[AgentID, Any] = {}
        self._action_spaces: dict[AgentID, Any] = {}
        self.seed = secrets.randbits(63) if seed is None else int(seed)
        self._copies = torch.arange(first_copy, first_copy + num_envs, device=self.device, dtype=torch.int64)
        self.episodes = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self.steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._observed: dict[AgentID, torch.Tensor] | None = None
        self._started = False
        self.validate_actions = True
        self.autoreset = True
        self._size_row = torch.tensor([self._action_sizes[a] for a in self.possible_agents], device=self.device)
        self._one_size = len(set(self._action_sizes.values())) == 1

    # ----------------------------------------------------------------------------------
    # Spaces

    def observation_space(self, agent: AgentID):
        """Gymnasium ``Box(-inf, inf, (obs_dim,), float32)`` for one copy of ``agent``."""
        self._check_agent(agent)
        if agent not in self._observation_spaces:
            spaces = _spaces()
            self._observation_spaces[agent] = spaces.Box(
                -np.inf, np.inf, shape=(self._observation_sizes[agent],), dtype=np.float32
            )
        return self._observation_spaces[agent]

    def action_space(self, agent: AgentID):
        """Gymnasium ``Discrete(n)``, or ``Box(low, high, (n,), float32)`` when continuous."""
        self._check_agent(agent)
        if agent not in self._action_spaces:
            spaces = _spaces()
            size = self._action_sizes[agent]
            if self.continuous:
                space = spaces.Box(self.action_low, self.action_high, shape=(size,), dtype=np.float32)
            else:
                space = spaces.Discrete(size)
            self._action_spaces[agent] = space
        return self._action_spaces[agent]

    def action_size(self, agent: AgentID) -> int:
        """Discrete actions of ``agent``, or the length of its continuous action vector."""
        self._check_agent(agent)
        return self._action_sizes[agent]

    @property
    def num_agents(self) -> int:
        return len(self.possible_agents)

    @property
    def copy_streams(self) -> torch.Tensor:
        """``(B,)`` int64: the random stream each copy plays (``first_copy + i``, or the ``streams`` reset option)."""
        return self._copies

    @property
    def state_size(self) -> int:
        return sum(self._observation_sizes.values())

    def _check_agent(self, agent: AgentID) -> None:
        if agent not in self._observation_sizes:
            raise GameError(f"unknown agent {agent!r}; the agents are {self.possible_agents}")

    # ----------------------------------------------------------------------------------
    # The PettingZoo verbs

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[AgentID, torch.Tensor], dict[AgentID, dict[str, Any]]]:
        """Starts a new episode in every copy.

        Args:
            seed: restart every copy's stream at episode 0 of this seed; ``None`` moves each
                copy on to its next episode.
            options: ``{"episodes": Tensor[B] of int}`` starts copy ``i`` at episode
                ``episodes[i]`` of its stream instead (to resume an interrupted run exactly);
                ``{"streams": Tensor[B] of int}`` makes copy ``i`` play stream ``streams[i]``
                from now on instead of ``first_copy + i`` (copies may share a stream, to
                replay one episode under several policies); other options are ignored, as
                PettingZoo allows.

        Returns:
            ``(observations, infos)``: ``{agent: Tensor[B, obs_dim]}`` and ``{agent: {}}``.
        """
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise ConfigError(f"seed must be an integer, got {seed!r}")
            self.seed = int(seed)
            self.episodes.zero_()
        elif self._started:
            self.episodes += 1
        if options is not None and "streams" in options:
            self._copies = self._per_copy_indices(options["streams"], "streams")
        if options is not None and "episodes" in options:
            self.episodes.copy_(self._per_copy_indices(options["episodes"], "episodes"))
        self._started = True
        self.steps.zero_()
        everything = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._reset_copies(everything)
        observations = self._observations()
        self._observed = observations
        return observations, {agent: {} for agent in self.possible_agents}

    def _per_copy_indices(self, indices: Any, option: str) -> torch.Tensor:
        """Checks ``options["episodes"]`` or ``options["streams"]`` of ``reset``: ``B`` non-negative integers."""
        indices = torch.as_tensor(indices)
        if indices.dtype.is_floating_point or indices.dtype == torch.bool or tuple(indices.shape) != (self.num_envs,):
            raise ConfigError(
                f"options[{option!r}] must be {self.num_envs} integers, one per copy; got {indices.dtype} "
                f"of shape {tuple(indices.shape)}"
            )
        if bool((indices < 0).any()):
            raise ConfigError(f"options[{option!r}] must be >= 0")
        return indices.to(device=self.device, dtype=torch.int64)

    def step(
        self, actions: Mapping[AgentID, torch.Tensor]
    ) -> tuple[
        dict[AgentID, torch.Tensor],
        dict[AgentID, torch.Tensor],
        dict[AgentID, torch.Tensor],
        dict[AgentID, torch.Tensor],
        dict[AgentID, dict[str, Any]],
    ]:
        """Steps every copy once with one action per agent.

        Args:
            actions: ``{agent: Tensor[B]}`` of integers (discrete) or
                ``{agent: Tensor[B, n]}`` of floats (continuous), on ``self.device``.

        Returns:
            ``(observations, rewards, terminated, truncated, infos)``; see the module docstring.
        """
        if not self._started:
            raise GameError("step() called before reset()")
        stacked = self._stack_actions(actions)
        self._advance(stacked)
        self.steps += 1
        rewards = self._rewards()
        terminated = self._terminated()
        truncated = self.steps >= self.max_steps
        extra = self._extra_infos()
        observations = self._observations()
        final = observations
        done = terminated | truncated
        if self.autoreset and bool(done.any()):
            self.episodes += done
            self.steps.masked_fill_(done, 0)
            self._reset_copies(done)
            observations = self._observations()
        self._observed = observations
        reward_by_agent = {agent: rewards[index] for index, agent in enumerate(self.possible_agents)}
        infos = {agent: {"final_observation": final[agent], **extra.get(agent, {})} for agent in self.possible_agents}
        terminated_by_agent = dict.fromkeys(self.possible_agents, terminated)
        truncated_by_agent = dict.fromkeys(self.possible_agents, truncated)
        return observations, reward_by_agent, terminated_by_agent, truncated_by_agent, infos

    def state(self) -> torch.Tensor:
        """``Tensor[B, state_dim]``: every agent's current observation, concatenated."""
        if self._observed is None:
            raise GameError("state() called before reset()")
        return torch.cat([self._observed[agent] for agent in self.possible_agents], dim=1)

    def close(self) -> None:
        """Nothing to release; kept for PettingZoo compatibility."""

    # ----------------------------------------------------------------------------------
    # Saving the state mid-episode

    resumable = True
    """Whether :meth:`state_dict` captures everything (games whose state lives in tensors)."""

    def _state_tensors(self) -> dict[str, tuple[Any, str, torch.Tensor]]:
        """``{key: (holder, attribute, tensor)}`` for every tensor the game and its world hold."""
        holders = [("", self), *([("world.", self.world)] if hasattr(self, "world") else [])]
        return {f"{prefix}{name}": (holder, name, value) for prefix, holder in holders
                for name, value in vars(holder).items() if isinstance(value, torch.Tensor)}

    def state_dict(self) -> dict[str, Any]:
        """What decides what every copy does next, for a training run to stop and resume mid-episode.

        Every tensor the game and its world (``self.world``) hold (positions, velocities,
        episode and step counters, per-episode goals; constants too, which costs little), the
        seed, and the observations of the current state; tensors on the CPU, so the dict
        saves with ``torch.save`` and loads with ``weights_only=True``.
        """
        tensors = {key: value.detach().cpu().clone() for key, (_, _, value) in self._state_tensors().items()}
        observed = None if self._observed is None else {agent: value.detach().cpu().clone()
                                                        for agent, value in self._observed.items()}
        return {"tensors": tensors, "observed": observed, "seed": self.seed, "started": self._started}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`'s output into a game of the same scenario, settings and size.

        Every tensor is checked before any is set, so a state that does not fit leaves the game as it was.

        Raises:
            ConfigError: for a state of another game (a missing tensor, another shape or dtype).
        """
        tensors = state.get("tensors") if isinstance(state, Mapping) else None
        if not isinstance(tensors, Mapping):
            raise ConfigError("the saved game state holds no tensors")
        mine = self._state_tensors()
        if set(tensors) != set(mine):
            raise ConfigError(f"the saved game state is of another game or size: it differs from this game in "
                              f"{sorted(set(tensors) ^ set(mine))[:3]}")
        restored = []
        for key, value in tensors.items():
            holder, name, current = mine[key]
            if not isinstance(value, torch.Tensor) or value.shape != current.shape or value.dtype != current.dtype:
                raise ConfigError(f"the saved game state is of another game or size: its {key} does not fit this "
                                  f"game's ({tuple(current.shape)}, {current.dtype})")
            restored.append((holder, name, value.to(current.device)))
        for holder, name, value in restored:
            setattr(holder, name, value)
        observed = state.get("observed")
        self._observed = None if observed is None else {agent: value.to(self.device) for agent, value in observed.items()}
        self.seed = int(state["seed"])
        self._started = bool(state["started"])

    # ----------------------------------------------------------------------------------
    # Randomness

    def _uniform(self, count: int, offset: int = 0) -> torch.Tensor:
        """``(B, count)`` uniforms in [0, 1) from each copy's stream for its current episode."""
        keys = streams.stream_keys(self.seed, self._copies, self.episodes)
        return streams.uniform(keys, count, self.dtype, offset)

    # ----------------------------------------------------------------------------------
    # Actions

    def _stack_actions(self, actions: Mapping[AgentID, torch.Tensor]) -> torch.Tensor:
        """Validates the actions and stacks them: ``(B, N)`` int64, or ``(B, N, n)`` floats."""
        if not isinstance(actions, Mapping):
            raise ActionError(f"actions must be a dict {{agent: tensor}}, got {type(actions).__name__}")
        unknown = [agent for agent in actions if agent not in self._action_sizes]
        if unknown:
            raise ActionError(f"actions for unknown agent {unknown[0]!r}; the agents are {self.possible_agents}")
        missing = [agent for agent in self.possible_agents if agent not in actions]
        if missing:
            raise ActionError(f"no action for agent {missing[0]!r}; every agent acts at every step")
        batch = self.num_envs
        for agent in self.possible_agents:
            action = actions[agent]
            size = self._action_sizes[agent]
            expected = (
                f"a float tensor of shape ({batch}, {size}) with values in [{self.action_low}, {self.action_high}]"
                if self.continuous
                else f"an integer tensor of shape ({batch},) with values in 0..{size - 1}"
            )
            if not isinstance(action, torch.Tensor):
                raise ActionError(f"action of agent {agent!r} is a {type(action).__name__}; expected {expected}")
            if action.device != self.device:
                raise ActionError(
                    f"action of agent {agent!r} is on device {action.device}, the game is on {self.device}; "
                    f"expected {expected}"
                )
            if self.continuous:
                if not action.dtype.is_floating_point:
                    raise ActionError(f"action of agent {agent!r} has dtype {action.dtype}; expected {expected}")
                if tuple(action.shape) != (batch, size):
                    raise ActionError(
                        f"action of agent {agent!r} has shape {tuple(action.shape)}; expected {expected}"
                    )
            else:
                if action.dtype.is_floating_point or action.dtype.is_complex or action.dtype == torch.bool:
                    raise ActionError(f"action of agent {agent!r} has dtype {action.dtype}; expected {expected}")
                if tuple(action.shape) != (batch,):
                    raise ActionError(
                        f"action of agent {agent!r} has shape {tuple(action.shape)}; expected {expected}"
                    )
        if self.continuous:
            stacked = torch.stack([actions[agent].to(self.dtype) for agent in self.possible_agents], dim=1)
            if self.validate_actions:
                low, high = (float(v) for v in torch.aminmax(stacked))
                if not (low >= self.action_low and high <= self.action_high):  # NaN fails both
                    bad = ~torch.isfinite(stacked) | (stacked < self.action_low) | (stacked > self.action_high)
                    self._raise_range_error(bad.flatten(2).any(2))
        else:
            stacked = torch.stack([actions[agent].long() for agent in self.possible_agents], dim=1)
            if self.validate_actions:
                if self._one_size:  # one reduction and one sync on the common path
                    low, high = (int(v) for v in torch.aminmax(stacked))
                    if low < 0 or high >= self._action_sizes[self.possible_agents[0]]:
                        self._raise_range_error((stacked < 0) | (stacked >= self._size_row))
                else:
                    bad = (stacked < 0) | (stacked >= self._size_row)
                    if bool(bad.any()):
                        self._raise_range_error(bad)
        return stacked

    def _raise_range_error(self, bad: torch.Tensor) -> None:
        """``bad`` is ``(B, N)`` bool; names the first offending agent and copy."""
        copy, index = (int(v) for v in bad.nonzero()[0])
        agent = self.possible_agents[index]
        if self.continuous:
            raise ActionError(
                f"action of agent {agent!r} in copy {copy} is not finite or outside "
                f"[{self.action_low}, {self.action_high}]"
            )
        raise ActionError(
            f"action of agent {agent!r} in copy {copy} is out of range; expected 0..{self._action_sizes[agent] - 1}"
        )

    # ----------------------------------------------------------------------------------
    # What a scenario implements

    def _reset_copies(self, mask: torch.Tensor) -> None:
        """Puts the copies where ``mask`` (``(B,)`` bool) is true at the start of an episode.

        Draw randomness with ``self._uniform``; leave the other copies unchanged."""
        raise NotImplementedError

    def _advance(self, actions: torch.Tensor) -> None:
        """Moves the world one step under validated, stacked actions (see ``_stack_actions``)."""
        raise NotImplementedError

    def _rewards(self) -> torch.Tensor:
        """``(N, B)`` rewards of the step just taken, agents in ``possible_agents`` order."""
        raise NotImplementedError

    def _observations(self) -> dict[AgentID, torch.Tensor]:
        """``{agent: Tensor[B, obs_dim]}`` of the current state."""
        raise NotImplementedError

    def _terminated(self) -> torch.Tensor:
        """``(B,)`` bool: copies whose episode ended on the step just taken (before truncation)."""
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _extra_infos(self) -> dict[AgentID, dict[str, torch.Tensor]]:
        """Per-agent extra info of the step just taken, computed before any reset."""
        return {}
