"""The CBF safety filter (marl/cbf.py): its QP against an exact solver (cvxpy with Clarabel) on
random instances, batched against one at a time, its constraints against the barrier's derivative,
and the filter keeping scripted agents apart in the navigation world."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import scenarios
from marl.cbf import CBFFilter, barrier_rows, scripted_cbf_policy, solve_qp
from marl.errors import TrainingError

cvxpy = pytest.importorskip("cvxpy")


def _reference(nominal, matrix, bound, low, high, weight):
    """The filter's QP solved by cvxpy, ``(u, d)`` for each problem: the closest command in the box that
    meets every constraint when one exists, else the QP with the slack penalized by ``weight``."""
    solutions = []
    for s in range(nominal.shape[0]):
        u, d = cvxpy.Variable(2), cvxpy.Variable()
        rows = [k for k in range(matrix.shape[1]) if math.isfinite(float(bound[s, k]))]
        box = [u >= low, u <= high]
        barrier = (lambda slack: [matrix[s, rows].numpy() @ u + slack >= bound[s, rows].numpy()]) if rows else (
            lambda slack: [])
        distance = 0.5 * cvxpy.sum_squares(u - nominal[s].numpy())
        hard = cvxpy.Problem(cvxpy.Minimize(distance), box + barrier(0.0))
        hard.solve(solver=cvxpy.CLARABEL)
        if hard.status == cvxpy.OPTIMAL:
            solutions.append((u.value, 0.0))
            continue
        soft = cvxpy.Problem(cvxpy.Minimize(distance + 0.5 * weight * d**2), box + barrier(d) + [d >= 0])
        soft.solve(solver=cvxpy.CLARABEL)
        solutions.append((u.value, float(d.value)))
    return solutions


def _instances(seed, problems, rows, cbf_like):
    generator = torch.Generator().manual_seed(seed)
    nominal = torch.randn(problems, 2, generator=generator, dtype=torch.float64) * 2
    if cbf_like:  # rows of agents around the origin: 2 dp . u >= b
        offset = torch.randn(problems, rows, 2, generator=generator, dtype=torch.float64) * 0.4
        velocity = torch.randn(problems, rows, 2, generator=generator, dtype=torch.float64)
        reach = torch.full((problems, rows), 0.15, dtype=torch.float64)
        responsibility = torch.where(torch.rand(problems, rows, generator=generator) < 0.5, 0.5, 1.0).double()
        matrix, bound = barrier_rows(offset, velocity, reach, responsibility, 3.0, "double", 2.5)
    else:
        matrix = torch.randn(problems, rows, 2, generator=generator, dtype=torch.float64)
        bound = torch.randn(problems, rows, generator=generator, dtype=torch.float64)
    absent = torch.rand(problems, rows, generator=generator) < 0.2
    return nominal, matrix.masked_fill(absent[..., None], 0.0), bound.masked_fill(absent, -math.inf)


@pytest.mark.parametrize("cbf_like", [True, False])
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_the_filter_qp_equals_an_exact_solver(rows, cbf_like):
    nominal, matrix, bound = _instances(rows, 60, rows, cbf_like)
    u, slack = solve_qp(nominal, matrix, bound, -1.5, 1.5, slack_weight=100.0)
    for s, (expected_u, expected_d) in enumerate(_reference(nominal, matrix, bound, -1.5, 1.5, 100.0)):
        np.testing.assert_allclose(u[s].numpy(), expected_u, atol=1e-5)
        assert float(slack[s]) == pytest.approx(expected_d, abs=1e-4)  # Clarabel leaves slacks of about 1e-5


def test_the_filtered_command_satisfies_every_constraint_the_qp_can_satisfy():
    nominal, matrix, bound = _instances(7, 200, 6, True)
    u, slack = solve_qp(nominal, matrix, bound, -0.5, 0.5, slack_weight=1e4)
    reference = _reference(nominal, matrix, bound, -0.5, 0.5, 1e4)
    feasible = torch.tensor([d == 0.0 for _, d in reference])  # cvxpy found the constraints satisfiable
    assert 20 < int(feasible.sum()) < 200  # both kinds of instance are drawn
    residual = (matrix * u[:, None]).sum(-1) - bound  # >= 0 where satisfied; -inf rows are absent
    assert bool((residual[feasible] >= -1e-8).all())
    assert bool((slack[feasible] < 1e-8).all())
    assert bool(((u >= -0.5) & (u <= 0.5)).all())
    assert bool((slack[~feasible] > 0).all())


def test_batched_solutions_equal_one_at_a_time():
    nominal, matrix, bound = _instances(3, 40, 5, True)
    together, _ = solve_qp(nominal, matrix, bound, -2.0, 2.0)
    for s in range(40):
        alone, _ = solve_qp(nominal[s:s + 1], matrix[s:s + 1], bound[s:s + 1], -2.0, 2.0)
        torch.testing.assert_close(alone[0], together[s])


def test_single_integrator_rows_are_the_barrier_derivative():
    """``2 dp . u >= -alpha h`` is ``dh/dt + alpha h >= 0`` for ``h = |dp|^2 - R^2`` with the other standing still."""
    generator = torch.Generator().manual_seed(0)
    offset = torch.randn(5, 1, 2, generator=generator, dtype=torch.float64)
    u = torch.randn(5, 2, generator=generator, dtype=torch.float64)
    matrix, bound = barrier_rows(offset, torch.zeros_like(offset), torch.full((5, 1), 0.3, dtype=torch.float64),
                                 torch.ones(5, 1, dtype=torch.float64), 2.0, "single")
    step = 1e-6
    h = lambda p: p.square().sum(-1) - 0.09  # noqa: E731
    derivative = (h(offset[:, 0] + step * u) - h(offset[:, 0] - step * u)) / (2 * step)
    torch.testing.assert_close((matrix[:, 0] * u).sum(-1) - bound[:, 0], derivative + 2.0 * h(offset[:, 0]))


def test_the_filter_keeps_goal_seeking_agents_apart():
    """Goal-seeking agents collide (about 1.8 times per agent per episode at N = 8); filtered at alpha = 10
    they do not, not once, and nearly all still reach their goals (the detour frees the ones held still)."""
    from scenarios.navigation import episode_metrics, goal_seeking_policy

    game = scenarios.make("navigation", num_envs=16, seed=0, num_agents=8)
    unfiltered = episode_metrics(goal_seeking_policy, game, 1)
    filtered = episode_metrics(scripted_cbf_policy(CBFFilter(alpha=10.0)), game, 1)
    assert unfiltered["collisions_per_agent"] > 1.0
    assert filtered["collisions_per_agent"] == 0.0 and filtered["safe_rate"] == 1.0
    assert filtered["finish_rate"] > 0.9


def test_online_gains_map_actions_to_the_fixed_gain_filters():
    """A ``beta`` action u plays the filter at gain ``u alpha`` and a ``lognormal`` action a at ``alpha exp(a)``:
    u = 1 and a = 0 are the fixed gain alpha, and u = 1/2 is a = log(1/2), agent by agent."""
    from marl.cbf import OnlineCBF, force_to_actions, nominal_forces

    game = scenarios.make("navigation", num_envs=6, seed=0, num_agents=8)
    observations, _ = game.reset(seed=3)
    policy = scripted_cbf_policy(CBFFilter(alpha=10.0))
    for _ in range(12):  # into the crowd, where the filter has rows to meet
        observations = game.step(policy(game, observations))[0]
    shape = (6, 8, 1)
    fixed = torch.stack(list(policy(game, observations).values()), 1)
    beta, lognormal = OnlineCBF(CBFFilter(alpha=10.0), "beta"), OnlineCBF(CBFFilter(alpha=10.0))
    torch.testing.assert_close(beta(game, torch.ones(shape)), fixed)
    torch.testing.assert_close(lognormal(game, torch.zeros(shape)), fixed)
    fractions = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.1
    torch.testing.assert_close(beta(game, fractions), lognormal(game, fractions.log()))
    half = force_to_actions(CBFFilter(alpha=5.0).commands(game, nominal_forces(game)), game.config.acceleration)
    torch.testing.assert_close(beta(game, torch.full(shape, 0.5)), half)
    assert not torch.allclose(half, fixed)  # gain 5 is not gain 10 here
    with pytest.raises(TrainingError, match="the online gain is one of lognormal, beta"):
        OnlineCBF(CBFFilter(), "gaussian")


@pytest.mark.parametrize("settings, message", [
    ({"margin": -0.1}, "margin must be >= 0"),
    ({"neighbours": 0}, r"neighbours \(k\) must be an integer in 1..16"),
    ({"alpha": 0.0}, "alpha must be > 0"),
    ({"dynamics": "triple"}, "dynamics must be one of single, double"),
    ({"barrier": "wall"}, "barrier must be one of braking, hocbf"),
    ({"detour": math.inf}, "detour must be a finite number"),
    ({"share": 0.0}, r"share must be in \(0, 1\]"),
    ({"pairs": "all"}, "pairs must be one of shared, yield, parked, obstacles, parked_only"),
])
def test_infeasible_filter_settings_are_refused(settings, message):
    with pytest.raises(TrainingError, match=message):
        CBFFilter(**settings)


def test_braking_rows_are_the_discrete_barrier_condition():
    """For an obstacle (``rho = 1``), ``A u - b`` is ``(h' - (1 - gamma) h) / dt`` with ``h'`` the barrier one
    explicit-Euler step of the particle engine later (position by this step's velocity, then damped velocity
    plus ``u dt``)."""
    from marl.cbf import braking_rows

    generator = torch.Generator().manual_seed(1)
    offset = torch.randn(50, 1, 2, generator=generator, dtype=torch.float64) * 0.5
    velocity = torch.randn(50, 1, 2, generator=generator, dtype=torch.float64)
    u = torch.randn(50, 2, generator=generator, dtype=torch.float64) * 3
    reach, acceleration, dt, damping, alpha = 0.2, 3.0, 0.1, 0.25, 4.0
    matrix, bound = braking_rows(offset, velocity, torch.full((50, 1), reach, dtype=torch.float64),
                                 torch.ones(50, 1, dtype=torch.float64), alpha, acceleration, dt, damping)

    def barrier(dp, dv):
        distance = dp.norm(dim=-1)
        room = (2 * acceleration * (distance - reach).clamp_min(0)).sqrt() - acceleration * dt / 2
        return room + (dp * dv).sum(-1) / distance

    now = barrier(offset[:, 0], velocity[:, 0])
    later = barrier(offset[:, 0] + dt * velocity[:, 0], (1 - damping) * velocity[:, 0] + dt * u)
    residual = (matrix[:, 0] * u).sum(-1) - bound[:, 0]
    torch.testing.assert_close(residual, (later - (1 - alpha * dt) * now) / dt)


@settings(max_examples=200, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-2.0, 2.0), st.floats(-2.0, 2.0),
       st.floats(-8.0, 8.0), st.floats(-8.0, 8.0), st.sampled_from([0.5, 4.0, 20.0]))
def test_a_command_meeting_the_lookahead_row_meets_the_discrete_barrier(px, py, vx, vy, ux, uy, alpha):
    """The linearized row is sufficient: a command that meets it keeps ``h = |dp| - D`` at the position it first
    moves (two engine steps on) at least ``(1 - gamma)`` times ``h`` one step on, for an obstacle (``rho = 1``)."""
    from marl.cbf import lookahead_rows

    offset, velocity = torch.tensor([[[px, py]]], dtype=torch.float64), torch.tensor([[[vx, vy]]], dtype=torch.float64)
    u = torch.tensor([[ux, uy]], dtype=torch.float64)
    reach, dt, damping = 0.1, 0.1, 0.25
    matrix, bound = lookahead_rows(offset, velocity, torch.full((1, 1), reach, dtype=torch.float64),
                                   torch.ones(1, 1, dtype=torch.float64), alpha, dt, damping)
    after = offset[0, 0] + dt * velocity[0, 0]
    later = after + dt * ((1 - damping) * velocity[0, 0] + dt * u[0])  # the engine: position by the old velocity
    if float((matrix[0, 0] * u[0]).sum() - bound[0, 0]) >= 0:
        gamma = min(alpha * dt, 1.0)
        assert float(later.norm()) - reach >= (1 - gamma) * (float(after.norm()) - reach) - 1e-9


def test_lookahead_rows_predict_the_engine():
    """With no command, the row's coasting prediction (its normal, and with ``gamma = 1`` its bound
    ``(D - |c|) / dt^2``) is where the engine puts an agent two steps on."""
    from marl.cbf import lookahead_rows

    game = scenarios.make("navigation", num_envs=1, seed=0, dtype=torch.float64, num_agents=1, num_obstacles=1,
                          max_speed=5.0)
    game.reset(seed=0)
    game.world.reset_entities(torch.ones(1, dtype=torch.bool),
                              torch.tensor([[-0.6, 0.1], [0.0, 0.0], [0.6, 0.0]], dtype=torch.float64)[..., None])
    game.world.vel[0, :, 0] = torch.tensor([0.8, -0.3], dtype=torch.float64)
    entities = game.entities()
    offset = entities["agent_position"][:, :, None] - entities["obstacle_position"][:, None]  # (1, 1, 1, 2)
    velocity = entities["agent_velocity"][:, :, None]
    normal, bound = lookahead_rows(offset, velocity, torch.full((1, 1, 1), 0.15, dtype=torch.float64),
                               torch.ones(1, 1, 1, dtype=torch.float64), 10.0, game.world.dt, game.world.damping)
    for _ in range(2):
        game.step({"agent_0": torch.zeros(1, 5, dtype=torch.float64)})
    moved = game.entities()["agent_position"][0, 0] - entities["obstacle_position"][0, 0]
    torch.testing.assert_close(normal[0, 0, 0], moved / moved.norm())
    torch.testing.assert_close(moved.norm(), 0.15 - bound[0, 0, 0] * game.world.dt ** 2)


@pytest.mark.parametrize("braking, reach", [(6.0, 0.15), (3.0, 0.2), (1.0, 0.05)])
def test_a_pair_first_seen_at_the_sensing_speed_stops_in_time(braking, reach):
    """Closing at ``sensing_speed`` from first sight (``R - sigma dt``) and braking at ``a`` every step, the pair
    stays ``reach`` apart; a fifth faster, it does not (the limit is tight)."""
    from marl.cbf import sensing_speed

    radius, dt = 0.5, 0.1
    limit = sensing_speed(radius, reach, braking, dt)

    def closest(speed: float) -> float:
        distance = radius - speed * dt
        while speed > 0:
            distance -= speed * dt  # explicit Euler: this step's velocity moves, then the brake acts
            speed -= braking * dt
        return distance

    assert closest(limit) >= reach - 1e-9
    assert closest(1.2 * limit) < reach
    with pytest.raises(TrainingError, match="sensing radius"):
        sensing_speed(0.1, 0.15, braking, dt)


@given(st.floats(-math.pi, math.pi), st.floats(0.0, 1.0), st.floats(-3.0, 3.0), st.floats(-3.0, 3.0))
@settings(max_examples=200, deadline=None)
def test_speed_rows_keep_the_next_velocity_under_the_limit(heading, share, push_x, push_y):
    """Any velocity within the limit, any command in the box: the filtered next velocity stays within it."""
    from marl.cbf import speed_rows

    limit, dt, damping = 0.669, 0.1, 0.25
    velocity = share * limit * torch.tensor([[math.cos(heading), math.sin(heading)]], dtype=torch.float64)
    matrix, bound = speed_rows(velocity, limit, dt, damping)
    u, slack = solve_qp(torch.tensor([[push_x, push_y]], dtype=torch.float64), matrix, bound, -3.0, 3.0)
    assert float(slack[0]) == 0.0
    assert float(((1 - damping) * velocity + dt * u).norm()) <= limit + 1e-9


def test_the_detour_frees_agents_the_filter_holds_behind_an_obstacle():
    """An agent whose goal lies straight behind an obstacle stops at its barrier for good; turning its held
    nominal command takes it around and home, without a collision either way."""
    from scenarios.navigation import episode_metrics

    def stuck_world():
        game = scenarios.make("navigation", num_envs=1, seed=0, dtype=torch.float64, num_agents=1, num_obstacles=1,
                              max_cycles=150)
        game.reset(seed=0)
        game.world.reset_entities(torch.ones(1, dtype=torch.bool),
                                  torch.tensor([[-0.6, 0.0], [0.0, 0.0], [0.6, 0.0]], dtype=torch.float64)[..., None])
        return game

    def play(detour):
        game, policy = stuck_world(), scripted_cbf_policy(CBFFilter(alpha=10.0, detour=detour))
        observations = game._observations()
        for _ in range(150):
            observations, _, terminated, *_ = game.step(policy(game, observations))
            if bool(terminated["agent_0"][0]):
                return True
        return False

    assert not play(0.0)
    assert play(90.0)
    game = stuck_world()
    assert episode_metrics(scripted_cbf_policy(CBFFilter(alpha=10.0)), game, 0)["episodes"] == 1


def _moving_informarl_world(count: int, copies: int, seed: int):
    """InforMARL's task a few random moves in (agents moving), and a random move per agent."""
    game = scenarios.make("navigation", num_envs=copies, seed=seed, dtype=torch.float64, preset="informarl",
                          num_agents=count)
    game.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(4):
        game.step({agent: torch.randint(0, 5, (copies,), generator=generator) for agent in game.possible_agents})
    return game, torch.randint(0, 5, (copies, count), generator=generator)


@pytest.mark.parametrize("seed, barrier", [(0, "braking"), (1, "braking"), (2, "lookahead"), (3, "lookahead")])
def test_filtered_moves_meet_every_row_that_some_move_meets(seed, barrier):
    """Of the five moves, the filter keeps one that meets every row, and otherwise takes the one most along it
    among those that do, or, where none does, the one of least squared violation."""
    from games.particle import MOVES

    game, moves = _moving_informarl_world(7, 64, seed)
    cbf = CBFFilter(alpha=10.0, barrier=barrier)
    safe = cbf.filter_moves(game, moves)
    matrix, bound = cbf.constraints(game, 10.0)
    forces = torch.tensor(MOVES, dtype=torch.float64) * game.config.acceleration
    if barrier == "lookahead":  # a move's exact gain in distance two steps on, in place of n . u
        coasting, step = _coasting(game, cbf), game.world.dt ** 2
        slack = torch.stack([((coasting + step * force).norm(dim=-1) - coasting.norm(dim=-1)) / step - bound
                             for force in forces], 2)
    else:
        slack = torch.stack([(matrix * force).sum(-1) - bound for force in forces], 2)  # (B, N, 5, R)
    meets = (slack >= -1e-6 * (1 + bound.abs().nan_to_num(posinf=0.0))[:, :, None]).all(-1)
    violation = slack.clamp(max=0.0).nan_to_num(neginf=0.0).square().sum(-1)
    along = forces[moves] @ forces.T  # (B, N, 5)
    picked = lambda values: values.gather(-1, safe[..., None])[..., 0]  # noqa: E731
    kept = meets.gather(-1, moves[..., None])[..., 0]
    assert torch.equal(safe[kept], moves[kept])
    assert bool(picked(meets)[meets.any(-1)].all())
    assert bool((picked(along) >= torch.where(meets, along, -math.inf).amax(-1))[meets.any(-1)].all())
    none = ~meets.any(-1)
    assert torch.equal(picked(violation)[none], violation.amin(-1)[none])
    assert bool((safe != moves).any()), "the instances should make the filter act"


def _coasting(game, cbf):
    """``(B, N, k, 2)`` the offset of each agent from its ``k`` nearest two steps on with no command, from the
    engine's state: the rows' order is the filter's (nearest first)."""
    count, obstacles = game.config.num_agents, game.config.num_obstacles
    position = game.world.pos[: count + obstacles].permute(2, 0, 1)  # (B, N + O, 2)
    velocity = game.world.vel[: count + obstacles].permute(2, 0, 1)
    offset = position[:, :count, None] - position[:, None]  # (B, N, N + O, 2)
    distance = offset.norm(dim=-1).masked_fill(torch.eye(count, count + obstacles, dtype=torch.bool), math.inf)
    index = distance.topk(min(cbf.neighbours, count - 1 + obstacles), dim=-1, largest=False).indices
    relative = velocity[:, :count, None] - velocity[:, None]
    dt, damping = game.world.dt, game.world.damping
    pick = lambda values: values.gather(2, index[..., None].expand(-1, -1, -1, 2))  # noqa: E731
    return pick(offset) + dt * (2 - damping) * pick(relative)


@settings(max_examples=100, deadline=None)
@given(st.floats(-0.4, 0.4), st.floats(-0.4, 0.4), st.floats(-2.0, 2.0), st.floats(-2.0, 2.0),
       st.sampled_from([2.0, 10.0]))
@example(0.25, 0.25, -1.0, -1.0, 2.0)  # no move meets it, and two tie for the least violation
def test_the_lookahead_move_check_is_the_discrete_barrier_in_the_engine(px, py, vx, vy, alpha):
    """With the lookahead barrier a move stands against an obstacle exactly when, played in the engine (then no
    move), it keeps ``h = |dp| - D`` two steps on at least ``(1 - gamma)`` times ``h`` one step on: the check is
    the discrete barrier condition itself, neither looser nor (as the row's tangent half-plane is) stricter.
    Where no move meets it, the least violating one stands."""
    from hypothesis import assume

    def world():
        game = scenarios.make("navigation", num_envs=5, seed=0, dtype=torch.float64, preset="informarl",
                              num_agents=1, num_obstacles=1, max_speed=5.0)
        game.reset(seed=0)
        places = torch.tensor([[px, py], [0.0, 0.0], [0.9, 0.9]], dtype=torch.float64)[..., None].expand(-1, -1, 5)
        game.world.reset_entities(torch.ones(5, dtype=torch.bool), places.clone())
        game.world.vel[0] = torch.tensor([vx, vy], dtype=torch.float64)[:, None]
        return game

    reach, gamma = 0.1, min(alpha * 0.1, 1.0)
    assume(math.hypot(px, py) > reach + 0.01)
    game = world()
    every = torch.arange(5)[:, None]  # copy m plays move m
    kept = CBFFilter(alpha=alpha, margin=0.0, barrier="lookahead").filter_moves(game, every)[:, 0] == every[:, 0]
    game.step({"agent_0": every[:, 0]})
    first = game.entities()["agent_position"][:, 0].norm(dim=-1)
    assume(bool((first > reach + 0.01).all()))  # no contact force on the way
    game.step({"agent_0": torch.zeros(5, dtype=torch.long)})
    second = game.entities()["agent_position"][:, 0].norm(dim=-1)
    margin = (second - reach) - (1 - gamma) * (first - reach)  # (5,) the barrier condition, move by move
    assume(bool((margin.abs() > 1e-6).all()))
    if bool((margin > 0).any()):
        assert torch.equal(kept, margin > 0), (kept, margin)
    else:  # no move meets it: each is replaced by one of least violation, which alone stands
        assert int(kept.sum()) == 1 and torch.isclose(margin[kept][0], margin.max()), (kept, margin)


@pytest.mark.parametrize("parked", [True, False])
def test_pairs_decide_who_takes_on_an_agent_pair(parked):
    """Two agents closing on each other. The first parked at its goal: with ``shared`` each takes half of the
    pair's row, with ``yield`` and ``parked`` the parked one takes all of it and the other none (no row).
    Both travelling: ``yield`` shares the pair and ``parked`` leaves it. With ``obstacles`` neither has a row;
    the far obstacle's row is the same throughout, but with ``parked_only``, which leaves a parked agent the
    pair as ``parked`` does, a travelling agent has no row at all."""
    game = scenarios.make("navigation", num_envs=1, seed=0, dtype=torch.float64, preset="informarl", num_agents=2,
                          num_obstacles=1)
    game.reset(seed=0)
    goal = [0.0, 0.0] if parked else [0.0, -0.5]
    places = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.0, 0.8], goal, [-0.9, -0.9]], dtype=torch.float64)
    game.world.reset_entities(torch.ones(1, dtype=torch.bool), places[..., None])
    game.world.vel[1, 0, 0] = -1.5  # the second agent heads at the first
    rows = {pairs: CBFFilter(alpha=10.0, margin=0.0, barrier="lookahead", pairs=pairs).constraints(game, 10.0)[1][0]
            for pairs in ("shared", "yield", "parked", "obstacles", "parked_only")}  # (N, k): the agent's row is 0
    shared, alone = rows["shared"], rows["obstacles"]
    assert bool(torch.isfinite(shared[:, 0]).all()) and bool((alone[:, 0] == -math.inf).all())
    if parked:
        for other in (rows["yield"], rows["parked"], rows["parked_only"]):
            torch.testing.assert_close(other[0, 0], 2 * shared[0, 0])
            assert other[1, 0] == -math.inf
    else:
        torch.testing.assert_close(rows["yield"][:, 0], shared[:, 0])
        assert bool((rows["parked"][:, 0] == -math.inf).all())
        assert bool((rows["parked_only"][:, 0] == -math.inf).all())
    assert bool(torch.isfinite(shared[:, 1]).all())
    only = rows.pop("parked_only")
    for other in rows.values():
        torch.testing.assert_close(other[:, 1], shared[:, 1])
    if parked:
        torch.testing.assert_close(only[0, 1], shared[0, 1])
    travelling = only[1:, 1] if parked else only[:, 1]
    assert bool((travelling == -math.inf).all())
    safe = CBFFilter(alpha=10.0, margin=0.0, barrier="lookahead", pairs="obstacles").filter_moves(
        game, torch.tensor([[0, 1]]))
    assert torch.equal(safe, torch.tensor([[0, 1]])), "with obstacles only, the agents' own moves stand"


@pytest.mark.parametrize("barrier", ["braking", "lookahead"])
def test_with_parked_only_travelling_agents_keep_their_moves_and_parked_ones_meet_their_rows(barrier):
    """``pairs="parked_only"``: an agent still travelling plays its own move, whatever is near it; one parked at
    its goal plays a move that meets every row some move meets (as with the other settings)."""
    from games.particle import MOVES

    game, moves = _moving_informarl_world(6, 64, 5)
    goals = game.entities()["goal_position"]
    positions = game.world.pos.clone()
    parked = torch.rand(64, 6, generator=torch.Generator().manual_seed(5)) < 0.5
    positions[:6] = torch.where(parked.T[:, None], goals.permute(1, 2, 0), positions[:6])  # park half the agents
    game.world.pos.copy_(positions)
    cbf = CBFFilter(alpha=10.0, margin=0.06, barrier=barrier, pairs="parked_only")
    assert torch.equal(game.goal_distance() <= game.config.goal_radius, parked)
    filtered = cbf.filter_moves(game, moves)
    assert torch.equal(filtered[~parked], moves[~parked])
    matrix, bound = cbf.constraints(game, 10.0)
    assert bool((bound[~parked] == -math.inf).all())
    assert bool(torch.isfinite(bound[parked]).any())
    if barrier == "braking":  # rows met by the kept move wherever some move meets them all
        forces = torch.tensor(MOVES, dtype=matrix.dtype) * game.config.acceleration
        meets = (torch.einsum("bnrd,md->bnmr", matrix, forces) >= bound[:, :, None] - 1e-6).all(-1)  # (B, N, 5)
        some = meets.any(-1) & parked
        assert bool(meets.gather(-1, filtered[..., None])[..., 0][some].all())
    # Continuous commands: a travelling agent's command passes unchanged.
    nominal = torch.randn(64, 6, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    commands = cbf.commands(game, nominal)
    torch.testing.assert_close(commands[~parked], nominal[~parked].clamp(-game.config.acceleration,
                                                                         game.config.acceleration))


def test_filtered_moves_batched_equal_one_at_a_time():
    game, moves = _moving_informarl_world(5, 12, 3)
    cbf = CBFFilter(alpha=5.0)
    together = cbf.filter_moves(game, moves)
    alone = scenarios.make("navigation", num_envs=1, seed=0, dtype=torch.float64, preset="informarl", num_agents=5)
    for copy in range(12):
        alone.world.pos.copy_(game.world.pos[..., copy:copy + 1])
        alone.world.vel.copy_(game.world.vel[..., copy:copy + 1])
        assert torch.equal(cbf.filter_moves(alone, moves[copy:copy + 1])[0], together[copy])


def test_the_move_filter_keeps_goal_seekers_on_informarls_task_apart():
    """On InforMARL's task with 7 agents the goal seeker overlaps about 0.8 times per agent per episode;
    its moves filtered at alpha = 10 nearly never do, and most agents still reach their goals in 25 steps."""
    from scenarios.navigation import episode_metrics, goal_seeking_policy

    game = scenarios.make("navigation", num_envs=32, seed=0, preset="informarl", num_agents=7)
    unfiltered = episode_metrics(goal_seeking_policy, game, 1)
    filtered = episode_metrics(scripted_cbf_policy(CBFFilter(alpha=10.0)), game, 1)
    assert unfiltered["collisions_per_agent"] > 0.5
    assert filtered["collisions_per_agent"] < 0.05 and filtered["finish_rate"] > 0.6
