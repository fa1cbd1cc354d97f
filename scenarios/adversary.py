"""``adversary``: physical deception, mpe2's ``simple_adversary_v3`` on batched tensors.

One adversary and N good agents (radius 0.15, acceleration 5, nothing collides) among N
landmarks (radius 0.08). One landmark, drawn uniformly per episode, is the goal. The good
agents know which; the adversary does not.

Rewards, as in mpe2 (the shaped variant it uses):
- the adversary: minus its distance to the goal;
- every good agent: minus the distance of the nearest good agent to the goal, plus the
  adversary's distance to the goal.

Observations: a good agent sees ``[p_goal - p_i, p_l - p_i for each landmark l, p_j - p_i
for each other agent j]`` (10 numbers for N = 2); the adversary sees the same without the
goal (8 numbers). Agent names: ``adversary_0``, then ``agent_0..``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from games.markov import require_bool, require_int
from games.particle import ParticleGame, ParticleWorld, others_index


@dataclass(frozen=True)
class AdversaryConfig:
    num_good: int = 2
    """N, the number of good agents and of landmarks (mpe2's ``N``)."""
    max_cycles: int = 25
    """Episode length in steps."""
    continuous_actions: bool = False
    """``Box(0, 1, (5,))`` actions instead of ``Discrete(5)``."""

    def __post_init__(self) -> None:
        require_int("num_good", self.num_good, 1)
        require_int("max_cycles", self.max_cycles, 1)
        require_bool("continuous_actions", self.continuous_actions)


class Adversary(ParticleGame):
    """Batched ``simple_adversary_v3``. See the module docstring."""

    metadata = {"name": "adversary", "render_modes": ["rgb_array"]}
    config_class = AdversaryConfig

    def __init__(self, config: AdversaryConfig, **game) -> None:
        self.config = config
        good = config.num_good
        count = good + 1
        names = ["adversary_0"] + [f"agent_{i}" for i in range(good)]
        base = 2 * good + 2 * (count - 1)
        sizes = {name: base + (2 if name.startswith("agent") else 0) for name in names}
        super().__init__(
            names, sizes, continuous=config.continuous_actions, max_steps=config.max_cycles, **game
        )
        self.world = ParticleWorld(
            self.num_envs,
            count,
            sizes=[0.15] * count + [0.08] * good,
            movable=[True] * count + [False] * good,
            collide=[False] * (count + good),
            device=self.device,
            dtype=self.dtype,
        )
        self.accelerations = torch.full((count,), 5.0, dtype=self.dtype, device=self.device)
        self.colors = [(0.85, 0.35, 0.35)] + [(0.35, 0.35, 0.85)] * good + [(0.15, 0.15, 0.15)] * good
        self.goal = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._others = others_index(count, self.device)

    def _reset_copies(self, mask: torch.Tensor) -> None:
        good = self.config.num_good
        count = good + 1
        draws = self._uniform(1 + 2 * (count + good))
        goal = (draws[:, 0] * good).long().clamp_max(good - 1)
        self.goal = torch.where(mask, goal, self.goal)
        start = (draws[:, 1:] * 2.0 - 1.0).view(self.num_envs, count + good, 2)
        self.world.reset_entities(mask, start.permute(1, 2, 0))

    def goal_position_bl(self) -> torch.Tensor:
        """``(2, B)`` position of each copy's goal landmark."""
        count = self.config.num_good + 1
        landmarks = self.world.pos[count:]  # (L, 2, B)
        return torch.gather(landmarks, 0, self.goal[None, None].expand(1, 2, -1))[0]

    def goal_position(self) -> torch.Tensor:
        """``(B, 2)`` position of each copy's goal landmark."""
        return self.goal_position_bl().T

    def entity_colors(self) -> list[list[tuple[float, float, float]]]:
        """Per copy, the entity colors with the goal landmark in green (as mpe2 draws it)."""
        count = self.config.num_good + 1
        colors = []
        for goal in self.goal.tolist():
            row = list(self.colors)
            row[count + goal] = (0.15, 0.65, 0.15)
            colors.append(row)
        return colors

    def _observations(self) -> dict[str, torch.Tensor]:
        count = self.config.num_good + 1
        agents = self.world.pos[:count]  # (N + 1, 2, B)
        to_landmarks = self.world.pos[None, count:] - agents[:, None]  # (N + 1, L, 2, B)
        to_agents = agents[None] - agents[:, None]
        to_others = to_agents[self._others]
        shared = torch.cat([to_landmarks.flatten(1, 2), to_others.flatten(1, 2)], dim=1)
        to_goal = self.goal_position_bl()[None] - agents[1:]  # (N, 2, B)
        observations = self.split_observations(shared[:1], ["adversary_0"])
        observations.update(self.split_observations(torch.cat([to_goal, shared[1:]], dim=1), self.possible_agents[1:]))
        return observations

    def _rewards(self) -> torch.Tensor:
        count = self.config.num_good + 1
        to_goal = (self.world.pos[:count] - self.goal_position_bl()[None]).square().sum(1).sqrt()  # (N + 1, B)
        adversary = to_goal[0]
        good = -to_goal[1:].amin(dim=0) + adversary
        return torch.cat([-adversary[None], good[None].expand(count - 1, -1)], dim=0)
