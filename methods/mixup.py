"""Interpolation Consistency Training (Verma et al., 2019), "mixup" here.

    L = L_sup(x, y) + λ(t) · ‖softmax f_θ(Mix_μ(u, u_π)) − Mix_μ(p_EMA(u), p_EMA(u_π))‖²

with μ ~ Beta(α, α) once per batch, π a random permutation of the unlabeled batch and p_EMA the
teacher's softmax. The base of Meta-Gradient's mixup protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import BETA_SHAPE, FRACTION, NON_NEGATIVE, Batch, Method, hp, linear_ramp


@dataclass
class MixupConfig:
    weight: float = hp(1.0, NON_NEGATIVE)
    ramp: float = hp(0.4, FRACTION)
    alpha: float = hp(1.0, BETA_SHAPE)  # Beta(α, α) of the mixup


class Mixup(Method):
    name = "mixup"
    data_parallel = False  # its mixup pairs samples across the global batch
    Config = MixupConfig
    tasks = ("classification",)
    needs_teacher = True

    def loss(self, batch: Batch):
        u = batch.u[0]
        mu = float(torch.distributions.Beta(self.cfg.alpha, self.cfg.alpha).sample())
        perm = torch.randperm(len(u))
        with torch.no_grad():
            p = self.task.prediction(self.teacher(u))
        target = mu * p + (1 - mu) * p[perm]
        sup = self.task.supervised(self.model(batch.x), batch.y)
        cons = self.task.consistency(self.model(mu * u + (1 - mu) * u[perm]), target)
        weight = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        return sup + weight * cons, {"sup": sup.detach(), "unsup": cons.detach(), "mix": mu}
