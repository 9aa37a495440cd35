"""Optimal transport solvers with uniform marginals for the OTDD outer problem.

Entropic plans come from Sinkhorn scaling in torch on the features' device. The scaling form
needs only matrix-vector products (one pass over the kernel per half-iteration), about 30x
cheaper per iteration than a log-domain update on CPU, so it is the fast path; the kernel is
shifted by row offsets so that no row underflows, and a problem whose scalings still overflow
is re-solved in the log domain. Plans are kept factored as diag(u) K diag(v) and applied
through `transpose_matmul`: the n x m plan is never materialised.

Exact plans and values come from POT's network simplex (`ot.emd`, `ot.emd2`) with a large
iteration cap and a check of its result code: with POT's default cap it silently returns a
non-optimal value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

#: Network simplex iteration cap; POT's default (1e5) stops early on a few hundred points.
EMD_MAX_ITER = 10**7
#: Elements of one temporary block in `ScaledPlan.linear_cost` (16 MB in float32).
_BLOCK_ELEMENTS = 2**22


@dataclass(frozen=True)
class ScaledPlan:
    """A transport plan P = diag(u) K diag(v) kept in factored form.

    When K came from log-kernel values L (L = -C / epsilon), `row_shift` and `col_shift` record
    how: L_ij = log K_ij + row_shift_i + col_shift_j (None: no shift), so `linear_cost` can
    recover <P, C> from K alone.
    """

    u: torch.Tensor
    kernel: torch.Tensor
    v: torch.Tensor
    row_shift: torch.Tensor | None = None
    col_shift: torch.Tensor | None = None

    def transpose_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """P^T x for x (n, k), without forming P."""
        return (self.kernel.T @ (self.u[:, None] * x)) * self.v[:, None]

    def linear_cost(self, epsilon: float) -> torch.Tensor:
        """<P, C> for the cost C = -epsilon * L the kernel was built from (no gradient).

        One elementwise pass over K (K log K, in row blocks) instead of the n x m x d matmul
        of `transpose_matmul`: the value-only path, e.g. alignment losses read under no_grad.
        """
        kernel, u, v = self.kernel, self.u, self.v
        block = max(1, _BLOCK_ELEMENTS // max(1, kernel.shape[1]))
        tiny = torch.finfo(kernel.dtype).tiny  # K log K -> 0 where K underflowed to 0
        entropy_part = kernel.new_zeros(())
        for start in range(0, len(kernel), block):
            rows = kernel[start : start + block]
            k_log_k = rows.clamp_min(tiny).log_().mul_(rows)
            entropy_part += u[start : start + block] @ (k_log_k @ v)
        total = entropy_part
        if self.row_shift is not None:
            total = total + (u * self.row_shift) @ (kernel @ v)
        if self.col_shift is not None:
            total = total + (v * self.col_shift) @ (kernel.T @ u)
        return -epsilon * total


def sinkhorn(log_kernel: Callable[[], torch.Tensor], max_iter: int, tol: float) -> ScaledPlan:
    """Entropic plan between uniform marginals for the log-kernel -C/eps (n, m).

    `log_kernel` builds a fresh (n, m) tensor that may be overwritten; it is called a second
    time only for the log-domain fallback. Stops when the l1 marginal error (total mass 1) is
    below `tol` or after `max_iter` iterations.
    """
    plan = _scaling_sinkhorn(log_kernel(), max_iter, tol)
    return plan if plan is not None else _log_sinkhorn(log_kernel(), max_iter, tol)


def _scaling_sinkhorn(logits: torch.Tensor, max_iter: int, tol: float) -> ScaledPlan | None:
    """Sinkhorn in scaling form on `logits` (overwritten); None if the scalings overflow."""
    n, m = logits.shape
    a, b = 1.0 / n, 1.0 / m
    row_max = logits.amax(1)
    kernel = logits.sub_(row_max[:, None]).exp_()  # every row keeps a 1
    u = torch.full((n,), a, dtype=kernel.dtype, device=kernel.device)
    v = torch.ones(m, dtype=kernel.dtype, device=kernel.device)
    for _ in range(max_iter):
        u = a / (kernel @ v)
        column_mass = kernel.T @ u
        error = (v * column_mass - b).abs().sum().item()
        v = b / column_mass
        if not math.isfinite(error):
            return None
        if error < tol:
            break
    if not (torch.isfinite(u).all() and torch.isfinite(v).all()):
        return None
    return ScaledPlan(u, kernel, v, row_shift=row_max)


def _log_sinkhorn(logits: torch.Tensor, max_iter: int, tol: float) -> ScaledPlan:
    """Log-domain Sinkhorn on `logits` (overwritten): slower, but cannot under- or overflow.

    P = a b exp(logits + f + g); f makes the rows exact, the column error after the f update
    is sum_j b |exp(g_j - g'_j) - 1| with g' the next g.
    """
    n, m = logits.shape
    a, b = 1.0 / n, 1.0 / m
    f = torch.zeros(n, dtype=logits.dtype, device=logits.device)
    g = torch.zeros(m, dtype=logits.dtype, device=logits.device)
    for _ in range(max_iter):
        f = -torch.logsumexp(logits + g[None, :], dim=1) - math.log(b)
        g_next = -torch.logsumexp(logits + f[:, None], dim=0) - math.log(a)
        error = b * torch.expm1(g - g_next).abs().sum().item()
        g = g_next
        if error < tol:
            break
    kernel = logits.add_(f[:, None]).add_(g[None, :]).exp_()
    return ScaledPlan(
        torch.full((n,), a, dtype=kernel.dtype, device=kernel.device),
        kernel,
        torch.full((m,), b, dtype=kernel.dtype, device=kernel.device),
        row_shift=-f,
        col_shift=-g,
    )


def symmetric_sinkhorn(logits: torch.Tensor, max_iter: int, tol: float) -> ScaledPlan:
    """Entropic self-transport plan of one uniform cloud for the symmetric log-kernel -C/eps.

    Overwrites `logits`. The self-cost is zero on the diagonal by definition (the diagonal is
    set to 0 against rounding), so every row of the kernel holds a 1 and the scaling form is
    stable. The averaged update u <- sqrt(u * a / (K u)) converges in a few iterations.
    """
    n = len(logits)
    a = 1.0 / n
    kernel = logits.fill_diagonal_(0.0).exp_()
    u = torch.full((n,), math.sqrt(a), dtype=kernel.dtype, device=kernel.device)
    for _ in range(max_iter):
        row_mass = kernel @ u
        error = (u * row_mass - a).abs().sum().item()
        u = torch.sqrt(u * a / row_mass)
        if error < tol:
            break
    return ScaledPlan(u, kernel, u)


def exact_plan(cost: torch.Tensor) -> ScaledPlan:
    """Exact plan between uniform marginals (POT network simplex, float64 on CPU)."""
    import ot

    plan, log = ot.emd(
        [], [], cost.detach().double().cpu().numpy(), numItermax=EMD_MAX_ITER, log=True
    )
    _check_emd(log)
    plan_t = torch.from_numpy(plan).to(device=cost.device, dtype=cost.dtype)
    ones_n = torch.ones(len(plan_t), dtype=cost.dtype, device=cost.device)
    ones_m = torch.ones(plan_t.shape[1], dtype=cost.dtype, device=cost.device)
    return ScaledPlan(ones_n, plan_t, ones_m)


def exact_cost(cost: np.ndarray) -> float:
    """Exact OT value between uniform marginals for a float64 cost matrix."""
    import ot

    value, log = ot.emd2([], [], cost, numItermax=EMD_MAX_ITER, log=True)
    _check_emd(log)
    return float(value)


def _check_emd(log: dict[str, object]) -> None:
    if log["result_code"] != 1:
        raise RuntimeError(f"exact OT did not reach the optimum: {log['warning']}")
