"""`sama`: SAMA (Choe et al., "Making Scalable Meta Learning Practical", NeurIPS 2023), as its
authors' library betty computes it (its `sama` and `precondition_adam`; the port in
tests/bilevel/test_sama.py reproduces them).

    dG/dλ ≈ −α [∇_λ L_in(θ₀ + εw, λ) − ∇_λ L_in(θ₀ − εw, λ)] / 2ε,   ε = r / ‖w‖,   w = D·v

with α the inner lr, v = ∇_θ G(θ₀) at the current parameters (no virtual step, as `fd` with
lookahead=False), the base Jacobian of the inner solution taken as the identity, and D the
inner optimizer's preconditioner, elementwise:

    SGD:        D = 1 (momentum, dampening and nesterov do not enter)
    Adam/AdamW: D = [(1 − β₁)β₂·v₀ − β₁(1 − β₂)·d·m₀] / (√v₁ + ε_adam)³,
                v₁ = β₂·v₀ + (1 − β₂)·d²

(m₀, v₀) the moments of the problem's state (zeros on a first step) and d the gradient of the
step from θ₀ (∇_θ L_in(θ₀, λ), plus wd·θ₀ under Adam's L2 decay): with ε_adam = 0, D is
∂(m₁/√v₁)/∂d, the derivative of Adam's update without bias correction (the step count does not
enter). On a first step (m₀ = v₀ = 0) D = 0 and so is the result.

Conventions and where this differs from betty:

* Scale: α·D is the derivative of the step θ₁ = θ₀ − α·u(d) as in `fd`, so the result is
  −α·∂²L_in/∂λ∂θ·D·v for every optimizer. betty folds α into D for Adam (the same result) but
  omits it for SGD, where its result is this one divided by α.
* Timing: betty evaluates D for the last real step (the state after it, whose old moments it
  recovers from the gradient it stores as `last_grad`). torch's optimizers keep no last
  gradient, so here D is that formula for the step from θ₀ with the problem's state and the
  gradient at θ₀ (the step every one-step estimator of this package describes).
* Under Adam's (coupled) weight decay d includes wd·θ₀ (the gradient the moments see); betty
  uses the raw gradient there. Equal for Adam without decay and for AdamW.
* The model is never written: θ₀ ± εw are virtual parameters (betty moves the weights in
  place and back; an earlier version of its `sama` did not move them back).
* ε: r/‖w‖ with w = 0 giving 0 (betty: r/(‖w‖ + 1e-15)). betty's default r is 1.0 (its
  `sama_adam_alpha`); this default, 1e-3, is `fd`'s (its error analysis applies: for SGD the
  two estimates differ only by `fd`'s momentum coefficient c, fd = c·sama).

One step only (K = 1): D and α describe the one step from θ₀ that the estimate stands for;
further steps are not modelled. Only forward and backward passes at θ₀ ± εw are needed, plus
one inner gradient at θ₀ for Adam's d. The two perturbed evaluations see the same batch and
dropout masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..functional import Evaluator
from ..problem import BilevelProblem
from ..sgd import Params
from .base import POSITIVE, Estimator, option
from .fd import central_difference


@dataclass(frozen=True)
class SAMA(Estimator):
    name = "sama"
    summary = "central difference along ∇G(θ₀) preconditioned by the optimizer's update (SAMA)"
    exact = False
    priority = 11
    steps = (1, 1)  # D and the lr describe the single step from θ₀
    compared = ({},)
    r: float = option(1e-3, POSITIVE, "the step ε‖w‖ of the difference (betty's alpha)")

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        return sama(problem, hparams, r=self.r)


def preconditioner(ev: Evaluator, hparams: dict[str, Tensor]) -> Params | None:
    """D by parameter name (see the module docstring); None for SGD (D = 1)."""
    problem = ev.problem
    if problem.optimizer == "sgd":
        return None
    cfg = problem.optim
    beta1, beta2 = cfg.betas
    grads = ev.first_grads(hparams)
    state = problem.initial_state()
    out: Params = {}
    for name, p in problem.params().items():
        d = grads[name].detach()
        if cfg.weight_decay and not cfg.decoupled:
            d = d + cfg.weight_decay * p
        s = state.get(name)
        if not s:  # first step: zero moments give D = 0
            out[name] = torch.zeros_like(d)
            continue
        m0, v0 = s["exp_avg"].to(d), s["exp_avg_sq"].to(d)
        v1 = beta2 * v0 + (1 - beta2) * d * d
        top = (1 - beta1) * beta2 * v0 - beta1 * (1 - beta2) * d * m0
        out[name] = top / (v1.sqrt() + cfg.eps) ** 3
    return out


def sama(
    problem: BilevelProblem, hparams: dict[str, Tensor], *, r: float = 1e-3
) -> dict[str, Tensor]:
    """−α [∇_λ L_in(θ₀ + εw) − ∇_λ L_in(θ₀ − εw)] / 2ε with w = D·∇_θ G(θ₀), ε = r/‖w‖."""
    with Evaluator(problem, precise=True) as ev:  # differences need float32 under autocast
        theta0 = problem.params()
        v = ev.outer_grad(theta0)
        scale_d = preconditioner(ev, hparams)
        w = v if scale_d is None else {n: scale_d[n] * t for n, t in v.items()}
        return central_difference(ev, theta0, w, hparams, r, problem.lr)
