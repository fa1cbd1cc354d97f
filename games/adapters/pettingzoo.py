"""PettingZoo interop for batched Markov games, both ways.

- ``to_parallel_env(game)``: one copy of a gamelab ``MarkovGame`` as a PettingZoo
  ``ParallelEnv`` with numpy values. It passes ``pettingzoo.test.parallel_api_test`` and
  ``parallel_seed_test``. When the episode ends, ``agents`` empties and the last
  observation is returned, as PettingZoo expects; the next ``reset()`` starts a new one.
- ``from_parallel_env(env_fn, num_envs)``: ``num_envs`` PettingZoo ``ParallelEnv``s
  (for example any ``mpe2`` task) driven through the ``MarkovGame`` interface, so that the
  trainers run on them unchanged. The copies are stepped one after another in Python.

``pettingzoo`` is imported only inside this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from games.errors import GameError
from games.markov import AgentID, MarkovGame


def _parallel_env_base():
    from pettingzoo.utils.env import ParallelEnv

    return ParallelEnv


def to_parallel_env(game: MarkovGame):
    """A PettingZoo ``ParallelEnv`` over a single-copy ``game`` (``num_envs == 1``)."""
    if game.num_envs != 1:
        raise GameError(
            f"to_parallel_env needs a game with num_envs=1, got {game.num_envs}; "
            "a PettingZoo ParallelEnv is one copy of the game"
        )
    base = _parallel_env_base()

    class GamelabParallelEnv(base):
        """One copy of a gamelab Markov game behind PettingZoo's parallel API."""

        metadata = {**game.metadata, "is_parallelizable": True}

        def __init__(self) -> None:
            self.game = game
            self.possible_agents = list(game.possible_agents)
            self.agents: list[AgentID] = []
            self.render_mode = "rgb_array"
            from gymnasium import spaces

            self.state_space = spaces.Box(-np.inf, np.inf, shape=(game.state_size,), dtype=np.float32)

        @property
        def max_cycles(self) -> int:
            return self.game.max_steps

        @max_cycles.setter
        def max_cycles(self, value: int) -> None:
            self.game.max_steps = int(value)

        def observation_space(self, agent: AgentID):
            return self.game.observation_space(agent)

        def action_space(self, agent: AgentID):
            return self.game.action_space(agent)

        def reset(self, seed: int | None = None, options: dict | None = None):
            observations, _ = self.game.reset(seed=seed, options=options)
            self.agents = list(self.possible_agents)
            return _numpy_observations(observations), {agent: {} for agent in self.agents}

        def step(self, actions: Mapping[AgentID, Any]):
            if not self.agents:
                raise GameError("step() called on a finished episode; call reset() first")
            tensors = {agent: self._tensor(agent, actions.get(agent)) for agent in self.possible_agents}
            _, rewards, terminated, truncated, infos = self.game.step(tensors)
            final = {agent: infos[agent]["final_observation"] for agent in self.possible_agents}
            observations = _numpy_observations(final)
            reward = {agent: float(rewards[agent][0]) for agent in self.agents}
            ended = {agent: bool(terminated[agent][0]) for agent in self.agents}
            cut = {agent: bool(truncated[agent][0]) for agent in self.agents}
            info = {
                agent: {key: _scalar(value) for key, value in infos[agent].items() if key != "final_observation"}
                for agent in self.agents
            }
            if any(ended.values()) or any(cut.values()):
                self.agents = []
            return observations, reward, ended, cut, info

        def _tensor(self, agent: AgentID, action: Any) -> torch.Tensor:
            if action is None:
                space = self.game.action_space(agent)
                action = np.zeros(space.shape, dtype=np.float32) if self.game.continuous else 0
            if self.game.continuous:
                return torch.as_tensor(np.asarray(action, dtype=np.float64)[None], device=self.game.device)
            if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)) and not (
                isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
            ):
                raise GameError(f"action of agent {agent!r} must be an integer, got {action!r}")
            return torch.tensor([int(action)], device=self.game.device)

        def state(self) -> np.ndarray:
            return self.game.state()[0].to(torch.float32).cpu().numpy()

        def render(self) -> np.ndarray:
            from games.render import draw_frame

            return np.asarray(draw_frame(self.game, copy=0))

        def close(self) -> None:
            self.game.close()

    return GamelabParallelEnv()


def _numpy_observations(observations: Mapping[AgentID, torch.Tensor]) -> dict[AgentID, np.ndarray]:
    return {agent: value[0].to(torch.float32).cpu().numpy() for agent, value in observations.items()}


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value[0].item() if value.dim() == 1 else value[0].cpu().numpy()
    return value


class ParallelEnvBatch(MarkovGame):
    """``num_envs`` PettingZoo ``ParallelEnv``s behind the batched ``MarkovGame`` API.

    Copy ``i`` is reset with seed ``seed + first_copy + i``, so one seed fixes every copy.
    An agent that leaves its copy's episode early observes zeros and gets reward 0 until
    the copy finishes; its actions are not passed on. A copy finishes when its env has no
    agents left, and is then reset (its last observations are in ``final_observation``).

    Observation spaces must be flat ``Box``es; action spaces all ``Discrete`` or all
    ``Box`` with the same bounds.

    Its state lives in the wrapped Python environments, which cannot be saved: a training
    run stopped mid-episode restarts the interrupted episodes (``resumable = False``).
    """

    resumable = False

    def __init__(
        self,
        env_fn: Callable[[], Any],
        num_envs: int,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
        first_copy: int = 0,
    ) -> None:
        from gymnasium import spaces

        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise GameError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.envs = [env_fn() for _ in range(num_envs)]
        first = self.envs[0]
        agents = list(first.possible_agents)
        observation_sizes, action_sizes = {}, {}
        kinds, bounds = set(), set()
        for agent in agents:
            seen = first.observation_space(agent)
            if not isinstance(seen, spaces.Box):
                raise GameError(f"observation space of agent {agent!r} is {seen}; only flat Box spaces are supported")
            observation_sizes[agent] = int(np.prod(seen.shape))
            acted = first.action_space(agent)
            if isinstance(acted, spaces.Discrete):
                kinds.add("discrete")
                action_sizes[agent] = int(acted.n)
            elif isinstance(acted, spaces.Box) and len(acted.shape) == 1:
                kinds.add("continuous")
                action_sizes[agent] = int(acted.shape[0])
                bounds.add((float(np.min(acted.low)), float(np.max(acted.high))))
            else:
                raise GameError(f"action space of agent {agent!r} is {acted}; expected Discrete or a 1-D Box")
        if len(kinds) > 1 or len(bounds) > 1:
            raise GameError("agents with different kinds or bounds of action space are not supported")
        continuous = kinds == {"continuous"}
        low, high = bounds.pop() if bounds else (0.0, 1.0)
        name = first.metadata.get("name", type(first).__name__) if hasattr(first, "metadata") else type(first).__name__
        self.metadata = {"name": name, "render_modes": []}
        max_steps = int(getattr(first.unwrapped, "max_cycles", 0) or 0) or 10**9
        super().__init__(
            agents,
            observation_sizes,
            action_sizes,
            continuous=continuous,
            num_envs=num_envs,
            max_steps=max_steps,
            device=device,
            dtype=dtype,
            seed=seed,
            first_copy=first_copy,
            action_low=low,
            action_high=high,
        )
        self._latest = [dict.fromkeys(agents) for _ in range(num_envs)]

    def _empty(self, agent: AgentID) -> np.ndarray:
        return np.zeros(self._observation_sizes[agent], dtype=np.float32)

    def _gather(self, per_copy: list[dict[AgentID, Any]]) -> dict[AgentID, torch.Tensor]:
        return {
            agent: torch.as_tensor(
                np.stack([np.asarray(row[agent], dtype=np.float32).reshape(-1) for row in per_copy]),
                device=self.device,
            ).to(self.dtype)
            for agent in self.possible_agents
        }

    def _reset_env(self, index: int, seed: int | None) -> dict[AgentID, Any]:
        observations, _ = self.envs[index].reset(seed=seed)
        return {agent: observations.get(agent, self._empty(agent)) for agent in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        del options
        if seed is not None:
            self.seed = int(seed)
        for index in range(self.num_envs):
            copy_seed = None if seed is None else self.seed + self.first_copy + index
            self._latest[index] = self._reset_env(index, copy_seed)
        self._started = True
        self.steps.zero_()
        observations = self._gather(self._latest)
        self._observed = observations
        return observations, {agent: {} for agent in self.possible_agents}

    def step(self, actions: Mapping[AgentID, torch.Tensor]):
        if not self._started:
            raise GameError("step() called before reset()")
        stacked = self._stack_actions(actions).cpu().numpy()
        batch = self.num_envs
        rewards = np.zeros((batch, self.num_agents))
        terminated = np.zeros((batch, self.num_agents), dtype=bool)
        truncated = np.zeros((batch, self.num_agents), dtype=bool)
        final: list[dict[AgentID, Any]] = []
        done = np.zeros(batch, dtype=bool)
        for index, env in enumerate(self.envs):
            live = list(env.agents)
            step_actions = {}
            for agent in live:
                value = stacked[index, self.possible_agents.index(agent)]
                step_actions[agent] = value.astype(np.float32) if self.continuous else int(value)
            observations, reward, ended, cut, _ = env.step(step_actions)
            row = {}
            for position, agent in enumerate(self.possible_agents):
                row[agent] = observations.get(agent, self._empty(agent))
                rewards[index, position] = reward.get(agent, 0.0)
                terminated[index, position] = bool(ended.get(agent, False))
                truncated[index, position] = bool(cut.get(agent, False))
            final.append(row)
            if not env.agents:
                done[index] = True
                self._latest[index] = self._reset_env(index, None)
            else:
                self._latest[index] = row
        self.steps += 1
        self.steps.masked_fill_(torch.as_tensor(done, device=self.device), 0)
        self.episodes += torch.as_tensor(done, device=self.device)
        observations = self._gather(self._latest)
        self._observed = observations
        final_observations = self._gather(final)
        # (N, B) per-agent rows
        reward_rows = torch.as_tensor(rewards, device=self.device).to(self.dtype).T
        terminated_rows = torch.as_tensor(terminated, device=self.device).T
        truncated_rows = torch.as_tensor(truncated, device=self.device).T
        return (
            observations,
            {agent: reward_rows[i] for i, agent in enumerate(self.possible_agents)},
            {agent: terminated_rows[i] for i, agent in enumerate(self.possible_agents)},
            {agent: truncated_rows[i] for i, agent in enumerate(self.possible_agents)},
            {agent: {"final_observation": final_observations[agent]} for agent in self.possible_agents},
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


def from_parallel_env(
    env_fn: Callable[[], Any],
    num_envs: int = 1,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
) -> ParallelEnvBatch:
    """``num_envs`` copies of ``env_fn()`` (a PettingZoo ``ParallelEnv``) as a ``MarkovGame``.

    >>> from mpe2 import simple_spread_v3
    >>> game = from_parallel_env(simple_spread_v3.parallel_env, num_envs=4, seed=0)
    >>> observations, _ = game.reset()
    >>> observations["agent_0"].shape
    torch.Size([4, 18])
    """
    return ParallelEnvBatch(env_fn, num_envs, device=device, dtype=dtype, seed=seed)
