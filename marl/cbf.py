"""Decentralized control-barrier-function safety filters, batched, with gains set online.

Ames, Xu, Grizzle and Tabuada, "Control Barrier Function Based Quadratic Programs for Safety
Critical Systems" (IEEE TAC 2017), decentralized as in Wang, Ames and Egerstedt, "Safety
Barrier Certificates for Collisions-Free Multirobot Systems" (IEEE T-RO 2017), and tuned
online as in Gao, Yang and Prorok, "Online Control Barrier Functions for Decentralized
Multi-Agent Navigation" (MRS 2023, arXiv 2303.04313).

For agent ``i`` and each of its ``k`` nearest neighbours or obstacles ``j`` (within the
sensing radius), with ``dp = p_i - p_j``, ``dv = v_i - v_j`` and the barrier
``h = |dp|^2 - (r_i + r_j + margin)^2``, the filter keeps the command ``u_i`` closest to
the nominal one subject to, with responsibility ``rho`` (1/2 between agents, 1 for
obstacles):

- single integrator (``u`` a velocity): ``dh/dt + alpha h >= 0``, decentralized as
  ``2 dp . u_i >= -rho alpha h``;
- double integrator (``u`` an acceleration), ``barrier="hocbf"``: with the particle engine's
  ``v' = u - c v``, ``c = damping / dt``, the high-order CBF
  ``psi_2 = h'' + 2 alpha h' + alpha^2 h >= 0`` (``psi_1 = h' + alpha h``, both with gain
  ``alpha``), decentralized as
  ``2 dp . u_i >= -rho (2 |dv|^2 - 2 c dp . dv + 4 alpha dp . dv + alpha^2 h)``, assuming
  the neighbour's own command carries its share and an obstacle stands still;
- double integrator, ``barrier="braking"`` (the default): Wang, Ames and Egerstedt's braking
  barrier, written for the engine's discrete steps. The pair brakes at ``a = A / rho`` (``A``
  the box on each command). With ``d = |dp|``, ``D = r_i + r_j + margin`` and the closing rate
  ``s = dp . dv / d``, ``h = room(d) + s``, where ``room(d)`` is the closing speed from which
  braking at ``a`` stops within ``d - D`` when each step first moves by the present velocity
  (explicit Euler): ``room(d) = sqrt(2 a (d - D)) - a dt / 2``. (Braking from ``s`` covers at
  most ``s^2 / (2 a) + s dt / 2 + a dt^2 / 8``, and ``s <= room(d)`` holds again one braking
  step later if it holds now.) The position
  after this step, ``dp' = dp + dt dv``, does not depend on the command; the next closing
  rate ``s' = n' . ((1 - damping) dv + dt du)`` does, linearly, with ``n' = dp' / |dp'|``. The
  discrete CBF condition ``h' >= (1 - gamma) h``, ``gamma = min(alpha dt, 1)``, is then one
  linear row per neighbour, ``n' . u_i >= rho ((1 - gamma) h - room(|dp'|) - (1 - damping)
  n' . dv) / dt``, and braking at full keeps ``h >= 0`` once it holds. Damping is left out of
  ``room`` (it only helps braking), and in the row it is exact.

  Beyond the sensing radius ``R`` nothing is known, so each agent also keeps its speed
  under the limit from which a pair first seen at ``R`` can still brake in time
  (:func:`sensing_speed`): three sides of an octagon inside that speed's disk, as linear rows
  on the next velocity (:func:`speed_rows`); navigation's default settings give 0.66, against
  a ``max_speed`` of 1. Each pair's row can then always be met by braking; only where an
  agent's rows cannot all be met at once does the slack enter (:func:`solve_qp`).

- double integrator, ``barrier="lookahead"``: a discrete-time CBF (Agrawal and Sreenath,
  "Discrete Control Barrier Functions for Safety-Critical Control of Discrete Systems with
  Application to Bipedal Robot Navigation", RSS 2017) on the distance itself,
  ``h = |dp| - D``, at the first position this step's command moves: the engine moves each
  step by the velocity before it, so the command moves ``dp`` two steps on, to
  ``dp'' = c + dt^2 du`` with the coasting prediction ``c = dp + dt (2 - damping) dv``.
  The condition ``h(dp'') >= (1 - gamma) h(dp')``, ``dp' = dp + dt dv``, is linearized at
  ``c``: ``|c + x| >= |c| + n . x`` with ``n = c / |c|``, so the row
  ``n . u_i >= rho ((1 - gamma) h(dp') + D - |c|) / dt^2`` is sufficient. It looks one
  step ahead only: it guarantees nothing beyond, keeps no speed limit, and intervenes
  far less than the braking barrier.

Deadlocks: an agent the filter holds almost still while its nominal command points on
(the filter removes over half of it and the agent moves at under a fifth of ``max_speed``)
has its nominal command turned by ``detour`` degrees (90, counter-clockwise, by default)
and filtered again. Agents facing each other around an obstacle then both turn the same
way and pass; the filtered command is still the QP's, so safety is unchanged.

One QP per agent, all agents of all copies at once (:func:`solve_qp`):
``min_u,d |u - u_nom|^2 / 2 + w d^2 / 2`` s.t. ``A u + d >= b``, ``d >= 0``,
``low <= u <= high``, with one slack ``d`` per agent penalized by ``w`` and used only
where the constraints cannot all be met. A single constraint whose solution lies in the
box is solved in closed form; otherwise the QP, a projection in 2 (or, with the slack, 3)
dimensions, is solved exactly by trying every face of its polygon at once (see
:func:`solve_qp`). Everything is whole-batch tensor work on the device, with no iteration
count to tune and no tolerance to trade against speed.

Discrete moves (InforMARL's five MPE actions, :meth:`CBFFilter.filter_moves`): the rows are
the same (the lookahead barrier's checked on the exact distance each move gives); each agent
keeps its move where it meets them all, and otherwise takes the move that does and is most
along its own, then along its velocity (a shield in the sense of Alshiekh et al., "Safe
Reinforcement Learning via Shielding", AAAI 2018).

Who takes on an agent pair (``pairs``): each agent its share ``rho`` (the default); agents
parked at their goals the whole of each pair with an agent still travelling (``yield``:
travelling agents leave those pairs to them; ``parked``: and leave each other alone too); or
no one (``obstacles``: only obstacles constrain). A pair an agent leaves to the other has no
row for it.

Gains: a fixed ``alpha`` (the seed paper's baseline), or ``alpha_i(t)`` per agent and step
from a policy (:class:`OnlineCBF`, trained by ``marl.mappo`` with ``filter=online-cbf``).

Shapes: ``S`` problems (agents of all copies), ``K`` constraints each: ``A (S, K, 2)``,
``b (S, K)``, nominal ``(S, 2)``; the filters work on ``(B, N, 2)`` commands or ``(B, N)`` moves.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from marl.errors import TrainingError

DYNAMICS = ("single", "double")
BARRIERS = ("braking", "hocbf", "lookahead")  # of the double integrator
PAIRS = ("shared", "yield", "parked", "obstacles", "parked_only")  # CBFFilter's ``pairs``: who keeps clear of what
# Bounds of the online gain (``OnlineCBF``): alpha is clamped to [0.1, 50].
ALPHA_RANGE = (0.1, 50.0)
GAINS = ("lognormal", "beta")  # how OnlineCBF reads a policy's action: log alpha, or a fraction of the top gain


def _subsets(rows: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every set of 1 to ``size`` of ``rows`` constraints: ``(C, size)`` indices, ``(C, size)`` bool (slot used)."""
    chosen = [combination for count in range(1, size + 1) for combination in itertools.combinations(range(rows), count)]
    index = torch.tensor([list(c) + [0] * (size - len(c)) for c in chosen], dtype=torch.long, device=device)
    used = torch.tensor([[slot < len(c) for slot in range(size)] for c in chosen], dtype=torch.bool, device=device)
    return index, used


def _project(rows: torch.Tensor, limits: torch.Tensor, valid: torch.Tensor, origin: torch.Tensor,
             tolerance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean projections of points onto polyhedra ``{x : r_m . x >= l_m}``, by trying every face.

    The projection of ``x_0`` is its projection onto the affine hull of the face it lies in, which
    ``D`` or fewer of the constraints cut out in ``R^D``, and every other feasible point is farther
    from ``x_0``; so each set of at most ``D`` constraints gives a candidate
    ``x = x_0 + R_s^T (R_s R_s^T)^{-1} (l_s - R_s x_0)``, and the closest feasible one is the answer.

    Args:
        rows: ``(T, M, D)``; limits: ``(T, M)``; valid: ``(T, M)`` bool (absent rows are ignored).
        origin: ``(T, D)`` the points to project.
        tolerance: feasibility tolerance, relative to each row's scale.

    Returns:
        ``(points (T, D), found (T,))``: ``found`` is False where the polyhedron is empty.
    """
    count, dimension = rows.shape[1:]
    scale = rows.norm(dim=-1).clamp_min(1e-12) * (1 + torch.where(valid, limits, 0.0).abs())

    def feasible(rows, limits, valid, scale, points: torch.Tensor) -> torch.Tensor:  # (T, C, D) -> (T, C)
        residual = torch.einsum("tmd,tcd->tcm", rows, points) - limits[:, None]
        return ((residual >= -tolerance * scale[:, None]) | ~valid[:, None]).all(-1)

    inside = feasible(rows, limits, valid, scale, origin[:, None])[:, 0]
    outside = (~inside).nonzero()[:, 0]  # only these are projected: the faces cost C solves a problem
    projected, found = origin.clone(), inside.clone()
    if not outside.numel():
        return projected, found
    rows, limits, valid, scale, origin = rows[outside], limits[outside], valid[outside], scale[outside], origin[outside]
    index, used = _subsets(count, dimension, rows.device)  # (C, D)
    picked = rows[:, index] * used[..., None]  # (T, C, D, D): unused slots are zero rows
    gram = picked @ picked.transpose(-1, -2) + torch.diag_embed((~used).to(rows.dtype))
    finite = torch.where(valid, limits, 0.0)  # unused slots point at row 0, which may be absent
    target = (finite[:, index] - torch.einsum("tcjd,td->tcj", picked, origin)) * used
    multipliers, info = torch.linalg.solve_ex(gram, target[..., None])
    points = origin[:, None] + (picked.transpose(-1, -2) @ multipliers)[..., 0]  # (T, C, D)
    usable = valid[:, index].where(used, True).all(-1) & (info == 0) & torch.isfinite(points).all(-1)
    usable = usable & feasible(rows, limits, valid, scale, points)
    distance = torch.where(usable, (points - origin[:, None]).square().sum(-1), math.inf)
    projected[outside] = points[torch.arange(outside.numel(), device=rows.device), distance.argmin(1)]
    found[outside] = usable.any(1)
    return projected, found


def solve_qp(nominal: torch.Tensor, matrix: torch.Tensor, bound: torch.Tensor, low: float, high: float,
             slack_weight: float = 1e3, tolerance: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    """The filter's QP for ``S`` agents at once, solved exactly (module docstring).

    1. Agents whose nominal command meets every constraint keep it.
    2. The others get the closest command in the box that meets every constraint, when one
       exists: the projection of ``u_nom`` onto a polygon (``_project`` in 2 dimensions).
    3. Where none exists, the slack enters: with ``e = sqrt(w) d`` the QP is the projection of
       ``(u_nom, 0)`` onto ``{A u + e / sqrt(w) >= b, box, e >= 0}`` in 3 dimensions.

    So a command that can meet every constraint does, exactly, and the slack is used only
    where the constraints cannot all be met (then it is the quadratic-penalty QP's). One
    constraint with its solution inside the box has the closed form ``u = u_nom + lambda a``,
    ``lambda = max(0, b - a . u_nom) / |a|^2``.

    Cost per unsafe agent: ``sum_{j <= D} binom(M, j)`` candidates, ``M = K + 4`` rows in step 2
    (78 for ``K = 8``) and ``K + 5`` in step 3 (378), each a ``D x D`` solve.

    Args:
        nominal: ``(S, 2)`` the nominal commands.
        matrix: ``(S, K, 2)`` constraint rows ``A``; a row with ``bound = -inf`` is absent.
        bound: ``(S, K)`` right-hand sides ``b``.
        low, high: the box on each component of ``u``.
        slack_weight: ``w``, the penalty of the slack.
        tolerance: feasibility tolerance, relative to each constraint's scale.

    Returns:
        ``(u, d)``: ``(S, 2)`` the filtered commands (inside the box) and ``(S,)`` the slack.
    """
    if not low < high:
        raise TrainingError(f"the command box [{low}, {high}] is empty")
    problems, count, _ = matrix.shape
    given, device, dtype = nominal.dtype, nominal.device, torch.float64  # float64 inside: faces are tried exactly
    nominal, matrix, bound = nominal.to(dtype), matrix.to(dtype), bound.to(dtype)
    present = torch.isfinite(bound)
    matrix = matrix * present[..., None]
    if count == 1:
        a = matrix[:, 0]
        gap = torch.where(present[:, 0], bound[:, 0] - (a * nominal).sum(-1), 0.0).clamp_min(0.0)
        u = nominal + (gap / a.square().sum(-1).clamp_min(1e-300))[:, None] * a
        if bool(((u >= low) & (u <= high)).all()):
            return u.to(given), torch.zeros(problems, dtype=given, device=device)
    box = torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0], [0, -1.0]], dtype=dtype, device=device).expand(problems, 4, 2)
    box_limits = torch.tensor([low, low, -high, -high], dtype=dtype, device=device).expand(problems, 4)
    rows = torch.cat([matrix, box], 1)  # (S, K + 4, 2)
    limits = torch.cat([bound, box_limits], 1)
    valid = torch.cat([present, torch.ones(problems, 4, dtype=torch.bool, device=device)], 1)
    command, found = _project(rows, limits, valid, nominal, tolerance)
    slack = torch.zeros(problems, dtype=dtype, device=device)
    stuck = (~found).nonzero()[:, 0]
    if stuck.numel():
        root = math.sqrt(slack_weight)
        lifted = torch.cat([torch.cat([rows[stuck], torch.zeros_like(rows[stuck][..., :1])], -1),
                            torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype, device=device).expand(stuck.numel(), 1, 3)], 1)
        lifted[:, :count, 2] = 1.0 / root  # A u + e / sqrt(w) >= b; then the box; then e >= 0
        lifted_limits = torch.cat([limits[stuck], torch.zeros(stuck.numel(), 1, dtype=dtype, device=device)], 1)
        lifted_valid = torch.cat([valid[stuck], torch.ones(stuck.numel(), 1, dtype=torch.bool, device=device)], 1)
        start = torch.cat([nominal[stuck], torch.zeros(stuck.numel(), 1, dtype=dtype, device=device)], 1)
        point, solved = _project(lifted, lifted_limits, lifted_valid, start, tolerance)
        if not bool(solved.all()):
            raise TrainingError("the CBF QP found no command; the slack makes every instance feasible, so this is a bug")
        command[stuck] = point[:, :2]
        slack[stuck] = point[:, 2].clamp_min(0.0) / root
    return command.clamp(low, high).to(given), slack.to(given)


def braking_rows(offset: torch.Tensor, relative_velocity: torch.Tensor, reach: torch.Tensor,
                 responsibility: torch.Tensor, alpha: torch.Tensor | float, acceleration: float, dt: float,
                 damping: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``A u >= b`` of the discrete braking barrier of the particle engine (module docstring).

    Args:
        offset, relative_velocity, reach, responsibility, alpha: as :func:`barrier_rows`.
        acceleration: ``A``, the box on each agent's command; the pair brakes at ``A / rho``.
        dt, damping: the engine's step and per-step velocity damping.

    Returns:
        ``(A (..., K, 2), b (..., K))``: ``A`` is the unit normal ``n'`` of the offset after this
        step, so ``b`` is in units of acceleration.
    """
    alpha = torch.as_tensor(alpha, dtype=offset.dtype, device=offset.device)
    if alpha.dim():
        alpha = alpha[..., None]
    braking = acceleration / responsibility

    def room(distance: torch.Tensor) -> torch.Tensor:  # the closing speed from which braking stops in time
        return (2 * braking * (distance - reach).clamp_min(0.0)).sqrt() - braking * dt / 2

    distance = offset.norm(dim=-1)
    closing = (offset * relative_velocity).sum(-1) / distance.clamp_min(1e-12)
    barrier = room(distance) + closing
    ahead = offset + dt * relative_velocity  # explicit Euler: this step's velocity moves the positions
    ahead_distance = ahead.norm(dim=-1)
    normal = ahead / ahead_distance.clamp_min(1e-12)[..., None]
    kept = (1.0 - damping) * (normal * relative_velocity).sum(-1)
    decay = 1.0 - (alpha * dt).clamp(max=1.0)
    return normal, responsibility * (decay * barrier - room(ahead_distance) - kept) / dt


def lookahead_rows(offset: torch.Tensor, relative_velocity: torch.Tensor, reach: torch.Tensor,
                   responsibility: torch.Tensor, alpha: torch.Tensor | float, dt: float,
                   damping: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``A u >= b`` of the one-step-lookahead discrete CBF (module docstring, ``barrier="lookahead"``).

    Args:
        offset, relative_velocity, reach, responsibility, alpha: as :func:`barrier_rows`.
        dt, damping: the engine's step and per-step velocity damping.

    Returns:
        ``(A (..., K, 2), b (..., K))``: ``A`` is the unit normal ``n`` of the coasting prediction
        ``c`` (:func:`coasting_offset`).
    """
    alpha = torch.as_tensor(alpha, dtype=offset.dtype, device=offset.device)
    if alpha.dim():
        alpha = alpha[..., None]
    after = offset + dt * relative_velocity  # dp', which no command of this step changes
    coasting = coasting_offset(offset, relative_velocity, dt, damping)
    distance = coasting.norm(dim=-1)
    normal = coasting / distance.clamp_min(1e-12)[..., None]
    decay = 1.0 - (alpha * dt).clamp(max=1.0)
    barrier = after.norm(dim=-1) - reach
    return normal, responsibility * (decay * barrier + reach - distance) / (dt * dt)


def coasting_offset(offset: torch.Tensor, relative_velocity: torch.Tensor, dt: float, damping: float) -> torch.Tensor:
    """``c = dp + dt (2 - damping) dv`` ``(..., 2)``: the offset two engine steps on with no command; a
    command ``u`` of this step (the other side's held at none) makes it ``c + dt^2 u``."""
    return offset + dt * (2.0 - damping) * relative_velocity


def sensing_speed(sensing_radius: float, reach: float, braking: float, dt: float) -> float:
    """The closing speed ``sigma`` from which a pair first seen at ``sensing_radius`` still stops in time.

    A pair out of range one step closes by at most ``sigma dt`` before it is seen, so it is first
    seen at ``R - sigma dt`` or farther; it is in the braking barrier's safe set there when
    ``room(R - sigma dt) >= sigma``, the root of ``sigma^2 + 3 a dt sigma + (a dt)^2 / 4 - 2 a (R - D) = 0``.
    """
    if sensing_radius <= reach:
        raise TrainingError(f"the CBF filter needs a sensing radius ({sensing_radius}) above the sum of radii and "
                            f"margin ({reach:g}); nothing could move safely")
    step = braking * dt
    return -1.5 * step + math.sqrt(2 * step * step + 2 * braking * (sensing_radius - reach))


def speed_rows(velocity: torch.Tensor, limit: float, dt: float, damping: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``A u >= b`` keeping each agent's next velocity ``(1 - d) v + u dt`` inside the regular octagon
    inscribed in the disk of radius ``limit``: its three sides nearest the heading of ``v``, the only ones a
    step can reach while ``|u dt|`` is small next to ``limit``.

    Args:
        velocity: ``(..., 2)`` the agents' velocities.

    Returns:
        ``(A (..., 3, 2), b (..., 3))``.
    """
    side = math.pi / 4
    nearest = torch.round(torch.atan2(velocity[..., 1], velocity[..., 0]) / side)
    angle = (nearest[..., None] + torch.tensor([-1.0, 0.0, 1.0], dtype=velocity.dtype, device=velocity.device)) * side
    facing = torch.stack([angle.cos(), angle.sin()], -1)  # (..., 3, 2)
    reach = limit * math.cos(side / 2)
    return -facing, ((1.0 - damping) * (facing * velocity[..., None, :]).sum(-1) - reach) / dt


def barrier_rows(offset: torch.Tensor, relative_velocity: torch.Tensor, reach: torch.Tensor,
                 responsibility: torch.Tensor, alpha: torch.Tensor, dynamics: str,
                 damping_rate: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Constraint rows ``A u >= b`` of every agent against its neighbours (module docstring).

    Args:
        offset: ``(..., K, 2)`` ``dp = p_i - p_j``; relative_velocity: ``(..., K, 2)`` ``dv``.
        reach: ``(..., K)`` ``r_i + r_j + margin``; responsibility: ``(..., K)`` ``rho``.
        alpha: ``(...)`` or a number, the class-K gain.
        dynamics: ``single`` or ``double``; damping_rate: ``c`` of the double integrator.

    Returns:
        ``(A (..., K, 2), b (..., K))``.
    """
    alpha = torch.as_tensor(alpha, dtype=offset.dtype, device=offset.device)
    if alpha.dim():
        alpha = alpha[..., None]
    barrier = offset.square().sum(-1) - reach.square()
    if dynamics == "single":
        return 2 * offset, -responsibility * alpha * barrier
    closing = (offset * relative_velocity).sum(-1)
    rest = (2 * relative_velocity.square().sum(-1) - 2 * damping_rate * closing + 4 * alpha * closing
            + alpha.square() * barrier)
    return 2 * offset, -responsibility * rest


class CBFFilter:
    """The decentralized CBF filter of a navigation world (module docstring).

    Args:
        alpha: the fixed gain (used when ``commands`` is given none).
        margin: added to the sum of radii; must be >= 0.
        neighbours: ``k``, the nearest agents and obstacles each agent keeps; >= 1.
        dynamics: ``double`` (the particle engine's; commands are forces) or ``single``.
        slack_weight: see :func:`solve_qp`.
        barrier: ``braking`` (the default), ``hocbf`` or ``lookahead``, the double integrator's barrier.
        detour: degrees the nominal command of an agent held still is turned (module docstring);
            0: never.
        share: ``rho`` between agents, the part of each pair's constraint an agent takes on (0.5, the
            default, is half responsibility; 1 treats the other agent as one that will not yield).
        pairs: which agent pairs constrain whom. ``shared`` (the default): every agent takes ``share``
            of each pair. ``yield``: an agent parked at its goal (within the game's ``goal_radius``)
            takes the whole of each pair with an agent still travelling, which leaves that pair to it;
            other pairs are shared. ``parked``: as ``yield``, but two travelling agents leave each
            other alone. ``obstacles``: agents leave each other alone and only obstacles constrain
            them. ``parked_only``: only agents parked at their goals are filtered; each takes the whole
            of each pair with a travelling agent, shares pairs with parked ones and keeps clear of
            obstacles, while travelling agents move as their policy says. ``parked``, ``obstacles``
            and ``parked_only`` put reaching the goals first: they do not keep travelling agents
            apart.
    """

    def __init__(self, alpha: float = 1.0, margin: float = 0.05, neighbours: int = 8, dynamics: str = "double",
                 slack_weight: float = 1e3, barrier: str = "braking", detour: float = 90.0, share: float = 0.5,
                 pairs: str = "shared") -> None:
        for name, value in (("alpha", alpha), ("margin", margin), ("slack_weight", slack_weight), ("detour", detour),
                            ("share", share)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TrainingError(f"CBF {name} must be a finite number, got {value!r}")
        if alpha <= 0:
            raise TrainingError(f"CBF alpha must be > 0, got {alpha}")
        if margin < 0:
            raise TrainingError(f"CBF margin must be >= 0, got {margin}")
        if slack_weight <= 0:
            raise TrainingError(f"CBF slack_weight must be > 0, got {slack_weight}")
        if not 0 < share <= 1:
            raise TrainingError(f"CBF share must be in (0, 1], got {share}")
        if isinstance(neighbours, bool) or not isinstance(neighbours, int) or not 1 <= neighbours <= 16:
            raise TrainingError(f"CBF neighbours (k) must be an integer in 1..16, got {neighbours!r}")
        if dynamics not in DYNAMICS:
            raise TrainingError(f"CBF dynamics must be one of {', '.join(DYNAMICS)}, got {dynamics!r}")
        if barrier not in BARRIERS:
            raise TrainingError(f"CBF barrier must be one of {', '.join(BARRIERS)}, got {barrier!r}")
        if pairs not in PAIRS:
            raise TrainingError(f"CBF pairs must be one of {', '.join(PAIRS)}, got {pairs!r}")
        self.alpha, self.margin, self.neighbours = float(alpha), float(margin), neighbours
        self.dynamics, self.slack_weight, self.barrier = dynamics, float(slack_weight), barrier
        self.detour, self.share, self.pairs = float(detour), float(share), pairs

    def constraints(self, game: Any, alpha: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A (B, N, R, 2), b (B, N, R))`` of every agent of a navigation game against its ``k``
        nearest agents and obstacles within the sensing radius (absent rows, and pairs an agent leaves
        to the other (``pairs``): ``b = -inf``); with the braking barrier, the 3 rows of the sensing
        speed limit follow (``R = k + 3``, else ``R = k``)."""
        matrix, bound, _ = self._rows(game, alpha)
        return matrix, bound

    def _responsibility(self, game: Any, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``(B, N, k)`` ``rho`` of each agent for its ``k`` nearest (``index`` into agents, then
        obstacles): for agents as ``pairs`` says (0: left to the other), and 1 for obstacles (with
        ``parked_only``, 0 for a travelling agent)."""
        count = game.config.num_agents
        is_agent = index < count
        obstacle = torch.ones((), dtype=dtype, device=index.device)
        if self.pairs == "obstacles":
            share = torch.zeros((), dtype=dtype, device=index.device)
        elif self.pairs in ("yield", "parked", "parked_only"):
            parked = self._parked(game)  # (B, N)
            other = parked.gather(1, index.clamp(max=count - 1).flatten(1)).view(index.shape).long()
            mine = parked[:, :, None].expand_as(index).long()
            travelling = self.share if self.pairs == "yield" else 0.0  # two travelling agents
            # rho by (this agent parked, the other parked)
            table = torch.tensor([[travelling, 0.0], [1.0, self.share]], dtype=dtype, device=index.device)
            share = table[mine, other]
            if self.pairs == "parked_only":
                obstacle = mine.to(dtype)
        else:
            share = torch.full((), self.share, dtype=dtype, device=index.device)
        return torch.where(is_agent, share, obstacle)

    @staticmethod
    def _parked(game: Any) -> torch.Tensor:
        """``(B, N)`` bool: agents within the game's ``goal_radius`` of their goals."""
        return game.goal_distance() <= game.config.goal_radius

    def _rows(self, game: Any, alpha: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`constraints`, and with the lookahead barrier the coasting offsets ``c`` ``(B, N, k, 2)``
        of its rows (else ``None``)."""
        config, world = game.config, game.world
        count, obstacles = config.num_agents, config.num_obstacles
        others = count + obstacles  # entities are stored agents, obstacles, goals
        # The world's offsets of this state (cached, shared with the observations, rewards and contacts).
        offsets, distances = world.agent_offsets_bl()  # (N, E, 2, B): p_e - p_a
        offset = -offsets[:, :others].permute(3, 0, 1, 2)  # (B, N, N + O, 2): p_i - p_j
        eye = torch.eye(count, others, dtype=torch.bool, device=offset.device)
        distance = distances[:, :others].permute(2, 0, 1).masked_fill(eye, math.inf)  # not one's own neighbour
        velocity = world.velocity[:, :others]  # (B, N + O, 2); obstacles stand still
        taken = min(self.neighbours, count - 1 + obstacles)
        if taken == 0:
            shape = (*distance.shape[:2], 1)
            return offset.new_zeros(*shape, 2), offset.new_full(shape, -math.inf), None
        nearest, index = distance.topk(taken, dim=-1, largest=False)  # (B, N, k)
        pick = index[..., None].expand(-1, -1, -1, 2)
        near_offset = offset.gather(2, pick)
        near_velocity = velocity[:, :count, None] - velocity[:, None].expand(-1, count, -1, -1).gather(2, pick)
        reach = world.sizes[:count][None, :, None] + world.sizes[:others][index] + self.margin
        responsibility = self._responsibility(game, index, offset.dtype)
        # A pair left to the other side has no row; its rows are computed at rho = 1 and dropped.
        kept = (nearest <= config.sensing_radius) & (responsibility > 0)
        responsibility = torch.where(responsibility > 0, responsibility, 1.0)
        if self.dynamics == "double" and self.barrier == "braking":
            matrix, bound = braking_rows(near_offset, near_velocity, reach, responsibility, alpha, config.acceleration,
                                         world.dt, world.damping)
            bound = torch.where(kept, bound, -math.inf)
            # What lies beyond the sensing radius is unknown: each agent keeps to the speed from which it can
            # still avoid an agent (closing at twice that speed) or an obstacle first seen at the edge.
            pair = sensing_speed(config.sensing_radius, 2 * config.agent_size + self.margin,
                                 2 * config.acceleration, world.dt) / 2
            still = sensing_speed(config.sensing_radius, config.agent_size + config.obstacle_size + self.margin,
                                  config.acceleration, world.dt)
            limit_rows, limit_bound = speed_rows(velocity[:, :count], min(pair, still), world.dt, world.damping)
            if self.pairs == "parked_only":  # travelling agents are not filtered at all
                limit_bound = limit_bound.masked_fill(~self._parked(game)[..., None], -math.inf)
            return torch.cat([matrix, limit_rows], 2), torch.cat([bound, limit_bound], 2), None
        if self.dynamics == "double" and self.barrier == "lookahead":
            matrix, bound = lookahead_rows(near_offset, near_velocity, reach, responsibility, alpha, world.dt,
                                           world.damping)
            coasting = coasting_offset(near_offset, near_velocity, world.dt, world.damping)
            return matrix, torch.where(kept, bound, -math.inf), coasting
        damping_rate = world.damping / world.dt
        matrix, bound = barrier_rows(near_offset, near_velocity, reach, responsibility, alpha, self.dynamics,
                                     damping_rate)
        return matrix, torch.where(kept, bound, -math.inf), None

    def commands(self, game: Any, nominal: torch.Tensor, alpha: torch.Tensor | float | None = None) -> torch.Tensor:
        """Filtered commands ``(B, N, 2)`` for nominal ones ``(B, N, 2)``: forces per unit mass
        (``double``, boxed by the agents' acceleration) or velocities (``single``, boxed by ``max_speed``)."""
        alpha = self.alpha if alpha is None else alpha
        matrix, bound = self.constraints(game, alpha)
        copies, count = nominal.shape[:2]
        limit = game.config.acceleration if self.dynamics == "double" else game.config.max_speed
        nominal, matrix, bound = nominal.reshape(-1, 2), matrix.reshape(copies * count, -1, 2), bound.reshape(copies * count, -1)
        filtered, _ = solve_qp(nominal, matrix, bound, -limit, limit, self.slack_weight)
        if self.detour:
            # Deadlock escape: an agent the filter holds nearly still (it removes over half the nominal command
            # while the agent moves at under a fifth of its top speed) is given its nominal turned by `detour`.
            speed = game.world.velocity[:, :count].reshape(-1, 2).norm(dim=-1)
            held = (filtered - nominal).norm(dim=-1) > 0.5 * nominal.norm(dim=-1)
            blocked = (held & (speed < 0.2 * game.config.max_speed)).nonzero()[:, 0]
            if blocked.numel():
                filtered[blocked] = solve_qp(self._turned(nominal[blocked]), matrix[blocked], bound[blocked], -limit,
                                             limit, self.slack_weight)[0]
        return filtered.view(copies, count, 2)

    def _turned(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` vectors turned by ``detour`` degrees, counter-clockwise."""
        angle = math.radians(self.detour)
        turn = torch.tensor([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]],
                            dtype=vectors.dtype, device=vectors.device)  # x @ turn rotates x by +angle
        return vectors @ turn

    def filter_actions(self, game: Any, actions: torch.Tensor, alpha: torch.Tensor | float | None = None) -> torch.Tensor:
        """``(B, N, 5)`` continuous MPE actions -> the filtered ``(B, N, 5)`` (double integrator)."""
        limit = game.config.acceleration
        force = torch.stack([actions[..., 2] - actions[..., 1], actions[..., 4] - actions[..., 3]], -1) * limit
        return force_to_actions(self.commands(game, force, alpha), limit)

    def filter_moves(self, game: Any, moves: torch.Tensor, alpha: torch.Tensor | float | None = None) -> torch.Tensor:
        """``(B, N)`` discrete MPE moves -> the filtered ``(B, N)`` int64 moves (double integrator).

        The five moves apply no force or the full force ``A`` along one axis (``games.particle.MOVES``).
        An agent keeps its move where it meets every row; otherwise it takes, of the moves that do,
        the one most along its own, then most along its velocity (it slides on round what blocks it,
        rather than undo with its next move what this one did), then most along its own turned by
        ``detour`` degrees (with 90: turn left before stopping), then the one with the most room on
        its tightest row; where no move meets every row, the one of least squared violation (the
        slack's choice). The rows are the continuous filter's; the braking barrier's assume braking
        along the normal ``n'`` at ``A``, and the move nearest ``n'`` brakes along it at between
        ``A / sqrt 2`` and ``A``. With the lookahead barrier a move is checked on the exact gain in
        distance it makes two steps on, ``(|c + dt^2 u| - |c|) / dt^2 >= b``, in place of the row's
        ``n . u``, its linearization at ``c``: the tangent half-plane is sufficient but refuses a move
        that slides along what it touches, and with five moves to check nothing needs linearizing.
        """
        from games.particle import MOVES

        if self.dynamics != "double":
            raise TrainingError("discrete moves are forces: filter them with dynamics=double")
        alpha = self.alpha if alpha is None else alpha
        matrix, bound, coasting = self._rows(game, alpha)  # (B, N, R, 2), (B, N, R), (B, N, R, 2) or None
        limit = game.config.acceleration
        forces = torch.tensor(MOVES, dtype=matrix.dtype, device=matrix.device) * limit  # (5, 2)
        present = torch.isfinite(bound)[:, :, None]  # (B, N, 1, R)
        if coasting is None:
            residual = torch.einsum("bnrd,md->bnmr", matrix, forces) - bound[:, :, None]  # (B, N, 5, R)
        else:  # the lookahead row's left side n . u is the linearized gain in distance; a move's exact gain
            step = game.world.dt ** 2
            moved = (coasting[:, :, None] + step * forces[:, None]).norm(dim=-1)  # (B, N, 5, R): |c + dt^2 u|
            residual = (moved - coasting.norm(dim=-1)[:, :, None]) / step - bound[:, :, None]
        residual = torch.where(present, residual, math.inf)
        tolerance = 1e-6 * (1.0 + torch.where(present, bound[:, :, None], 0.0).abs())
        feasible = (residual >= -tolerance).all(-1)  # (B, N, 5)
        violation = torch.where(present, (-residual).clamp_min(0.0), 0.0).square().sum(-1)
        moves = moves.to(device=matrix.device, dtype=torch.long)
        nominal = forces[moves] / limit  # (B, N, 2), unit or zero
        turned = self._turned(nominal)
        velocity = game.world.velocity[:, : game.config.num_agents].to(matrix.dtype)  # (B, N, 2)
        heading = velocity / velocity.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # unit or zero
        unit = forces / limit
        room = residual.amin(-1).clamp(max=limit) / limit  # (B, N, 5) in [.., 1]; inf (no rows) -> 1
        # Along the move weighs 3 and moves in steps of 1, so it decides first; the velocity (within [-1, 1])
        # then, and the turned move (0.1) and the room (0.01) settle what is left.
        score = (3.0 * torch.einsum("md,bnd->bnm", unit, nominal) + torch.einsum("md,bnd->bnm", unit, heading)
                 + 0.1 * torch.einsum("md,bnd->bnm", unit, turned) + 0.01 * torch.tanh(room))
        best = torch.where(feasible, score, -math.inf).argmax(-1)
        fallback = torch.where(feasible.any(-1), best, violation.argmin(-1))
        return torch.where(feasible.gather(-1, moves[..., None])[..., 0], moves, fallback)

    def __call__(self, policy: Any) -> Any:
        """``policy`` (navigation's continuous actions or discrete moves) filtered at the fixed gain."""
        if self.dynamics != "double":
            raise TrainingError("a policy's forces are filtered with dynamics=double")

        def filtered(game: Any, observations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            chosen = policy(game, observations)
            stacked = torch.stack([chosen[agent] for agent in game.possible_agents], 1)
            if stacked.dim() == 2:
                safe = self.filter_moves(game, stacked).to(stacked.device)
            else:
                safe = self.filter_actions(game, stacked.to(game.dtype))
            return {agent: safe[:, index] for index, agent in enumerate(game.possible_agents)}

        return filtered


def force_to_actions(force: torch.Tensor, limit: float) -> torch.Tensor:
    """``(..., 2)`` forces in ``[-limit, limit]`` -> ``(..., 5)`` continuous MPE actions that apply them."""
    push = (force / limit).clamp(-1.0, 1.0)
    zero = torch.zeros_like(push[..., 0])
    return torch.stack([zero, (-push[..., 0]).clamp_min(0), push[..., 0].clamp_min(0),
                        (-push[..., 1]).clamp_min(0), push[..., 1].clamp_min(0)], -1)


def _steer_home(game: Any, continuous: bool) -> torch.Tensor:
    """The goal seeker's actions (``games.particle.steer`` at each agent's goal): ``(B, N, 5)`` or ``(B, N)`` moves."""
    from games.particle import steer

    entities = game.entities()
    return steer(entities["goal_position"] - entities["agent_position"], entities["agent_velocity"], game.world,
                 continuous)


def nominal_forces(game: Any) -> torch.Tensor:
    """``(B, N, 2)`` the goal-seeking forces of ``scenarios.navigation.goal_seeking_policy``."""
    actions = _steer_home(game, continuous=True)
    limit = game.config.acceleration
    return torch.stack([actions[..., 2] - actions[..., 1], actions[..., 4] - actions[..., 3]], -1) * limit


class OnlineCBF:
    """Online gains (Gao, Yang and Prorok 2023): a policy's action per agent sets its gain ``alpha_i(t)``.

    ``controller(game, actions (B, N, 1)) -> (B, N, 5)``: the goal-seeking force, filtered
    with each agent's gain. ``gain = "lognormal"``: the action is ``log alpha`` relative to the
    fixed gain, ``alpha = clamp(cbf.alpha exp(action), 0.1, 50)``, so a zero action is
    ``cbf.alpha``. ``gain = "beta"``: the action is a fraction in (0, 1) of ``cbf.alpha``,
    ``alpha = max(cbf.alpha action, 0.1)``.
    """

    def __init__(self, cbf: CBFFilter, gain: str = "lognormal") -> None:
        if gain not in GAINS:
            raise TrainingError(f"the online gain is one of {', '.join(GAINS)}, got {gain!r}")
        self.cbf, self.gain = cbf, gain

    def __call__(self, game: Any, actions: torch.Tensor) -> torch.Tensor:
        action = actions[..., 0].to(game.dtype)
        if self.gain == "beta":
            alpha = (action * self.cbf.alpha).clamp(ALPHA_RANGE[0], ALPHA_RANGE[1])
        else:
            low, high = (math.log(value) for value in ALPHA_RANGE)
            alpha = (action + math.log(self.cbf.alpha)).clamp(low, high).exp()
        force = self.cbf.commands(game, nominal_forces(game), alpha)
        return force_to_actions(force, game.config.acceleration)


def scripted_cbf_policy(cbf: CBFFilter) -> Any:
    """The goal-seeking policy filtered at ``cbf``'s fixed gain (the seed paper's baseline): forces, or
    moves with :meth:`CBFFilter.filter_moves` where the game's actions are discrete."""

    def policy(game: Any, observations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if game.continuous:
            safe = force_to_actions(cbf.commands(game, nominal_forces(game)), game.config.acceleration)
        else:
            safe = cbf.filter_moves(game, _steer_home(game, continuous=False)).to(game.device)
        return {agent: safe[:, index] for index, agent in enumerate(game.possible_agents)}

    return policy


__all__ = ["ALPHA_RANGE", "BARRIERS", "GAINS", "PAIRS", "CBFFilter", "OnlineCBF", "barrier_rows", "braking_rows",
           "coasting_offset", "force_to_actions", "lookahead_rows", "nominal_forces", "scripted_cbf_policy",
           "solve_qp"]
