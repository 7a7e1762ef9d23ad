"""`analytic`: closed-form one-step hypergradient for one-layer models with imputed targets.

For a linear model o = Wx + b the output moves along a parameter direction w = (W_w, b_w) by
u_i = W_w x_i + b_w, so with θ₁ = θ₀ − α·c·∇_θ L_in and L_in = … + s Σ_i ℓ(o_i, z_i):

    ∂G(θ₁)/∂z_i = −α s (∂²ℓ/∂o∂z)(o_i, z_i)ᵀ u_i,       w = c·∇_θ G(θ₁)

and the cross derivative ∂²ℓ/∂o∂z is known in closed form (p = σ(o) or softmax(o)):

    mse          −2 I                 →  ∂G/∂z_i =  2αs u_i
    bce          −I                   →  ∂G/∂z_i =   αs u_i
    ce           p 1ᵀ − I             →  ∂G/∂z_i =   αs (u_i − ⟨p_i, u_i⟩)
    softmax_mse  −2 (diag p − p pᵀ)   →  ∂G/∂z_i =  2αs (p_i ⊙ u_i − p_i ⟨p_i, u_i⟩)

These generalise Learning-to-Impute App. B (Eq. 7 for bce, Eq. 11 for mse: there ∇_θ G is
Σ_H (σ(θ*ᵀx) − y)x, resp. 2Σ_H (θ*ᵀx − y)x, and u_i reduces to a sum of xᵀxᵘ similarities) and
the Meta-Gradient paper's Eq. 11 (softmax_mse: 2αs J_p u is the ε → 0 limit of its difference
of softmax outputs). ∇_θ G(θ₁) itself is an ordinary gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..functional import Evaluator
from ..losses import ImputedTargets
from ..problem import BilevelProblem
from .base import Estimator

_PASSIVE = (nn.Sequential, nn.Flatten, nn.Identity)


def one_layer_refusal(model: nn.Module) -> str | None:
    """Why `model` is not one nn.Linear (optionally after Flatten), or None."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    other = [type(m).__name__ for m in model.modules() if not isinstance(m, (nn.Linear, *_PASSIVE))]
    if len(linears) == 1 and not other:
        return None
    layers = [type(m).__name__ for m in model.modules() if not isinstance(m, nn.Sequential)]
    return (
        "analytic covers one-layer models only (one nn.Linear, optionally after Flatten); "
        f"this model has layers {layers}"
    )


@dataclass(frozen=True)
class Analytic(Estimator):
    name = "analytic"
    summary = "closed form for one-layer models with imputed targets (bilevel.ImputedTargets)"
    exact = True
    priority = 0
    steps = (1, 1)

    @classmethod
    def model_refusal(cls, model: nn.Module) -> str | None:
        return one_layer_refusal(model)

    def refuses(self, problem: BilevelProblem, hparams: dict[str, Tensor] | None) -> str | None:
        loss = problem.inner_loss
        if not isinstance(loss, ImputedTargets):
            return (
                "analytic needs the inner loss as bilevel.ImputedTargets (its closed form is "
                f"known); got {type(getattr(loss, '__wrapped__', loss)).__name__}. Use 'forward' "
                "or 'func' for general inner losses."
            )
        extra = sorted(set(hparams or {}) - {loss.key})
        if extra:
            return f"analytic covers imputed targets (hparams[{loss.key!r}]) only; also got {extra}"
        return None

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        return analytic(problem, hparams)


def analytic(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    """The closed form (the problem checked by `Analytic.refusal`)."""
    loss = problem.inner_loss
    with Evaluator(problem, precise=True) as ev:  # the closed form in float32 under autocast
        w = ev.step_direction(ev.outer_grad(ev.first_step(hparams)), hparams)
        with torch.no_grad():
            # o(θ) is linear in θ, so evaluating the model *at* w gives u_i = W_w x_i + b_w.
            u = functional_call(problem.model, w, (loss.x,))
            o = ev.f(problem.params())(loss.x)
    a = problem.lr * loss.scale
    if loss.kind == "mse":
        g = 2 * a * u
    elif loss.kind == "bce":
        g = a * u
    elif loss.kind == "ce":
        p = torch.softmax(o, dim=1)
        g = a * (u - (p * u).sum(1, keepdim=True))
    else:  # softmax_mse
        p = torch.softmax(o, dim=1)
        g = 2 * a * (p * u - p * (p * u).sum(1, keepdim=True))
    return {loss.key: g.reshape(hparams[loss.key].shape)}
