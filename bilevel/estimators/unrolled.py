"""`func`: exact hypergradient by reverse mode through K unrolled functional SGD/Adam steps.

    θ_{k+1} = step(θ_k, ∇_θ L_in(θ_k, λ)),   result = ∇_λ G(θ_K(λ))

Each inner gradient is `torch.autograd.grad(create_graph=True)` of a `functional_call` at the
virtual parameters, so the final backward differentiates through all K steps (second order:
Hessian-vector products of L_in). This is the arithmetic of nested `torch.func.grad` transforms
(bit-identical results) without their per-call overhead. Memory grows linearly in K;
`checkpoint=True` keeps only each step's parameters and optimizer state and recomputes the
step's activations during the backward pass (`torch.utils.checkpoint`, non-reentrant): less
memory for about one more inner forward and backward per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as recompute

from ..functional import Evaluator, grad_dict, leaves_of
from ..problem import BilevelProblem
from .base import BOOL, Estimator, option


@dataclass(frozen=True)
class Func(Estimator):
    name = "func"
    summary = "reverse mode through the K unrolled steps (torch.func arithmetic)"
    exact = True
    priority = 2
    learned_lr = True
    checkpoint: bool = option(False, BOOL, "recompute each step's activations in the backward")

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        return func(problem, hparams, checkpoint=self.checkpoint)


def func(
    problem: BilevelProblem, hparams: dict[str, Tensor], *, checkpoint: bool = False
) -> dict[str, Tensor]:
    """The unrolled hypergradient (also what other estimators reuse)."""
    return unroll(problem, hparams, checkpoint=checkpoint)


def unroll(
    problem: BilevelProblem,
    hparams: dict[str, Tensor],
    *,
    checkpoint: bool = False,
    detached: int = 0,
) -> dict[str, Tensor]:
    """∇_λ G(θ_K) by reverse mode through steps `detached` … K−1; the first `detached` steps are
    taken without a graph (θ_detached and the optimizer state then enter as constants)."""
    with Evaluator(problem) as ev:

        def step(params, state, hp):
            grads = grad_dict(ev.inner(params, hp), params, create_graph=True)
            return ev.step(params, grads, state, hp)

        params, state = problem.params(), problem.initial_state()
        if detached:
            const = {k: v.detach() for k, v in hparams.items()}
            for _ in range(detached):
                grads = ev.inner_grad(params, const)
                with torch.no_grad():
                    params, state = ev.step(params, grads, state, const)
        params = leaves_of(params)
        for _ in range(problem.steps - detached):
            if checkpoint:
                params, state = recompute(step, params, state, hparams, use_reentrant=False)
            else:
                params, state = step(params, state, hparams)
        return grad_dict(ev.outer(params), hparams)
