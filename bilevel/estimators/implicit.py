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

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..forward_ad import load_jvp_decompositions
from ..functional import Evaluator, axpy, dot, grad_dict
from ..problem import BilevelProblem
from ..sgd import Params
from .base import COUNT, NON_NEGATIVE, POSITIVE, Estimator, one_of, option, optional

HVP = Callable[[Params], Params]  # u ↦ H u


@dataclass(frozen=True)
class AtStationaryPoint(Estimator):
    """What the estimators that assume θ_K is the inner stationary point refuse (no `name`:
    not an estimator of its own)."""

    @classmethod
    def optimizer_refusal(cls, optimizer: str, weight_decay: float = 0.0) -> str | None:
        if optimizer == "adamw" and weight_decay:
            return (
                f"{cls.name}: AdamW's decoupled weight decay has no inner objective whose "
                "stationary point its steps reach; use optimizer='adam' (L2 decay) or "
                "weight_decay=0"
            )
        return super().optimizer_refusal(optimizer, weight_decay)


@dataclass(frozen=True)
class Implicit(AtStationaryPoint):
    name = "implicit"
    summary = "implicit function theorem at θ_K, H⁻¹ by conjugate gradient or Neumann series"
    exact = False  # exact at a stationary point only
    priority = 20
    steps = (0, None)
    # away from a stationary point it is another quantity than the unrolled hypergradient
    # `make compare`'s one-step problems measure against
    compared = ()
    method: str = option("cg", one_of("cg", "neumann"), "how H q = ∇G is solved")
    iters: int = option(100, COUNT, "CG iterations or Neumann terms")
    tol: float = option(1e-12, NON_NEGATIVE, "CG stops at ‖r‖² ≤ tol·‖∇G‖²")
    alpha: float | None = option(None, optional(POSITIVE), "Neumann's step (None: the inner lr)")

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        return implicit(
            problem, hparams, method=self.method, iters=self.iters, tol=self.tol, alpha=self.alpha
        )


def implicit(
    problem: BilevelProblem,
    hparams: dict[str, Tensor],
    *,
    method: str = "cg",
    iters: int = 100,
    tol: float = 1e-12,
    alpha: float | None = None,
) -> dict[str, Tensor]:
    def solve(hessian: HVP, wd: float, v: Params) -> Params:
        def hvp(u: Params) -> Params:  # (∇²L_in + wd·I) u
            return axpy(hessian(u), wd, u) if wd else hessian(u)

        if method == "cg":
            return _conjugate_gradient(hvp, v, iters, tol)
        return _neumann(hvp, v, iters, problem.lr if alpha is None else alpha)

    return implicit_with(problem, hparams, solve)


def implicit_with(
    problem: BilevelProblem,
    hparams: dict[str, Tensor],
    solve: Callable[[HVP, float, Params], Params],
) -> dict[str, Tensor]:
    """−∂/∂λ ⟨∇_θ L_in(θ*, λ), q⟩ with q = solve(hessian, wd, v) ≈ (∇²L_in + wd·I)⁻¹v at θ*,
    v = ∇_θ G(θ*), θ* = θ_K taken without a graph, and hessian(u) = ∇²_θ L_in(θ*, λ) u (what
    `implicit` and `nystrom` share; `hessian` also maps over a leading batch dimension under
    `torch.func.vmap`)."""
    wd = problem.optim.weight_decay
    with Evaluator(problem, precise=True) as ev:  # CG needs float32 under autocast
        theta, buffers = problem.params(), problem.initial_state()
        for _ in range(problem.steps):
            theta, buffers = ev.step(theta, ev.inner_grad(theta, hparams), buffers)
        theta = {k: v.detach() for k, v in theta.items()}
        const = {k: v.detach() for k, v in hparams.items()}
        grad_in = torch.func.grad(lambda p: ev.inner(p, const))
        load_jvp_decompositions()

        def hessian(u: Params) -> Params:
            return torch.func.jvp(grad_in, (theta,), (u,))[1]

        v = ev.outer_grad(theta)
        q = solve(hessian, wd, v)
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
