"""``tag``: predator-prey, mpe2's ``simple_tag_v3`` on batched tensors.

Slow adversaries (radius 0.075, acceleration 3, top speed 1.0) chase fast good agents
(radius 0.05, acceleration 4, top speed 1.3) among static obstacles (radius 0.2). Every
entity collides. Agents start uniformly in ``[-1, 1]^2``, obstacles in ``[-0.9, 0.9]^2``.

Rewards, as in mpe2:
- every adversary gets +10 for each (good agent, adversary) pair that overlaps, so the
  adversaries share one team reward;
- a good agent gets -10 for each adversary overlapping it, minus, for each coordinate
  ``x`` of its position, ``bound(|x|)``: 0 below 0.9, ``10 (|x| - 0.9)`` below 1, and
  ``min(exp(2 |x| - 2), 10)`` beyond, which keeps it from fleeing forever.

Observation of agent ``i``: ``[v_i, p_i, p_o - p_i for each obstacle o, p_j - p_i for
each other agent j, v_g for each other good agent g]``: 16 numbers for an adversary and
14 for the good agent with the defaults (1 good agent, 3 adversaries, 2 obstacles).
Agent names: ``adversary_0..`` first, then ``agent_0..``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from games.markov import require_bool, require_int
from games.particle import ParticleGame, ParticleWorld, others_index, steer
from games.policy import policy_factory


@dataclass(frozen=True)
class TagConfig:
    num_good: int = 1
    """Number of good agents (the prey)."""
    num_adversaries: int = 3
    """Number of adversaries (the predators)."""
    num_obstacles: int = 2
    """Number of static obstacles."""
    max_cycles: int = 25
    """Episode length in steps."""
    continuous_actions: bool = False
    """``Box(0, 1, (5,))`` actions instead of ``Discrete(5)``."""

    def __post_init__(self) -> None:
        require_int("num_good", self.num_good, 1)
        require_int("num_adversaries", self.num_adversaries, 1)
        require_int("num_obstacles", self.num_obstacles, 0)
        require_int("max_cycles", self.max_cycles, 1)
        require_bool("continuous_actions", self.continuous_actions)


def boundary_penalty(position: torch.Tensor) -> torch.Tensor:
    """mpe2's ``bound``: ``(...)`` penalties for ``(...)`` absolute coordinates."""
    beyond = torch.exp(2.0 * position - 2.0).clamp_max(10.0)
    edge = (position - 0.9) * 10.0
    return torch.where(position < 0.9, torch.zeros_like(position), torch.where(position < 1.0, edge, beyond))


class Tag(ParticleGame):
    """Batched ``simple_tag_v3``. See the module docstring."""

    metadata = {"name": "tag", "render_modes": ["rgb_array"]}
    config_class = TagConfig

    def __init__(self, config: TagConfig, **game) -> None:
        self.config = config
        good, adversaries, obstacles = config.num_good, config.num_adversaries, config.num_obstacles
        count = good + adversaries
        self.adversary_names = [f"adversary_{i}" for i in range(adversaries)]
        self.good_names = [f"agent_{i}" for i in range(good)]
        common = 4 + 2 * obstacles + 2 * (count - 1)
        sizes = {name: common + 2 * good for name in self.adversary_names}
        sizes.update({name: common + 2 * (good - 1) for name in self.good_names})
        super().__init__(
            self.adversary_names + self.good_names,
            sizes,
            continuous=config.continuous_actions,
            max_steps=config.max_cycles,
            **game,
        )
        self.world = ParticleWorld(
            self.num_envs,
            count,
            sizes=[0.075] * adversaries + [0.05] * good + [0.2] * obstacles,
            movable=[True] * count + [False] * obstacles,
            collide=[True] * (count + obstacles),
            max_speeds=[1.0] * adversaries + [1.3] * good + [None] * obstacles,
            device=self.device,
            dtype=self.dtype,
        )
        self.accelerations = torch.tensor([3.0] * adversaries + [4.0] * good, dtype=self.dtype, device=self.device)
        self.colors = (
            [(0.85, 0.35, 0.35)] * adversaries + [(0.35, 0.85, 0.35)] * good + [(0.25, 0.25, 0.25)] * obstacles
        )
        self._others = others_index(count, self.device)
        self._other_good = others_index(good, self.device)

    def _reset_copies(self, mask: torch.Tensor) -> None:
        count = self.config.num_good + self.config.num_adversaries
        obstacles = self.config.num_obstacles
        draws = self._uniform(2 * (count + obstacles))
        agents = draws[:, : 2 * count] * 2.0 - 1.0
        landmarks = draws[:, 2 * count :] * 1.8 - 0.9
        start = torch.cat([agents, landmarks], dim=1).view(self.num_envs, count + obstacles, 2)
        self.world.reset_entities(mask, start.permute(1, 2, 0))

    def _observations(self) -> dict[str, torch.Tensor]:
        adversaries, good = self.config.num_adversaries, self.config.num_good
        count = adversaries + good
        position, velocity = self.world.pos, self.world.vel  # (E, 2, B)
        agents = position[:count]
        offsets, _ = self.world.agent_offsets_bl()  # (N, E, 2, B): [i, e] = p_e - p_i
        to_obstacles = offsets[:, count:]  # (N, O, 2, B)
        to_others = offsets[:, :count][self._others]  # (N, N - 1, 2, B)
        shared = torch.cat([velocity[:count], agents, to_obstacles.flatten(1, 2), to_others.flatten(1, 2)], dim=1)
        good_velocity = velocity[adversaries:count]  # (G, 2, B)
        seen_by_adversaries = good_velocity.flatten(0, 1)[None].expand(adversaries, -1, -1)
        seen_by_good = good_velocity[self._other_good[1]].flatten(1, 2)  # (G, 2 (G - 1), B)
        observations = self.split_observations(
            torch.cat([shared[:adversaries], seen_by_adversaries], dim=1), self.adversary_names
        )
        observations.update(self.split_observations(torch.cat([shared[adversaries:], seen_by_good], dim=1),
                                                    self.good_names))
        return observations

    def caught(self) -> torch.Tensor:
        """``(A, G, B)`` bool: adversary ``a`` overlaps good agent ``g``."""
        adversaries, good = self.config.num_adversaries, self.config.num_good
        return self.world.overlapping_bl(slice(0, adversaries), slice(adversaries, adversaries + good))

    def _rewards(self) -> torch.Tensor:
        adversaries, good = self.config.num_adversaries, self.config.num_good
        caught = self.caught().to(self.dtype)
        team = 10.0 * caught.sum(dim=(0, 1))  # (B,)
        good_position = self.world.pos[adversaries : adversaries + good]  # (G, 2, B)
        good_reward = -10.0 * caught.sum(dim=0) - boundary_penalty(good_position.abs()).sum(dim=1)  # (G, B)
        return torch.cat([team[None].expand(adversaries, -1), good_reward], dim=0)


@policy_factory
def pursuit_policy(lead: float = 0.0, margin: float = 0.8) -> Callable[[Tag, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Scripted play from observations alone, for both teams.

    Each adversary heads for the nearest good agent's position plus ``lead`` times its
    velocity (where it will be); each good agent flees along the sum of the directions
    away from the adversaries, weighted by inverse squared distance, and turns back
    towards the centre once a coordinate is beyond ``margin`` (the boundary penalty
    starts at 0.9). Steering is ``games.particle.steer``.

    Returns:
        ``policy(game, observations) -> actions``, gamelab's policy protocol.
    """

    def policy(game: Tag, observations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        adversaries, good, obstacles = game.config.num_adversaries, game.config.num_good, game.config.num_obstacles
        others = 4 + 2 * obstacles  # where the other agents' offsets start
        hunters_seen = torch.stack([observations[name] for name in game.adversary_names], dim=1)  # (B, A, obs)
        first_prey = others + 2 * (adversaries - 1)
        prey = hunters_seen[..., first_prey: first_prey + 2 * good].unflatten(-1, (good, 2))  # (B, A, G, 2)
        speeds = hunters_seen[..., first_prey + 2 * good:].unflatten(-1, (good, 2))
        nearest = prey.square().sum(-1).argmin(dim=-1)[..., None, None].expand(-1, -1, 1, 2)
        offset = (prey + lead * speeds).gather(2, nearest)[:, :, 0]  # (B, A, 2)
        chase = steer(offset, hunters_seen[..., 0:2], game.world, game.continuous)
        prey_seen = torch.stack([observations[name] for name in game.good_names], dim=1)  # (B, G, obs)
        hunters = prey_seen[..., others: others + 2 * adversaries].unflatten(-1, (adversaries, 2))  # (B, G, A, 2)
        away = -(hunters / hunters.square().sum(-1, keepdim=True).clamp_min(1e-6)).sum(2)
        away = away * away.square().sum(-1, keepdim=True).clamp_min(1e-12).rsqrt()
        position = prey_seen[..., 2:4]
        home = torch.where(position.abs() > margin, -position, torch.zeros_like(position))
        flee = steer(0.5 * away + 2.0 * home, prey_seen[..., 0:2], game.world, game.continuous)
        actions = {name: chase[:, i] for i, name in enumerate(game.adversary_names)}
        actions.update({name: flee[:, i] for i, name in enumerate(game.good_names)})
        return actions

    return policy
