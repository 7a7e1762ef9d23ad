"""What the meta-learning methods share: the virtual step of the real optimizer, the call to
`bilevel.hypergradient` with the configured estimator, and small target utilities."""

from __future__ import annotations

import torch
from torch import Tensor

from bilevel import BilevelProblem, frozen_norm_stats, hypergradient
from bilevel.problem import InnerLoss, OuterLoss

from .base import Method


class MetaMethod(Method):
    """A method whose step needs a hypergradient. The virtual step is the real optimizer's
    (`BilevelProblem.from_optimizer`: its current lr, momentum, nesterov, weight decay and
    momentum buffers), with the learning rate scaled by `lr_scale` where a paper says so."""

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def problem(
        self,
        inner: InnerLoss,
        outer: OuterLoss,
        coupled: InnerLoss | None = None,
        lr_scale: float = 1.0,
    ) -> BilevelProblem:
        return BilevelProblem.from_optimizer(
            self.model,
            self.optimizer,
            inner,
            outer,
            lr=self.current_lr() * lr_scale,
            coupled_loss=coupled,
        )

    def hypergradient(
        self, problem: BilevelProblem, hparams: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        return hypergradient(problem, hparams, self.estimator, **self.estimator_kw)

    @torch.no_grad()
    def predict(self, net: torch.nn.Module, x: Tensor) -> Tensor:
        """The task's prediction of `net` on `x` without touching BatchNorm statistics."""
        with frozen_norm_stats(net):
            return self.task.prediction(net(x))


def renormalise(y: Tensor) -> Tensor:
    """Clip soft labels at 0 and rescale rows to sum 1 (rows summing to 0 are left as they are),
    as the Meta-Gradient authors' code does after the meta step."""
    y = y.clamp_min(0)
    total = y.sum(1, keepdim=True)
    return torch.where(total > 0, y / total.clamp_min(1e-30), y)
