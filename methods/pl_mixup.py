"""Soft pseudo labels with mixup of labeled/unlabeled pairs: Meta-Gradient's training step
without its meta step (its base here).

    ỹ = softmax f(u)                        no gradient; eval mode by default (`eval_mode`)
    objective "alg1":  L = CE(f(x), y) + w(t) · mean_j ‖softmax f(u_j) − ỹ_j‖²
    objective "mixup" (Meta-Gradient Alg. 2): per-sample μ_i ~ Beta(γ, γ),
        x_i' = μ_i x_i + (1 − μ_i) u_i,   y_i' = μ_i onehot(y_i) + (1 − μ_i) ỹ_i,
        L = mean_i H(y_i', softmax f(x_i')) + w(t) · mean_j ‖softmax f(u_j) − ỹ_j‖²

H is the soft cross-entropy (the KL of the authors' code up to a constant). w(t) ramps linearly
to `weight` over the first `ramp` of training. With ỹ at the model's own prediction the
consistency term has no gradient; Meta-Gradient moves ỹ by its meta step (`targets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import BETA_SHAPE, FRACTION, NON_NEGATIVE, Batch, Method, hp, linear_ramp, training_mode
from .task import one_hot, soft_cross_entropy


@dataclass
class PLMixupConfig:
    # "alg1" or "mixup" (Meta-Gradient Alg. 2)
    objective: str = hp("mixup", choices=("alg1", "mixup"))
    gamma: float = hp(1.0, BETA_SHAPE)  # Beta(γ, γ) of the mixup objective
    weight: float = hp(1.0, NON_NEGATIVE)  # consistency weight after the ramp
    # 4000 of 400k steps in the Meta-Gradient authors' code
    ramp: float = hp(0.01, FRACTION)
    eval_mode: bool = True  # pseudo labels (and meta steps) with the model in eval mode


def mix_coefficients(n: int, gamma: float, like: Tensor) -> Tensor:
    """μ_i ~ Beta(γ, γ) for i < n, drawn as one (n, 1) sample as the Meta-Gradient authors do."""
    beta = torch.distributions.Beta(torch.tensor([gamma]), torch.tensor([gamma]))
    return beta.sample((n,)).view(n).to(like)


class PLMixup(Method):
    name = "pl_mixup"
    Config = PLMixupConfig
    tasks = ("classification",)

    def targets(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """ỹ = softmax f(u) (no gradient, BatchNorm statistics untouched)."""
        with training_mode(self.model, not self.cfg.eval_mode):
            return self.predict(self.model, batch.u[0]), {}

    def loss(self, batch: Batch):
        y_hat, logs = self.targets(batch)
        u = batch.u[0]
        w = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        if self.cfg.objective == "alg1":
            cls = self.task.supervised(self.model(batch.x), batch.y, self.shard)
        else:
            x_in, y_in = self.mixed_pairs(batch, y_hat)
            cls = self.shard.mean(soft_cross_entropy(self.model(x_in), y_in))
        cons = self.task.consistency(self.model(u), y_hat, self.shard)
        return cls + w * cons, {"cls": cls.detach(), "cons": cons.detach(), **logs}

    def mixed_pairs(self, batch: Batch, y_hat: Tensor) -> tuple[Tensor, Tensor]:
        """x_i' and y_i' of Alg. 2 for i < n = min(B_l, B_u) of the global batch; data
        parallel, this rank's rows of them (from the gathered batch)."""
        gather, u = self.shard.gather, batch.u[0]
        x, y, u, y_hat = gather(batch.x), gather(batch.y), gather(u), gather(y_hat)
        n = min(len(x), len(u))
        mu = mix_coefficients(n, self.cfg.gamma, u)
        rows = self.shard.rows(n)
        mu, x, y, u, y_hat = mu[rows], x[rows], y[rows], u[rows], y_hat[rows]
        m = mu.view(-1, *[1] * (u.dim() - 1))
        x_in = m * x + (1 - m) * u
        y_in = mu[:, None] * one_hot(y, y_hat.shape[1], y_hat) + (1 - mu[:, None]) * y_hat
        return x_in, y_in
