"""`forward`: exact one-step hypergradient with the directional derivative in forward mode.

For one SGD step θ₁ = θ₀ − α·c·∇_θ L_in(θ₀, λ) (c from momentum/nesterov, see `SGDConfig`):

    dG(θ₁)/dλ = −α ∇_λ ⟨∇_θ L_in(θ₀, λ), c·v⟩,    v = ∇_θ G(θ₁)

⟨∇_θ L_in, w⟩ is the derivative of L_in along w, computed by `torch.func.jvp` (one forward pass
with tangents) and then differentiated in λ by reverse mode. No Hessian and no graph through
a backward pass is built, so the cost is about two plain steps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import Evaluator, grad_dict
from ..problem import BilevelProblem


def forward(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    with Evaluator(problem) as ev:
        theta0 = problem.params()
        w = ev.step_direction(ev.outer_grad(ev.first_step(hparams)), hparams)
        _, directional = torch.func.jvp(lambda p: ev.coupled(p, hparams), (theta0,), (w,))
        grads = grad_dict(directional, hparams)
    return {k: -problem.lr * g for k, g in grads.items()}
