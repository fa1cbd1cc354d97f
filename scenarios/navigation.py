"""``navigation``: N agents each reach their own goal among static obstacles.

The world for decentralized controllers and safety filters: sized by config from a few
agents to hundreds, with local sensing. Agents (radius ``agent_size``) and obstacles
(radius ``obstacle_size``) collide with mpe2's contact forces; goals do not collide.
The arena is ``[-S, S]^2`` with ``S = arena_size``, by default ``max(1, sqrt(N / 8))`` so
that the density of agents stays that of 8 agents in ``[-1, 1]^2``. Agents and goals
start uniformly in the arena and obstacles in its inner 80%, ``obstacle_gap`` apart. Episodes
last ``max_cycles`` steps, by default ``round(100 S)``, so that the farthest goals stay as
reachable as in [-1, 1]^2.

Observation of agent ``i`` (``6 + 3 K + 3 K_o`` numbers, ``K = max_neighbours``,
``K_o = max_obstacles_seen``): ``[v_i, p_i, g_i - p_i]``, then for the ``K`` nearest other
agents within ``sensing_radius``, ``[p_j - p_i, 1]`` (zeros where fewer are in range),
then the same for the ``K_o`` nearest obstacles.

Reward of agent ``i`` at each step, ``reward="progress"`` (the default): its progress
towards its goal (the drop in distance) minus ``collision_penalty`` for each agent or
obstacle it overlaps. ``reward="goal"`` (InforMARL's): ``goal_reward`` while within
``goal_radius`` of its goal, minus its distance otherwise, minus ``collision_penalty`` per
overlap. ``reward="arrival"``: minus its distance at each step until it first is within
``goal_radius`` of its goal, ``goal_reward`` at that step, and nothing after but the
collision penalty: the return counts what InforMARL's T and GCBF+'s success count (the
first arrival, and how soon), so an agent home has nothing to lose by making way. Both
count an agent home within ``reward_radius`` of its goal where that is set (the figures
always use ``goal_radius``). With ``neighbour_reward = w`` each agent also receives ``w``
times the sum of the rewards of the other agents within ``sensing_radius``; with
``shared_reward`` every agent receives the sum of all agents' rewards. An
episode terminates when every agent is within ``goal_radius`` of its goal (unless
``terminate_on_goals`` is off), or is truncated at ``max_cycles``.

Presets: ``preset="informarl"`` is the task of Nayak et al., "Scalable Multi-Agent
Reinforcement Learning through Intelligent Information Aggregation" (ICML 2023): 3 agents
each with its own goal, 3 obstacles, the world ``[-1, 1]^2``, every entity of radius 0.05,
sensing radius 1, 5 discrete actions, 25-step episodes, the shared ``goal`` reward with
``goal_reward = collision_penalty = 5``, and InforMARL's ``max_speed = 2`` with mpe's
acceleration 5. ``scenarios.configure`` (and so ``scenarios.make`` and every ``--set``)
applies a preset's values first and the other settings given over them, so
``preset=informarl, num_agents=7`` is InforMARL's task with 7 agents.

Collisions are counted: ``infos[agent]["collisions"]`` is ``(B,)`` overlaps of that agent
at this step, and ``infos[agent]["episode_collisions"]`` is ``(B,)`` the episode's total
so far of overlapping pairs (agent-agent pairs counted once, plus agent-obstacle pairs).
``infos[agent]["reached"]`` is ``(B,)`` bool: within ``goal_radius`` of its goal after
this step. :func:`episode_metrics` turns these into InforMARL's and GCBF+'s figures.

Memory: observations and rewards build ``(B, N, N)`` distances; with the engine's contact
step (see ``games/particle.py``) a step holds about ``10 B N (N + O)`` numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from games.markov import ConfigError, require_bool, require_float, require_int
from games.particle import ParticleGame, ParticleWorld, steer
from games.policy import Policy, team_returns

REWARDS = ("progress", "goal", "arrival")

PRESETS: dict[str, dict[str, object]] = {
    "default": {},
    "informarl": {
        "num_agents": 3, "num_obstacles": 3, "agent_size": 0.05, "obstacle_size": 0.05, "arena_size": 1.0,
        "sensing_radius": 1.0, "goal_radius": 0.05, "collision_penalty": 5.0, "acceleration": 5.0, "max_speed": 2.0,
        "max_cycles": 25, "continuous_actions": False, "reward": "goal", "goal_reward": 5.0, "shared_reward": True,
        "terminate_on_goals": False, "obstacle_gap": 0.0,
    },
}


@dataclass(frozen=True)
class NavigationConfig:
    num_agents: int = 8
    """N, the number of agents (each has its own goal)."""
    num_obstacles: int = 4
    """Number of static obstacles."""
    agent_size: float = 0.05
    """Agent radius."""
    obstacle_size: float = 0.1
    """Obstacle radius."""
    arena_size: float | None = None
    """Half-width S of the arena; ``None`` scales it as ``max(1, sqrt(N / 8))``."""
    sensing_radius: float = 0.5
    """Agents and obstacles farther than this are not observed."""
    max_neighbours: int = 4
    """K, the number of nearest agents an observation holds."""
    max_obstacles_seen: int = 2
    """K_o, the number of nearest obstacles an observation holds."""
    goal_radius: float = 0.05
    """An agent within this distance of its goal has reached it."""
    collision_penalty: float = 1.0
    """Reward lost per overlapping agent or obstacle per step."""
    acceleration: float = 3.0
    """Force per unit of action."""
    max_speed: float = 1.0
    """Speed limit of the agents."""
    max_cycles: int | None = None
    """Episode length in steps; ``None`` scales it with the arena as ``round(100 S)`` (100 steps in [-1, 1]^2)."""
    continuous_actions: bool = True
    """``Box(0, 1, (5,))`` actions (the default here) instead of ``Discrete(5)``."""
    reward: str = "progress"
    """``progress`` (the drop in goal distance), ``goal`` (InforMARL's) or ``arrival`` (the first arrival, soon);
    see the module docstring."""
    goal_reward: float = 5.0
    """``reward="goal"``: reward per step while within ``goal_radius`` of the goal; ``reward="arrival"``: reward
    at the step an agent first is."""
    reward_radius: float | None = None
    """``reward="goal"`` and ``"arrival"``: the distance within which the reward counts an agent home; ``None``:
    ``goal_radius``. Only the reward reads it (``reached``, termination and the figures of :func:`episode_metrics`
    keep ``goal_radius``), so a policy trained to aim inside the goal is measured on the task as set."""
    shared_reward: bool = False
    """Every agent receives the sum of all agents' rewards."""
    neighbour_reward: float = 0.0
    """Weight of the rewards of the other agents within ``sensing_radius`` added to each agent's own: a local
    share of the team's reward, which credits an agent for letting its neighbours through."""
    terminate_on_goals: bool = True
    """End an episode early once every agent is within ``goal_radius`` of its goal."""
    clear_starts: bool = True
    """Draw again (up to 16 rounds) any agent that starts overlapping an agent or obstacle (with a gap of
    ``agent_size``), and any goal where its agent, at rest, would overlap an obstacle or another agent at its
    goal; without it every safe policy fails the episodes whose goal lies inside an obstacle. Obstacles too
    close to each other (``obstacle_gap``) are drawn again in the first 8 rounds only, so that agents and goals
    have the rest to clear them."""
    obstacle_gap: float = 0.3
    """With ``clear_starts``, the free space kept between obstacles (surface to surface), as far as its rounds of
    draws find room: a narrower gap is a trap for goal seekers that a safety filter does not let through; 0 keeps
    no gap."""
    preset: str = "default"
    """The preset these settings start from (``default`` or ``informarl``), applied by ``scenarios.configure``."""

    presets = PRESETS

    def __post_init__(self) -> None:
        require_int("num_agents", self.num_agents, 1)
        require_int("num_obstacles", self.num_obstacles, 0)
        require_float("agent_size", self.agent_size, 0.0, open_minimum=True)
        require_float("obstacle_size", self.obstacle_size, 0.0, open_minimum=True)
        if self.arena_size is not None:
            require_float("arena_size", self.arena_size, 0.0, open_minimum=True)
        require_float("sensing_radius", self.sensing_radius, 0.0)
        require_int("max_neighbours", self.max_neighbours, 0)
        require_int("max_obstacles_seen", self.max_obstacles_seen, 0)
        require_float("goal_radius", self.goal_radius, 0.0, open_minimum=True)
        require_float("collision_penalty", self.collision_penalty, 0.0)
        require_float("acceleration", self.acceleration, 0.0, open_minimum=True)
        require_float("max_speed", self.max_speed, 0.0, open_minimum=True)
        if self.max_cycles is not None:
            require_int("max_cycles", self.max_cycles, 1)
        require_float("obstacle_gap", self.obstacle_gap, 0.0)
        require_bool("continuous_actions", self.continuous_actions)
        if self.reward not in REWARDS:
            raise ConfigError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        require_float("goal_reward", self.goal_reward)
        if self.reward_radius is not None:
            require_float("reward_radius", self.reward_radius, 0.0, open_minimum=True)
        require_bool("shared_reward", self.shared_reward)
        require_float("neighbour_reward", self.neighbour_reward, 0.0)
        require_bool("terminate_on_goals", self.terminate_on_goals)
        require_bool("clear_starts", self.clear_starts)
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.arena_size is not None and self.arena_size <= self.goal_radius:
            raise ConfigError(f"arena_size ({self.arena_size}) must exceed goal_radius ({self.goal_radius})")

    @property
    def half_width(self) -> float:
        return self.arena_size if self.arena_size is not None else max(1.0, math.sqrt(self.num_agents / 8))

    @property
    def episode_length(self) -> int:
        """``max_cycles``, or ``round(100 S)`` when it is ``None``."""
        return self.max_cycles if self.max_cycles is not None else round(100 * self.half_width)


class Navigation(ParticleGame):
    """Goal reaching with collisions counted. See the module docstring."""

    metadata = {"name": "navigation", "render_modes": ["rgb_array"]}
    config_class = NavigationConfig

    def __init__(self, config: NavigationConfig, **game) -> None:
        self.config = config
        count, obstacles = config.num_agents, config.num_obstacles
        names = [f"agent_{i}" for i in range(count)]
        size = 6 + 3 * config.max_neighbours + 3 * config.max_obstacles_seen
        super().__init__(
            names, dict.fromkeys(names, size), continuous=config.continuous_actions, max_steps=config.episode_length, **game
        )
        self.world = ParticleWorld(
            self.num_envs,
            count,
            sizes=[config.agent_size] * count + [config.obstacle_size] * obstacles + [config.goal_radius] * count,
            movable=[True] * count + [False] * (obstacles + count),
            collide=[True] * (count + obstacles) + [False] * count,
            max_speeds=[config.max_speed] * count + [None] * (obstacles + count),
            device=self.device,
            dtype=self.dtype,
        )
        self.accelerations = torch.full((count,), config.acceleration, dtype=self.dtype, device=self.device)
        self.colors = [(0.35, 0.35, 0.85)] * count + [(0.25, 0.25, 0.25)] * obstacles + [(0.55, 0.8, 0.55)] * count
        self._goal_distance = torch.zeros(count, self.num_envs, dtype=self.dtype, device=self.device)
        self.episode_collisions = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._step_collisions = torch.zeros(count, self.num_envs, dtype=torch.long, device=self.device)
        self._reached = torch.zeros(count, self.num_envs, dtype=torch.bool, device=self.device)
        self._arrived = torch.zeros(count, self.num_envs, dtype=torch.bool, device=self.device)  # this episode, ever
        self._eye = torch.eye(count, dtype=torch.bool, device=self.device)[:, :, None]

    # Entity blocks: agents, obstacles, goals.
    def _agents(self) -> slice:
        return slice(0, self.config.num_agents)

    def _obstacles(self) -> slice:
        count = self.config.num_agents
        return slice(count, count + self.config.num_obstacles)

    def _goals(self) -> slice:
        start = self.config.num_agents + self.config.num_obstacles
        return slice(start, start + self.config.num_agents)

    def goal_distance_bl(self) -> torch.Tensor:
        """``(N, B)`` distance of each agent to its goal."""
        offset = self.world.pos[self._goals()] - self.world.pos[self._agents()]
        return offset.square().sum(1).sqrt()

    def goal_distance(self) -> torch.Tensor:
        """``(B, N)`` distance of each agent to its goal."""
        return self.goal_distance_bl().T

    def _reset_copies(self, mask: torch.Tensor) -> None:
        count, obstacles = self.config.num_agents, self.config.num_obstacles
        entities = 2 * count + obstacles
        half = self.config.half_width
        scale = torch.full((entities, 1), half, dtype=self.dtype, device=self.device)
        scale[count : count + obstacles] *= 0.8  # obstacles in the inner 80%
        rounds = 16 if self.config.clear_starts else 1
        draws = (self._uniform(2 * entities * rounds) * 2.0 - 1.0).view(self.num_envs, rounds, entities, 2)
        position = draws[:, 0] * scale  # (B, E, 2): agents, obstacles, goals
        if rounds > 1:
            limit, yields = self._start_gaps()  # (E, E) each, as cheap as one round's distances (kept out of state_dict)
            for draw in range(1, rounds):
                close = (position[:, :, None] - position[:, None]).square().sum(-1) < limit  # (B, E, E)
                again = (close & yields).any(-1)
                if draw > rounds // 2:  # obstacles settle in the first half; agents and goals then clear them
                    again[:, count : count + obstacles] = False
                if not bool(again.any()):
                    break
                position = torch.where(again[..., None], draws[:, draw] * scale, position)
        self.world.reset_entities(mask, position.permute(1, 2, 0))
        self._goal_distance = torch.where(mask, self.goal_distance_bl(), self._goal_distance)
        self._arrived = self._arrived & ~mask
        self.episode_collisions = self.episode_collisions.masked_fill(mask, 0)

    def _start_gaps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E, E)`` squared distances entities must start apart (0: no rule), and ``(E, E)`` bool: whether
        ``e`` is drawn again when it starts too close to ``f`` (see ``clear_starts``).

        Of a close pair, an agent or goal is drawn again rather than an obstacle, and otherwise the later
        entity: an obstacle drawn again for an agent's sake could land on another agent in the last round,
        and an agent can start anywhere."""
        count, obstacles = self.config.num_agents, self.config.num_obstacles
        agent, obstacle = self.config.agent_size, self.config.obstacle_size
        kind = torch.tensor([0] * count + [1] * obstacles + [2] * count, device=self.device)  # agent, obstacle, goal
        size = torch.where(kind == 1, obstacle, agent).to(self.dtype)
        row, column = kind[:, None], kind[None, :]
        between_obstacles = (row == 1) & (column == 1)
        gap = size[:, None] + size[None, :] + torch.where(between_obstacles, self.config.obstacle_gap, agent)
        # Rules: agent-agent, agent-obstacle, goal-goal, goal-obstacle and obstacle-obstacle (``obstacle_gap``,
        # if above 0); no rule for agent-goal pairs (an agent may start near any goal).
        free = ((row == 0) & (column == 2)) | ((row == 2) & (column == 0))
        free = free | (between_obstacles & (self.config.obstacle_gap == 0))
        order = torch.where(kind == 1, -1, kind) * size.numel() + torch.arange(size.numel(), device=self.device)
        return torch.where(free, 0.0, gap.square()), order[None, :] < order[:, None]

    def _nearest(self, distance: torch.Tensor, offset: torch.Tensor, slots: int) -> torch.Tensor:
        """``(N, 3 slots, B)``: ``[offset, 1]`` of the ``slots`` nearest in range, zero-padded.

        ``distance`` is ``(N, M, B)`` (``inf`` where excluded) and ``offset`` ``(N, M, 2, B)``."""
        count, candidates, batch = distance.shape
        taken = min(slots, candidates)
        rows = distance.new_zeros(count, slots, 3, batch)
        if taken:
            nearest, index = distance.topk(taken, dim=1, largest=False)  # (N, k, B)
            seen = (nearest <= self.config.sensing_radius)[:, :, None]
            picked = torch.gather(offset, 1, index[:, :, None, :].expand(-1, -1, 2, -1))  # (N, k, 2, B)
            rows[:, :taken, :2] = torch.where(seen, picked, 0.0)
            rows[:, :taken, 2:] = seen.to(self.dtype)
        return rows.flatten(1, 2)

    def _observations(self) -> dict[str, torch.Tensor]:
        agents = self.world.pos[self._agents()]  # (N, 2, B)
        offsets, distances = self.world.agent_offsets_bl()  # (N, E, 2, B): [i, e] = p_e - p_i
        to_agents, to_obstacles = offsets[:, self._agents()], offsets[:, self._obstacles()]
        agent_distance = distances[:, self._agents()].masked_fill(self._eye, float("inf"))  # (N, N, B)
        obstacle_distance = distances[:, self._obstacles()]  # (N, O, B)
        to_goal = self.world.pos[self._goals()] - agents
        stacked = torch.cat(
            [
                self.world.vel[self._agents()],
                agents,
                to_goal,
                self._nearest(agent_distance, to_agents, self.config.max_neighbours),
                self._nearest(obstacle_distance, to_obstacles, self.config.max_obstacles_seen),
            ],
            dim=1,
        )
        return self.split_observations(stacked)

    def _rewards(self) -> torch.Tensor:
        agents = self._agents()
        pairs = self.world.overlapping_bl(agents, agents) & ~self._eye  # (N, N, B)
        blocked = self.world.overlapping_bl(agents, self._obstacles())  # (N, O, B)
        per_agent = pairs.sum(dim=1) + blocked.sum(dim=1)  # (N, B)
        self._step_collisions = per_agent
        self.episode_collisions = self.episode_collisions + pairs.sum(dim=(0, 1)) // 2 + blocked.sum(dim=(0, 1))
        config = self.config
        distance = self.goal_distance_bl()
        self._reached = distance <= config.goal_radius
        home = self._reached if config.reward_radius is None else distance <= config.reward_radius
        if config.reward == "goal":
            reward = torch.where(home, config.goal_reward, -distance)
        elif config.reward == "arrival":
            first = home & ~self._arrived
            reward = torch.where(self._arrived, 0.0, torch.where(first, config.goal_reward, -distance))
            self._arrived = self._arrived | home
        else:
            reward = self._goal_distance - distance
        self._goal_distance = distance
        reward = reward - config.collision_penalty * per_agent.to(self.dtype)
        if config.neighbour_reward:
            near = (self.world.distances_bl(agents, agents) <= config.sensing_radius) & ~self._eye  # (N, N, B)
            reward = reward + config.neighbour_reward * (near.to(self.dtype) * reward[None]).sum(1)
        if config.shared_reward:
            reward = reward.sum(0, keepdim=True).expand_as(reward)
        return reward

    def _terminated(self) -> torch.Tensor:
        if not self.config.terminate_on_goals:
            return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return (self._goal_distance <= self.config.goal_radius).all(dim=0)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As ``MarkovGame.load_state_dict``; a state saved before navigation kept arrivals (no ``_arrived``)
        takes the agents then within ``goal_radius`` as the ones that have arrived, so older runs resume."""
        tensors = state.get("tensors") if isinstance(state, Mapping) else None
        if isinstance(tensors, Mapping) and "_arrived" not in tensors and "_reached" in tensors:
            state = {**state, "tensors": {**tensors, "_arrived": tensors["_reached"].clone()}}
        super().load_state_dict(state)

    def entities(self) -> dict[str, torch.Tensor]:
        """The world as decentralized controllers and safety filters read it, batch-first.

        Returns:
            ``agent_position``, ``agent_velocity``, ``goal_position``: ``(B, N, 2)``;
            ``obstacle_position``: ``(B, O, 2)``.
        """
        position, velocity = self.world.position, self.world.velocity  # (B, E, 2) views
        return {
            "agent_position": position[:, self._agents()],
            "agent_velocity": velocity[:, self._agents()],
            "goal_position": position[:, self._goals()],
            "obstacle_position": position[:, self._obstacles()],
        }

    def _extra_infos(self) -> dict[str, dict[str, torch.Tensor]]:
        total = self.episode_collisions
        return {
            agent: {"collisions": self._step_collisions[i], "episode_collisions": total, "reached": self._reached[i]}
            for i, agent in enumerate(self.possible_agents)
        }


def goal_seeking_policy(game: Navigation, observations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scripted play: each agent pushes straight at its goal, braking as it arrives.

    It ignores the other agents and the obstacles, which makes it the baseline a
    decentralized controller or a safety filter should beat on collisions."""
    seen = torch.stack([observations[agent] for agent in game.possible_agents], dim=1)  # (B, N, D)
    actions = steer(seen[..., 4:6], seen[..., 0:2], game.world, game.continuous)
    return {agent: actions[:, i] for i, agent in enumerate(game.possible_agents)}


def episode_metrics(policy: Policy, game: Navigation, seed: int) -> dict[str, float]:
    """Plays the first episode of every copy of ``game`` and measures it as InforMARL and GCBF+ do.

    Figures, means over the ``B`` episodes (and over agents where per agent):

    - ``time_to_goal`` (InforMARL's T): the step an agent first is within ``goal_radius`` of
      its goal, over the episode length ``max_cycles``; 1 for an agent that never is;
    - ``collisions_per_agent`` (InforMARL's): every step an agent overlaps another agent or
      an obstacle counts once per overlap for that agent, so an agent-agent overlap counts
      for both;
    - ``success_rate`` (InforMARL's S%, 0-100): the percentage of episodes in which every
      agent reached its goal;
    - ``safe_rate``, ``finish_rate``, ``agent_success_rate`` (GCBF+'s, fractions in [0, 1]):
      agents that never collided, that reached their goal, and both;
    - ``mean_episode_return``: the return per agent, ``episode_return_std`` its standard deviation
      over episodes, ``episode_returns`` the ``(B,)`` float64 returns, ``episodes``: ``B``.

    Steps after a copy's episode ended (all agents home with ``terminate_on_goals``) do not
    count; its agents have all reached their goals.
    """
    count, copies, length = game.config.num_agents, game.num_envs, game.config.episode_length
    first = torch.full((count, copies), float("inf"), dtype=torch.float64, device=game.device)
    collisions = torch.zeros(count, copies, dtype=torch.float64, device=game.device)
    counted = torch.ones(copies, dtype=torch.bool, device=game.device)  # copies whose episode this step is in
    step = 0

    def record(running: torch.Tensor, infos: dict) -> None:
        nonlocal step, counted
        step += 1
        reached = torch.stack([infos[agent]["reached"] for agent in game.possible_agents]) & counted
        hits = torch.stack([infos[agent]["collisions"] for agent in game.possible_agents])
        first.copy_(torch.where(reached & first.isinf(), float(step), first))
        collisions.add_(torch.where(counted, hits.to(torch.float64), 0.0))
        counted = running.clone()

    returns = team_returns(policy, game, seed, [list(game.possible_agents)], after_step=record)[0]
    finished = first.isfinite()
    first = torch.where(finished, first, float(length))
    safe = collisions == 0
    return {
        "time_to_goal": float((first / length).mean()),
        "collisions_per_agent": float(collisions.mean()),
        "success_rate": 100.0 * float(finished.all(0).to(torch.float64).mean()),
        "safe_rate": float(safe.to(torch.float64).mean()),
        "finish_rate": float(finished.to(torch.float64).mean()),
        "agent_success_rate": float((safe & finished).to(torch.float64).mean()),
        "mean_episode_return": float(returns.mean()),
        "episode_return_std": float(returns.std()) if copies > 1 else 0.0,
        "episode_returns": returns,
        "episodes": copies,
    }
