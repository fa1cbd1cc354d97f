"""A batched primal-dual interior-point method for 2-player zero-sum matrix games, in torch.

Mehrotra, "On the implementation of a primal-dual interior point method", SIAM J. Optim.
1992; Wright, *Primal-Dual Interior-Point Methods* (SIAM 1997), chapter 10.

The game ``A`` (``(B, m, n)``, row player maximising) is shifted to ``P = A - min(A) + 1``,
whose value is positive, and solved as the LP pair

    primal:  min 1^T u   s.t.  P^T u - s = 1,  u, s >= 0     (u = x / value)
    dual:    max 1^T w   s.t.  P w + z = 1,    w, z >= 0     (w = y / value)

with complementarity ``u * z = 0`` and ``w * s = 0``. One iteration consists of:

1) residuals ``r_p = 1 - P^T u + s``, ``r_d = 1 - P w - z`` and ``mu = (u.z + w.s)/(m+n)``;
2) the normal equations ``(P^T diag(u/z) P + diag(s/w)) dw = rhs``, Cholesky-factored once;
3) a predictor (affine-scaling) direction, its step lengths to the boundary, and
   Mehrotra's centering ``sigma = (mu_aff / mu)^3``;
4) a corrector direction with the second-order term, from the same factorization;
5) separate primal and dual steps of 0.995 times the distance to the boundary.

Every game of the batch iterates together. After each iteration the normalised strategies
``x = u / 1^T u`` and ``y = w / 1^T w`` are scored by their NashConv in the game, and each
game keeps its best profile: the run stops once every game's best NashConv is within the
tolerance.

NOTE: stopping on NashConv rather than on the LP residuals is a departure from the
textbook method. Near the optimum the normal equations grow ill-conditioned and the
residuals stall around 1e-9 in float64 (and can then drift), while the equilibrium is
already found; keeping the best profile makes that stall harmless.

Runs on any device; float64 is recommended.
"""

from __future__ import annotations

import torch

from solvers.exploitability import matrix_nash_conv

Tensor = torch.Tensor


def _step_length(values: Tensor, directions: Tensor) -> Tensor:
    """The largest ``alpha <= 1`` keeping ``values + alpha * directions >= 0``, per batch row."""
    ratios = torch.where(directions < 0, -values / directions, torch.full_like(values, torch.inf))
    return ratios.amin(-1).clamp(max=1.0)


def interior_point_zero_sum(
    matrices: Tensor, *, tolerance: float = 1e-9, max_iterations: int = 60
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Equilibrium strategies and values of a batch of zero-sum matrix games.

    Args:
        matrices: the row player's payoffs, ``(B, m, n)``.
        tolerance: the NashConv at which a game counts as solved.
        max_iterations: an upper bound on iterations (15 to 30 are typical).

    Returns:
        ``(rows (B, m), columns (B, n), nash_convs (B,), iterations)``: each game's best
        profile and its NashConv, which may exceed ``tolerance`` if ``max_iterations``
        ran out or the method stalled first.
    """
    batch, m, n = matrices.shape
    shift = matrices.flatten(1).amin(-1)[:, None, None] - 1.0
    payoffs = matrices - shift  # every entry >= 1
    payoffs_t = payoffs.transpose(1, 2)
    ones_m = torch.ones(batch, m, dtype=matrices.dtype, device=matrices.device)
    ones_n = torch.ones(batch, n, dtype=matrices.dtype, device=matrices.device)
    scale = payoffs.flatten(1).amax(-1, keepdim=True)
    u, z = ones_m / scale, ones_m.clone()
    w, s = ones_n / scale, ones_n.clone()
    eye = torch.eye(n, dtype=matrices.dtype, device=matrices.device)

    def solve(factor, d, e, r_p, r_d, r_uz, r_ws):
        # (P^T diag(d) P + diag(e)) dw = r_p - P^T ((r_uz - u r_d) / z) + r_ws / w
        rhs = r_p - torch.einsum("bnm,bm->bn", payoffs_t, (r_uz - u * r_d) / z) + r_ws / w
        dw = torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
        dz = r_d - torch.einsum("bmn,bn->bm", payoffs, dw)
        du = (r_uz - u * dz) / z
        ds = (r_ws - s * dw) / w
        return du, ds, dw, dz

    best_rows = torch.full((batch, m), 1.0 / m, dtype=matrices.dtype, device=matrices.device)
    best_columns = torch.full((batch, n), 1.0 / n, dtype=matrices.dtype, device=matrices.device)
    best_gaps = matrix_nash_conv(matrices, best_rows, best_columns)
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        r_p = 1.0 - torch.einsum("bnm,bm->bn", payoffs_t, u) + s
        r_d = 1.0 - torch.einsum("bmn,bn->bm", payoffs, w) - z
        mu = ((u * z).sum(-1) + (w * s).sum(-1)) / (m + n)
        rows = u.clamp_min(0) / u.clamp_min(0).sum(-1, keepdim=True)
        columns = w.clamp_min(0) / w.clamp_min(0).sum(-1, keepdim=True)
        gaps = matrix_nash_conv(matrices, rows, columns)
        better = gaps < best_gaps
        best_rows = torch.where(better[:, None], rows, best_rows)
        best_columns = torch.where(better[:, None], columns, best_columns)
        best_gaps = torch.where(better, gaps, best_gaps)
        if bool((best_gaps <= tolerance).all()):
            break
        d, e = u / z, s / w
        normal = torch.einsum("bnm,bm,bmk->bnk", payoffs_t, d, payoffs) + torch.diag_embed(e)
        normal = normal + 1e-14 * normal.diagonal(dim1=1, dim2=2).amax(-1)[:, None, None] * eye
        factor, info = torch.linalg.cholesky_ex(normal)
        if bool((info != 0).any()):
            break
        # Predictor.
        du, ds, dw, dz = solve(factor, d, e, r_p, r_d, -u * z, -w * s)
        alpha_p = torch.minimum(_step_length(u, du), _step_length(s, ds))[:, None]
        alpha_d = torch.minimum(_step_length(w, dw), _step_length(z, dz))[:, None]
        mu_affine = (
            ((u + alpha_p * du) * (z + alpha_d * dz)).sum(-1) + ((w + alpha_d * dw) * (s + alpha_p * ds)).sum(-1)
        ) / (m + n)
        sigma = ((mu_affine / mu) ** 3).clamp(max=1.0)[:, None]
        target = sigma * mu[:, None]
        # Corrector.
        du, ds, dw, dz = solve(factor, d, e, r_p, r_d, target - u * z - du * dz, target - w * s - dw * ds)
        alpha_p = (0.995 * torch.minimum(_step_length(u, du), _step_length(s, ds)))[:, None]
        alpha_d = (0.995 * torch.minimum(_step_length(w, dw), _step_length(z, dz)))[:, None]
        u, s = u + alpha_p * du, s + alpha_p * ds
        w, z = w + alpha_d * dw, z + alpha_d * dz
    return best_rows, best_columns, best_gaps, iteration
