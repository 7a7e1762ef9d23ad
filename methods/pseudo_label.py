"""Pseudo-Label (Lee, 2013), the base of Learning to Impute's PL variants and Meta-Weight.

    L = L_sup(x, y) + λ(t) · mean_j m_j ℓ(f(u_j''), ŷ_j)

ŷ comes from the model's own prediction on a first view u' (no gradient), moved into the frame
of a second view u'' (landmarks). Classes, `soft=false`: ŷ is the arg-max, kept where the
confidence reaches `threshold` (m_j), ℓ is cross-entropy. Classes, `soft=true` (the Learning to
Impute paper's PL base, App. A.2): ŷ = softmax f(u'), ℓ = ‖softmax f(u'') − ŷ‖², m = 1.
Landmarks: ℓ is the squared error, m = 1. λ(t) ramps linearly from 0 to `weight` over the
first `ramp` fraction of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import FRACTION, NON_NEGATIVE, PROBABILITY, Batch, Method, hp, linear_ramp

Targets = tuple[Tensor, Tensor, dict[str, float]]  # targets, per-sample mask, logs


@dataclass
class PseudoLabelConfig:
    weight: float = hp(1.0, NON_NEGATIVE)
    ramp: float = hp(0.4, FRACTION)
    threshold: float = hp(0.95, PROBABILITY)
    soft: bool = False  # classes: softmax targets with softmax-MSE (no threshold)


class PseudoLabel(Method):
    name = "pseudo_label"
    Config = PseudoLabelConfig
    views = ("weak", "weak")

    def hard(self) -> bool:
        return self.task.kind == "classification" and not self.cfg.soft

    def imputer(self) -> torch.nn.Module:
        """ψ, the network whose prediction on u' makes the targets: the model itself."""
        return self.model

    @torch.no_grad()
    def targets(self, batch: Batch) -> Targets:
        """(targets in view 2's frame, per-sample mask m, logs)."""
        pred = self.task.prediction(self.imputer()(batch.u[0]))
        if self.hard():
            conf, labels = pred.max(1)
            return labels, (conf >= self.cfg.threshold).to(pred.dtype), {}
        target = batch.to_second_view(self.task, pred)
        return target, torch.ones(len(target), dtype=pred.dtype, device=pred.device), {}

    def per_sample_loss(self, out: Tensor, target: Tensor) -> Tensor:
        if self.hard():
            return F.cross_entropy(out, target, reduction="none")
        return self.task.consistency_per_sample(out, target)

    def unlabeled_loss(self, out: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return self.shard.mean(self.per_sample_loss(out, target) * mask)

    def loss(self, batch: Batch, targets: Targets | None = None):
        """The loss with `targets` (default: this method's own `targets(batch)`)."""
        target, mask, logs = self.targets(batch) if targets is None else targets
        sup = self.task.supervised(self.model(batch.x), batch.y, self.shard)
        unsup = self.unlabeled_loss(self.model(batch.u[1]), target, mask)
        weight = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        return sup + weight * unsup, {
            "sup": sup.detach(),
            "unsup": unsup.detach(),
            "mask_rate": self.shard.mean(mask.float()),
            **logs,
        }
