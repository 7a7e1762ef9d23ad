"""`forward`: exact one-step hypergradient with the directional derivative in forward mode.

For one SGD step θ₁ = θ₀ − α·c·∇_θ L_in(θ₀, λ) (c from momentum/nesterov, see `SGDConfig`):

    dG(θ₁)/dλ = −α ∇_λ ⟨∇_θ L_in(θ₀, λ), c·v⟩,    v = ∇_θ G(θ₁)

⟨∇_θ L_in, w⟩ is the derivative of L_in along w, computed in forward mode (one forward pass
with tangents, `directional`) and then differentiated in λ by reverse mode. No Hessian and no
graph through a backward pass is built, so the cost is about two plain steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn

from ..forward_ad import load_jvp_decompositions
from ..functional import Evaluator, grad_dict, norm_layers
from ..problem import BilevelProblem
from ..sgd import Params
from .base import Estimator


def directional(
    fn: Callable[[Params], Tensor], theta: Params, w: Params, model: nn.Module | None = None
) -> Tensor:
    """⟨∇_θ fn(θ), w⟩ at `theta` (fn scalar), by forward mode: one evaluation of fn on dual
    tensors θ + εw. The result is differentiable in reverse mode with respect to the tensors fn
    closes over (λ).

    Under bfloat16 autocast, forward mode through BatchNorm needs care (torch 2.14): its rule
    gives a float32 tangent for a bfloat16 input (in eval mode, or without a tangent on its
    weight), which the next convolution refuses; `torch.func.jvp`'s rule does so always. So
    autograd's dual tensors are used, and inside autocast the BatchNorm layers of `model` take
    their input in float32 during this evaluation (`tests/bilevel/test_amp.py`)."""
    load_jvp_decompositions()
    with fwAD.dual_level(), _norms_in_float32(model):
        out = fn({k: fwAD.make_dual(v, w[k]) for k, v in theta.items()})
        tangent = fwAD.unpack_dual(out).tangent
    return torch.zeros_like(out) if tangent is None else tangent


@contextmanager
def _norms_in_float32(model: nn.Module | None) -> Iterator[None]:
    """Inside autocast: half-precision inputs of `model`'s BatchNorm layers cast to float32."""
    first = None if model is None else next(model.parameters(), None)
    if first is None or not torch.is_autocast_enabled(first.device.type):
        yield
        return

    def to_float32(module: nn.Module, args: tuple) -> tuple:
        half = (torch.bfloat16, torch.float16)
        return tuple(a.float() if torch.is_tensor(a) and a.dtype in half else a for a in args)

    handles = [m.register_forward_pre_hook(to_float32) for m in norm_layers(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class Forward(Estimator):
    name = "forward"
    summary = "one jvp of the coupled loss along the step direction, then reverse mode in λ"
    exact = True
    priority = 1
    steps = (1, 1)

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        return forward(problem, hparams)


def forward(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    with Evaluator(problem) as ev:
        theta0 = problem.params()
        w = ev.step_direction(ev.outer_grad(ev.first_step(hparams)), hparams)
        along = directional(lambda p: ev.coupled(p, hparams), theta0, w, problem.model)
        grads = grad_dict(along, hparams)
    return {k: -problem.lr * g for k, g in grads.items()}
