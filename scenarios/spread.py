"""``spread``: cooperative navigation, mpe2's ``simple_spread_v3`` on batched tensors.

N agents and N landmarks. All agents share a global reward, minus the sum over landmarks
of the distance to the nearest agent; each agent also loses 1 per other agent it overlaps.
An agent's reward is ``(1 - local_ratio) * global + local_ratio * local``. Episodes last
``max_cycles`` steps and never terminate early.

Agents (radius 0.15, acceleration 5, no speed limit) and landmarks start uniformly in
``[-1, 1]^2`` at rest. Landmarks do not collide; agents push each other apart.

Observation of agent ``i`` (``6 N`` numbers, 18 for N = 3), as in mpe2:
``[v_i, p_i, p_l - p_i for each landmark l, p_j - p_i for each other agent j,
c_j for each other agent j]``; the communication ``c_j`` is two zeros, since agents in
this task are silent.

A scripted policy, ``optimal_assignment_policy``, sends the agents to distinct landmarks
(the assignment of least total distance, found by trying all N! assignments) and steers
each straight to its landmark.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from games.markov import require_bool, require_float, require_int
from games.particle import ParticleGame, ParticleWorld, others_index, steer


@dataclass(frozen=True)
class SpreadConfig:
    num_agents: int = 3
    """N, the number of agents and of landmarks (mpe2's ``N``)."""
    local_ratio: float = 0.5
    """Weight of the local (collision) reward; the global reward gets ``1 - local_ratio``."""
    max_cycles: int = 25
    """Episode length in steps."""
    continuous_actions: bool = False
    """``Box(0, 1, (5,))`` actions instead of ``Discrete(5)``."""

    def __post_init__(self) -> None:
        require_int("num_agents", self.num_agents, 1)
        require_float("local_ratio", self.local_ratio, 0.0, 1.0)
        require_int("max_cycles", self.max_cycles, 1)
        require_bool("continuous_actions", self.continuous_actions)


class Spread(ParticleGame):
    """Batched ``simple_spread_v3``. See the module docstring."""

    metadata = {"name": "spread", "render_modes": ["rgb_array"]}
    config_class = SpreadConfig

    def __init__(self, config: SpreadConfig, **game) -> None:
        count = config.num_agents
        self.config = config
        agents = [f"agent_{i}" for i in range(count)]
        size = 4 + 2 * count + 4 * (count - 1)  # 6 N
        super().__init__(
            agents,
            dict.fromkeys(agents, size),
            continuous=config.continuous_actions,
            max_steps=config.max_cycles,
            **game,
        )
        self.world = ParticleWorld(
            self.num_envs,
            count,
            sizes=[0.15] * count + [0.05] * count,
            movable=[True] * count + [False] * count,
            collide=[True] * count + [False] * count,
            device=self.device,
            dtype=self.dtype,
        )
        self.accelerations = torch.full((count,), 5.0, dtype=self.dtype, device=self.device)
        self.colors = [(0.35, 0.35, 0.85)] * count + [(0.25, 0.25, 0.25)] * count
        self._others = others_index(count, self.device)

    def _reset_copies(self, mask: torch.Tensor) -> None:
        count = self.config.num_agents
        start = self._uniform(4 * count) * 2.0 - 1.0  # (B, 4 N): agents, then landmarks
        self.world.reset_entities(mask, start.view(self.num_envs, 2 * count, 2).permute(1, 2, 0))

    def _observations(self) -> dict[str, torch.Tensor]:
        count = self.config.num_agents
        offsets, _ = self.world.agent_offsets_bl()  # (N, E, 2, B): [i, e] = p_e - p_i
        to_landmarks = offsets[:, count:]  # (N, L, 2, B)
        to_others = offsets[:, :count][self._others]  # (N, N - 1, 2, B)
        silence = offsets.new_zeros(count, 2 * (count - 1), self.num_envs)
        stacked = torch.cat(
            [self.world.vel[:count], self.world.pos[:count], to_landmarks.flatten(1, 2), to_others.flatten(1, 2),
             silence],
            dim=1,
        )
        return self.split_observations(stacked)

    def _rewards(self) -> torch.Tensor:
        count = self.config.num_agents
        agents, landmarks = slice(0, count), slice(count, 2 * count)
        global_reward = -self.world.distances_bl(agents, landmarks).amin(dim=0).sum(dim=0)  # (B,)
        # Every agent overlaps itself (distance 0): count the others by subtracting 1.
        overlaps = self.world.overlapping_bl(agents, agents).sum(dim=1) - 1  # (N, B)
        local_reward = -overlaps.to(self.dtype)
        ratio = self.config.local_ratio
        return (global_reward * (1.0 - ratio)) + local_reward * ratio

    def landmark_assignment(self) -> torch.Tensor:
        """``(B, N)`` landmark of each agent in the assignment of least total distance.

        Exhaustive over the N! assignments, so meant for small N (N <= 7)."""
        count = self.config.num_agents
        distance = self.world.distances(slice(0, count), slice(count, 2 * count))  # (B, N, N)
        permutations = torch.tensor(list(itertools.permutations(range(count))), device=self.device)  # (P, N)
        agent_index = torch.arange(count, device=self.device)
        costs = distance[:, agent_index, permutations].sum(dim=2)  # (B, P)
        return permutations[costs.argmin(dim=1)]


def optimal_assignment_policy(game: Spread, observations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scripted play: each agent heads for its landmark in the least-distance assignment.

    The steering is ``games.particle.steer``: aim where damping would stop the agent.
    """
    del observations
    count = game.config.num_agents
    target = game.landmark_assignment()  # (B, N)
    landmarks = game.world.position[:, count:]
    goal = torch.gather(landmarks, 1, target[..., None].expand(-1, -1, 2))  # (B, N, 2)
    offset = goal - game.world.position[:, :count]
    actions = steer(offset, game.world.velocity[:, :count], game.world, game.continuous)
    return {agent: actions[:, i] for i, agent in enumerate(game.possible_agents)}
