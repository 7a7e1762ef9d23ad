"""`func`: exact hypergradient by reverse mode through K unrolled `torch.func` SGD steps.

    θ_{k+1} = SGD(θ_k, ∇_θ L_in(θ_k, λ)),   result = ∇_λ G(θ_K(λ))

The inner gradients are `torch.func.grad` of a `functional_call`; the outer `torch.func.grad`
differentiates through all K steps (second order: Hessian-vector products of L_in).
Memory grows linearly in K.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import Evaluator
from ..problem import BilevelProblem


def func(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    with Evaluator(problem) as ev:

        def outer_after_unroll(hp: dict[str, Tensor]) -> Tensor:
            params, state = problem.params(), problem.initial_state()
            for _ in range(problem.steps):
                grads = torch.func.grad(lambda p: ev.inner(p, hp))(params)
                params, state = ev.step(params, grads, state)
            return ev.outer(params)

        return torch.func.grad(outer_after_unroll)(hparams)
