"""`auto`: the fastest exact estimator that serves the problem, by a rule derived from the
declarations: the exact estimators in order of their `priority` (analytic, forward, func, higher),
the first whose `refusal` is None. In effect:

    analytic   K = 1, a one-layer model and a `bilevel.ImputedTargets` inner loss (closed form)
    forward    any other K = 1 problem: one jvp of the coupled loss, no Hessian and no graph
               through a backward pass (`make compare` measures it below `func` and `higher`)
    func       K > 1, or a learned learning rate (`lr_scale`): reverse mode through the
               unrolled steps

It never picks an approximation (an estimator declared `exact = False`, such as `fd`,
`implicit` or `truncated`): those are used only when named. `choose(problem)` says which one a
problem gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..problem import BilevelProblem
from .base import Estimator


def _candidates() -> list[type[Estimator]]:
    from . import ESTIMATORS  # the registry is built from the modules, this one included

    exact = [cls for cls in ESTIMATORS.values() if cls.exact and cls is not Auto]
    return sorted(exact, key=lambda cls: cls.priority)


def choose(problem: BilevelProblem, hparams: dict[str, Tensor] | None = None) -> str:
    """The name of the estimator `auto` runs on `problem` (with `hparams`: `analytic` covers
    the imputed targets alone, so other keys beside them send it to `forward`). ValueError with
    each candidate's reason if none serves it."""
    reasons = []
    for cls in _candidates():
        reason = cls().refusal(problem, hparams)
        if reason is None:
            return cls.name
        reasons.append(reason)
    raise ValueError("auto: no exact estimator serves this problem: " + "; ".join(reasons))


@dataclass(frozen=True)
class Auto(Estimator):
    name = "auto"
    summary = "the fastest exact estimator that serves the problem (bilevel.choose)"
    exact = True
    priority = 100
    steps = (1, None)
    learned_lr = True
    compared = ()  # it runs one of the others

    @classmethod
    def optimizer_refusal(cls, optimizer: str, weight_decay: float = 0.0) -> str | None:
        reasons = [c.optimizer_refusal(optimizer, weight_decay) for c in _candidates()]
        return None if None in reasons else reasons[0]

    def refuses(self, problem: BilevelProblem, hparams: dict[str, Tensor] | None) -> str | None:
        try:
            choose(problem, hparams)
        except ValueError as err:
            return str(err)
        return None

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        from . import ESTIMATORS

        return ESTIMATORS[choose(problem, hparams)]()(problem, hparams)
