"""`truncated`: truncated back-propagation, reverse mode through the last T of the K steps.

    θ_{K−T} = K−T steps without a graph (θ_{K−T} and the optimizer state then constants)
    θ_{k+1} = step(θ_k, ∇_θ L_in(θ_k, λ)),  k = K−T … K−1,   result = ∇_λ G(θ_K(λ))

The first K−T steps cost one plain inner forward and backward each and keep no activations, so
memory grows with T instead of K. T = K is `func` (bit for bit: the same code, `unroll`); T = 1
is the one-step hypergradient at θ_{K−1} with the optimizer state after K−1 steps. Every loss
evaluation, inside the graph or not, sees the same random state (the Evaluator's rule), so
dropout masks are those `func` uses. A learned learning rate (`lr_scale`) is differentiated
through the last T steps only. Exact only for T = K.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..problem import BilevelProblem
from .base import COUNT, Estimator, option
from .unrolled import Func, unroll


@dataclass(frozen=True)
class Truncated(Estimator):
    name = "truncated"
    summary = "reverse mode through the last T of the K unrolled steps (truncated backprop)"
    exact = False  # exact for T = K only
    priority = 30
    steps = (1, None)
    optimizers = Func.optimizers
    learned_lr = True
    compared = ()  # at K = 1, T = 1 is `func`: no row of its own in the one-step table
    last: int = option(1, COUNT, "T: the unrolled steps differentiated (the last T of K)")

    def refuses(self, problem: BilevelProblem, hparams: dict[str, Tensor] | None) -> str | None:
        if self.last > problem.steps:
            return (
                f"truncated: option last={self.last} exceeds steps={problem.steps} (it "
                f"differentiates the last `last` of the `steps` inner steps)"
            )
        return None

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        """∇_λ G(θ_K) through the last `last` steps, θ_{K−last} taken as a constant."""
        return unroll(problem, hparams, detached=problem.steps - self.last)
