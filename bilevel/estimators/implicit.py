"""`implicit`: implicit-function-theorem hypergradient for inner problems near convergence.

If θ* minimises L_in(θ, λ) + (wd/2)‖θ‖², then with H = ∇²_θ L_in(θ*, λ) + wd·I

    dG(θ*)/dλ = −∂/∂λ ⟨∇_θ L_in(θ*, λ), q⟩,     H q = ∇_θ G(θ*)

(as in hypertorch and betty). θ* is taken as θ_K, the point after the problem's K SGD steps
(K = 0: the model's current parameters); nothing is differentiated through those steps.
q is found by conjugate gradient (`method="cg"`, H must be positive definite) or the Neumann
series q ≈ α Σ_{j<iters} (I − αH)^j v (`method="neumann"`, α = the inner lr by default).
Hessian-vector products are forward-over-reverse (`torch.func.jvp` of `torch.func.grad`).
The result is exact only at a stationary point; far from one it is a different quantity
than the unrolled hypergradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import Evaluator, axpy, dot, grad_dict
from ..problem import BilevelProblem
from ..sgd import Params


def implicit(
    problem: BilevelProblem,
    hparams: dict[str, Tensor],
    *,
    method: str = "cg",
    iters: int = 100,
    tol: float = 1e-12,
    alpha: float | None = None,
) -> dict[str, Tensor]:
    wd = problem.optim.weight_decay
    with Evaluator(problem, precise=True) as ev:  # CG needs float32 under autocast
        theta, buffers = problem.params(), problem.initial_state()
        for _ in range(problem.steps):
            theta, buffers = ev.step(theta, ev.inner_grad(theta, hparams), buffers)
        theta = {k: v.detach() for k, v in theta.items()}
        const = {k: v.detach() for k, v in hparams.items()}
        grad_in = torch.func.grad(lambda p: ev.inner(p, const))

        def hvp(u: Params) -> Params:
            _, hu = torch.func.jvp(grad_in, (theta,), (u,))
            return axpy(hu, wd, u) if wd else hu

        v = ev.outer_grad(theta)
        if method == "cg":
            q = _conjugate_gradient(hvp, v, iters, tol)
        else:
            q = _neumann(hvp, v, iters, problem.lr if alpha is None else alpha)
        _, directional = torch.func.jvp(lambda p: ev.coupled(p, hparams), (theta,), (q,))
        grads = grad_dict(directional, hparams)
    return {k: -g for k, g in grads.items()}


def _conjugate_gradient(hvp, b: Params, iters: int, tol: float) -> Params:
    """x ≈ H⁻¹b; stops at the current iterate where pᵀHp ≤ 0 (H singular or indefinite along p,
    where CG's step is undefined)."""
    x = {k: torch.zeros_like(t) for k, t in b.items()}
    r = dict(b)
    p = dict(b)
    rr = dot(r, r)
    stop = tol * rr
    for _ in range(iters):
        if rr <= stop or rr == 0:
            break
        hp = hvp(p)
        curvature = dot(p, hp)
        if curvature <= 0:
            break
        step = rr / curvature
        x = axpy(x, step, p)
        r = axpy(r, -step, hp)
        rr_new = dot(r, r)
        p = axpy(r, rr_new / rr, p)
        rr = rr_new
    return x


def _neumann(hvp, v: Params, iters: int, alpha: float) -> Params:
    term, total = dict(v), dict(v)
    for _ in range(iters - 1):
        term = axpy(term, -alpha, hvp(term))
        total = axpy(total, 1.0, term)
    return {k: alpha * t for k, t in total.items()}
