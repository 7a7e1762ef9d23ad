"""`forward`: exact one-step hypergradient with the directional derivative in forward mode.

For one SGD step θ₁ = θ₀ − α·c·∇_θ L_in(θ₀, λ) (c from momentum/nesterov, see `SGDConfig`):

    dG(θ₁)/dλ = −α ∇_λ ⟨∇_θ L_in(θ₀, λ), c·v⟩,    v = ∇_θ G(θ₁)

⟨∇_θ L_in, w⟩ is the derivative of L_in along w, computed in forward mode (one forward pass
with tangents, `directional`) and then differentiated in λ by reverse mode. No Hessian and no
graph through a backward pass is built, so the cost is about two plain steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from ..functional import Evaluator, grad_dict
from ..problem import BilevelProblem
from ..sgd import Params


def directional(fn: Callable[[Params], Tensor], theta: Params, w: Params) -> Tensor:
    """⟨∇_θ fn(θ), w⟩ at `theta` (fn scalar), by forward mode: one evaluation of fn on dual
    tensors θ + εw. The result is differentiable in reverse mode with respect to the tensors fn
    closes over (λ). Autograd's dual tensors, not `torch.func.jvp`: under bfloat16 autocast,
    torch.func.jvp's BatchNorm rule hands the next convolution a float32 tangent, which it
    refuses (torch 2.14; `tests/bilevel/test_amp.py`, a convolution after BatchNorm)."""
    with fwAD.dual_level():
        out = fn({k: fwAD.make_dual(v, w[k]) for k, v in theta.items()})
        tangent = fwAD.unpack_dual(out).tangent
    return torch.zeros_like(out) if tangent is None else tangent


def forward(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    with Evaluator(problem) as ev:
        theta0 = problem.params()
        w = ev.step_direction(ev.outer_grad(ev.first_step(hparams)), hparams)
        along = directional(lambda p: ev.coupled(p, hparams), theta0, w)
        grads = grad_dict(along, hparams)
    return {k: -problem.lr * g for k, g in grads.items()}
