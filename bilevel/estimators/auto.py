"""`auto`: the fastest exact estimator that serves the problem, by a fixed rule.

    analytic   K = 1, a one-layer model and a `bilevel.ImputedTargets` inner loss (closed form)
    forward    any other K = 1 problem: one jvp of the coupled loss, no Hessian and no graph
               through a backward pass (`make compare` measures it below `func` and `higher`)
    func       K > 1, or a learned learning rate (`lr_scale`): reverse mode through the
               unrolled steps

It never picks an approximation: `fd` (first order) and `implicit` (exact only at a stationary
point) are used only when named. `choose(problem)` says which one a problem gets.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import ImputedTargets
from ..problem import BilevelProblem
from .analytic import analytic, check_one_layer
from .forward import forward
from .unrolled import func


def choose(problem: BilevelProblem, hparams: dict[str, Tensor] | None = None) -> str:
    """The name of the estimator `auto` runs on `problem` (with `hparams`: `analytic` covers
    the imputed targets alone, so other keys beside them send it to `forward`)."""
    if problem.steps > 1 or problem.lr_scale is not None:  # (a learned lr: only unrolling)
        return "func"
    loss = problem.inner_loss
    if not isinstance(loss, ImputedTargets) or (hparams is not None and set(hparams) != {loss.key}):
        return "forward"
    try:
        check_one_layer(problem.model)
    except ValueError:
        return "forward"
    return "analytic"


def auto(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    chosen = choose(problem, hparams)
    return {"analytic": analytic, "forward": forward, "func": func}[chosen](problem, hparams)
