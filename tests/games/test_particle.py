"""The batched particle engine against the physics it claims (mpe2's ``World.step``).

The contact forces of the vectorized engine equal a direct pair-by-pair loop written as
mpe2 writes it, on random worlds (hypothesis); coasting, speed limits and momentum behave
as the integration rule says.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.particle import ParticleWorld


def _loop_step(position, velocity, controls, sizes, movable, collide, max_speeds, num_agents):
    """One step of mpe2's World.step, pair by pair, in float64 numpy."""
    count = len(sizes)
    force = [np.zeros(2) if i >= num_agents else controls[i].copy() for i in range(count)]
    for a in range(count):
        for b in range(a + 1, count):
            if not (collide[a] and collide[b]):
                continue
            delta = position[a] - position[b]
            distance = math.sqrt(float(np.sum(delta**2)))
            penetration = np.logaddexp(0, -(distance - sizes[a] - sizes[b]) / 1e-3) * 1e-3
            push = 100.0 * delta / distance * penetration
            if movable[a]:
                force[a] = force[a] + push
            if movable[b]:
                force[b] = force[b] - push
    position, velocity = position.copy(), velocity.copy()
    for i in range(count):
        if not movable[i]:
            continue
        position[i] += velocity[i] * 0.1
        velocity[i] = velocity[i] * 0.75 + force[i] * 0.1
        speed = math.sqrt(float(np.sum(velocity[i] ** 2)))
        if max_speeds[i] is not None and speed > max_speeds[i]:
            velocity[i] = velocity[i] / speed * max_speeds[i]
    return position, velocity


@st.composite
def worlds(draw):
    agents = draw(st.integers(1, 5))
    landmarks = draw(st.integers(0, 4))
    count = agents + landmarks
    sizes = draw(st.lists(st.floats(0.02, 0.3), min_size=count, max_size=count))
    collide = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    speeds = draw(st.lists(st.one_of(st.none(), st.floats(0.2, 2.0)), min_size=agents, max_size=agents))
    coords = st.floats(-0.6, 0.6, allow_nan=False)
    position = np.array(draw(st.lists(st.tuples(coords, coords), min_size=count, max_size=count)))
    velocity = np.array(draw(st.lists(st.tuples(coords, coords), min_size=count, max_size=count)))
    velocity[agents:] = 0.0
    controls = np.array(draw(st.lists(st.tuples(coords, coords), min_size=agents, max_size=agents))) * 5
    return agents, sizes, collide, speeds + [None] * landmarks, position, velocity, controls


@settings(max_examples=60, deadline=None)
@given(worlds())
def test_vectorized_step_equals_mpe2s_pair_by_pair_loop(world):
    agents, sizes, collide, speeds, position, velocity, controls = world
    count = len(sizes)
    if count > 1:  # mpe2 divides by zero for coincident colliders; keep points apart
        gaps = np.linalg.norm(position[:, None] - position[None], axis=-1) + np.eye(count)
        if gaps.min() < 1e-6:
            return
    movable = [True] * agents + [False] * (count - agents)
    engine = ParticleWorld(1, agents, sizes, movable, collide, max_speeds=speeds, dtype=torch.float64)
    engine.position = torch.tensor(position)[None]
    engine.velocity = torch.tensor(velocity)[None]
    engine.step(torch.tensor(controls)[:, :, None])  # (N, 2, B) batch-last
    expected_position, expected_velocity = _loop_step(
        position, velocity, controls, sizes, movable, collide, speeds, agents
    )
    np.testing.assert_allclose(engine.position[0].numpy(), expected_position, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(engine.velocity[0].numpy(), expected_velocity, rtol=1e-9, atol=1e-9)


def test_a_coasting_agent_moves_with_its_old_velocity_and_slows_by_the_damping():
    engine = ParticleWorld(1, 1, [0.1], [True], [True], dtype=torch.float64)
    engine.velocity[0, 0] = torch.tensor([1.0, -2.0])
    for step in range(4):
        before_position, before_velocity = engine.position.clone(), engine.velocity.clone()
        engine.step(torch.zeros(1, 2, 1, dtype=torch.float64))
        torch.testing.assert_close(engine.position, before_position + 0.1 * before_velocity)
        torch.testing.assert_close(engine.velocity, 0.75 * before_velocity)


def test_constant_push_converges_to_the_speed_limit_and_never_exceeds_it():
    engine = ParticleWorld(3, 1, [0.05], [True], [False], max_speeds=[1.3], dtype=torch.float64)
    push = torch.tensor([4.0, 0.0], dtype=torch.float64)[None, :, None].expand(1, 2, 3)
    speeds = []
    for _ in range(40):
        engine.step(push)
        speeds.append(float(engine.velocity.norm(dim=-1).max()))
    assert max(speeds) <= 1.3 + 1e-12
    assert speeds[-1] == 1.3 or math.isclose(speeds[-1], 1.3, rel_tol=1e-12)
    # Without the limit the terminal speed is force * dt / damping = 1.6.
    free = ParticleWorld(1, 1, [0.05], [True], [False], dtype=torch.float64)
    for _ in range(200):
        free.step(push[..., :1])
    assert math.isclose(float(free.velocity.norm()), 1.6, rel_tol=1e-9)


def test_contact_forces_conserve_momentum_and_spare_static_obstacles():
    engine = ParticleWorld(2, 2, [0.15, 0.15, 0.2], [True, True, False], [True, True, True], dtype=torch.float64)
    engine.position = torch.tensor([[[0.0, 0.0], [0.1, 0.05], [3.0, 3.0]], [[0.0, 0.0], [0.1, 0.05], [0.0, 0.25]]],
                                   dtype=torch.float64)
    still = torch.zeros(2, 2, 2, dtype=torch.float64)  # (N, 2, B)
    obstacle = engine.position[:, 2].clone()
    engine.step(still)
    # Copy 0: two agents alone, equal masses: equal and opposite impulses.
    torch.testing.assert_close(engine.velocity[0, :2].sum(0), torch.zeros(2, dtype=torch.float64))
    assert float(engine.velocity[0, 0, 0]) < 0 < float(engine.velocity[0, 1, 0])
    # Copy 1: the obstacle pushes agent 0 down and does not move.
    assert float(engine.velocity[1, 0, 1]) < 0
    torch.testing.assert_close(engine.position[:, 2], obstacle)
    assert float(engine.velocity[:, 2].abs().max()) == 0.0
