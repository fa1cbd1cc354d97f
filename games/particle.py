"""A batched 2-D particle physics engine, and the Markov game built on it.

The physics is that of the multi-agent particle environments (Lowe et al., "Multi-Agent
Actor-Critic for Mixed Cooperative-Competitive Environments", NeurIPS 2017; maintained as
``mpe2``), written as whole-batch tensor operations: no Python loop runs over copies or
over pairs of entities. One step of ``ParticleWorld.step`` does, for every copy at once:

1. force on each agent = its control (already scaled by its acceleration);
2. contact forces between every pair of colliding entities ``a != b``:
   ``f_ab = contact_force * (p_a - p_b) / |p_a - p_b| * k * softplus(-(|p_a - p_b| - r_a - r_b) / k)``
   with ``k = contact_margin``; a movable entity receives the sum over its partners;
3. for movable entities, ``p += v * dt`` (with the velocity before this step), then
   ``v = v * (1 - damping) + f / m * dt``, then ``v`` is scaled down to ``max_speed``.

Entities are stored in one array: the ``num_agents`` agents first, then landmarks and
obstacles. Shapes: positions and velocities ``(B, E, 2)``.

Memory: the contact step builds ``(B, M, C)`` distances and ``(B, M, C, 2)`` offsets,
where ``C`` entities collide and ``M`` of them move, about ``6 * B * M * C`` numbers at
the game's dtype in flight. Navigation with 256 agents and 16 obstacles at ``B = 64`` is
``6 * 64 * 256 * 272`` float32 numbers, about 107 MB. Scenarios whose rewards or
observations look at all pairs of agents add ``(B, N, N)`` tensors of the same order.

NOTE: where two colliding entities sit at exactly the same point, mpe2 divides by zero
and produces NaN; here the distance is clamped at 1e-12 so the contact force is zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from games.markov import AgentID, MarkovGame

# Discrete MPE actions: no-op, left, right, down, up.
MOVES = ((0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))


class ParticleWorld:
    """Positions and velocities of ``B`` copies of ``E`` round entities, and their physics.

    Args:
        num_envs: ``B``.
        num_agents: the first ``num_agents`` entities are agents, driven by controls.
        sizes: ``(E,)`` radii.
        movable: ``(E,)`` whether each entity moves.
        collide: ``(E,)`` whether each entity takes part in contacts.
        masses: ``(E,)`` masses (mpe2: 1 for all).
        max_speeds: ``(E,)`` speed limits; ``None`` or ``inf`` for none.
        dt, damping, contact_force, contact_margin: mpe2's world constants.
    """

    def __init__(
        self,
        num_envs: int,
        num_agents: int,
        sizes: Sequence[float],
        movable: Sequence[bool],
        collide: Sequence[bool],
        masses: Sequence[float] | None = None,
        max_speeds: Sequence[float | None] | None = None,
        *,
        dt: float = 0.1,
        damping: float = 0.25,
        contact_force: float = 100.0,
        contact_margin: float = 1e-3,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        count = len(sizes)
        self.num_envs = num_envs
        self.num_agents = num_agents
        self.num_entities = count
        self.device = torch.device(device)
        self.dtype = dtype
        self.dt = dt
        self.damping = damping
        self.contact_force = contact_force
        self.contact_margin = contact_margin
        self.sizes = torch.tensor(list(sizes), dtype=dtype, device=self.device)
        self.movable = torch.tensor(list(movable), dtype=torch.bool, device=self.device)
        self.collide = torch.tensor(list(collide), dtype=torch.bool, device=self.device)
        masses = [1.0] * count if masses is None else list(masses)
        self.masses = torch.tensor(masses, dtype=dtype, device=self.device)
        speeds = [float("inf")] * count if max_speeds is None else [float("inf") if s is None else s for s in max_speeds]
        self.max_speeds = torch.tensor(speeds, dtype=dtype, device=self.device)
        self.limited = bool(torch.isfinite(self.max_speeds).any())
        self.position = torch.zeros(num_envs, count, 2, dtype=dtype, device=self.device)
        self.velocity = torch.zeros(num_envs, count, 2, dtype=dtype, device=self.device)

        movers = [i for i in range(count) if movable[i]]
        if movers != list(range(len(movers))) or any(not movable[i] for i in range(num_agents)):
            raise ValueError("agents must come first and be movable; movable landmarks are not supported")
        self.num_movers = len(movers)
        colliders = [i for i in range(count) if collide[i]]
        self._colliders = torch.tensor(colliders, dtype=torch.long, device=self.device)
        self._moving_colliders = torch.tensor([i for i in colliders if movable[i]], dtype=torch.long, device=self.device)
        # Position of each moving collider in the collider list, to mask self-contact.
        where = {entity: column for column, entity in enumerate(colliders)}
        self._self_column = torch.tensor(
            [where[int(i)] for i in self._moving_colliders], dtype=torch.long, device=self.device
        )
        rows, columns = len(self._moving_colliders), len(colliders)
        pair_radii = self.sizes[self._moving_colliders][:, None] + self.sizes[self._colliders][None, :]
        self._pair_radii = pair_radii
        not_self = torch.ones(rows, columns, dtype=torch.bool, device=self.device)
        if rows:
            not_self[torch.arange(rows, device=self.device), self._self_column] = False
        self._not_self = not_self
        self._contacts = rows > 0 and columns > 1
        # Which rows of the mover block receive contact forces.
        self._contact_rows = self._moving_colliders
        self._contact_rows_are_prefix = bool(
            rows == self.num_movers and torch.equal(self._moving_colliders.cpu(), torch.arange(rows))
        )

    def contact_forces(self) -> torch.Tensor:
        """``(B, M, 2)`` summed contact force on each moving collider, ``M`` as in the docstring."""
        mine = self.position[:, self._moving_colliders]  # (B, M, 2)
        theirs = self.position[:, self._colliders]  # (B, C, 2)
        offset = mine[:, :, None, :] - theirs[:, None, :, :]  # (B, M, C, 2)
        distance = offset.square().sum(-1).sqrt().clamp_min(1e-12)  # (B, M, C)
        margin = self.contact_margin
        penetration = F.softplus((self._pair_radii - distance) / margin) * margin
        magnitude = torch.where(self._not_self, self.contact_force * penetration / distance, 0.0)
        return (offset * magnitude[..., None]).sum(2)

    def step(self, controls: torch.Tensor) -> None:
        """Advances every copy by ``dt``.

        Args:
            controls: ``(B, num_agents, 2)`` forces on the agents (action times acceleration).
        """
        movers = self.num_movers
        force = controls
        if movers > self.num_agents:
            force = torch.cat([controls, controls.new_zeros(self.num_envs, movers - self.num_agents, 2)], dim=1)
        if self._contacts:
            contact = self.contact_forces()
            if self._contact_rows_are_prefix:
                force = force + contact
            else:
                force = force.index_add(1, self._contact_rows, contact)
        position = self.position[:, :movers]
        velocity = self.velocity[:, :movers]
        position = position + velocity * self.dt
        velocity = velocity * (1.0 - self.damping) + force / self.masses[:movers, None] * self.dt
        if self.limited:
            speed = velocity.square().sum(-1, keepdim=True).sqrt()
            limit = self.max_speeds[:movers, None]
            velocity = torch.where(speed > limit, velocity / speed * limit, velocity)
        if movers == self.num_entities:
            self.position, self.velocity = position, velocity
        else:
            self.position = torch.cat([position, self.position[:, movers:]], dim=1)
            self.velocity = torch.cat([velocity, self.velocity[:, movers:]], dim=1)

    def distances(self, first: slice | torch.Tensor, second: slice | torch.Tensor) -> torch.Tensor:
        """``(B, |first|, |second|)`` distances between two groups of entities."""
        offset = self.position[:, first, None, :] - self.position[:, None, second, :]
        return offset.square().sum(-1).sqrt()

    def overlapping(self, first: slice | torch.Tensor, second: slice | torch.Tensor) -> torch.Tensor:
        """``(B, |first|, |second|)`` bool: closer than the sum of radii (mpe2's ``is_collision``)."""
        radii = self.sizes[first][:, None] + self.sizes[second][None, :]
        return self.distances(first, second) < radii

    def reset_entities(self, mask: torch.Tensor, position: torch.Tensor, first: int = 0) -> None:
        """Places entities ``first : first + k`` of the copies in ``mask`` at ``position`` (``(B, k, 2)``), at rest."""
        count = position.shape[1]
        keep = ~mask[:, None, None]
        block = slice(first, first + count)
        new_position = torch.where(keep, self.position[:, block], position)
        new_velocity = torch.where(keep, self.velocity[:, block], torch.zeros_like(position))
        self.position = torch.cat([self.position[:, :first], new_position, self.position[:, first + count :]], dim=1)
        self.velocity = torch.cat([self.velocity[:, :first], new_velocity, self.velocity[:, first + count :]], dim=1)


class ParticleGame(MarkovGame):
    """A Markov game on a ``ParticleWorld`` with MPE's action semantics.

    Discrete actions are ``Discrete(5)``: no-op, left, right, down, up, each a unit force
    along an axis. Continuous actions are ``Box(0, 1, (5,))``, read as mpe2 reads them:
    force ``(a[2] - a[1], a[4] - a[3])``. Either force is multiplied by the agent's
    acceleration (mpe2's ``accel``, 5.0 when an agent sets none).

    Subclasses build ``self.world`` and set ``self.accelerations`` ``(N,)``; for rendering
    they also set ``self.colors`` (``E`` RGB triples in [0, 1]).
    """

    world: ParticleWorld
    accelerations: torch.Tensor
    colors: list[tuple[float, float, float]]

    def __init__(self, possible_agents: Sequence[AgentID], observation_sizes, **kwargs) -> None:
        super().__init__(possible_agents, observation_sizes, dict.fromkeys(possible_agents, 5), **kwargs)
        self._moves = torch.tensor(MOVES, dtype=self.dtype, device=self.device)

    def controls(self, actions: torch.Tensor) -> torch.Tensor:
        """``(B, N, 2)`` forces from stacked actions (``(B, N)`` indices or ``(B, N, 5)``)."""
        if self.continuous:
            direction = torch.stack([actions[..., 2] - actions[..., 1], actions[..., 4] - actions[..., 3]], dim=-1)
        else:
            direction = self._moves[actions]
        return direction * self.accelerations[:, None]

    def _advance(self, actions: torch.Tensor) -> None:
        self.world.step(self.controls(actions))

    def entity_sizes(self) -> list[float]:
        """Radii of the entities, for rendering."""
        return self.world.sizes.tolist()


def others_index(count: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Index pair selecting, for each of ``count`` entities, all the others in order.

    ``values[:, rows, columns]`` turns a ``(B, count, count, ...)`` pairwise tensor into
    ``(B, count, count - 1, ...)`` with entity ``i``'s own entry left out.
    """
    rows = torch.arange(count, device=device)[:, None].expand(count, max(count - 1, 0))
    columns = torch.tensor(
        [[j for j in range(count) if j != i] for i in range(count)], dtype=torch.long, device=device
    ).reshape(count, max(count - 1, 0))
    return rows, columns
