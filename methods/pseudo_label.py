"""Pseudo-Label (Lee, 2013), the base of Learning to Impute's PL variants.

    L = L_sup(x, y) + λ(t) · mean_j m_j ℓ(f(u_j''), ŷ_j)

ŷ comes from the model's own prediction on a first view u' (no gradient), moved into the frame
of a second view u'' (landmarks); for classes it is the arg-max, kept where the confidence
reaches `threshold` (m_j), and ℓ is cross-entropy; for landmarks ℓ is the squared error.
λ(t) ramps linearly from 0 to `weight` over the first `ramp` fraction of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Batch, Method, linear_ramp


@dataclass
class PseudoLabelConfig:
    weight: float = 1.0
    ramp: float = 0.4
    threshold: float = 0.95


class PseudoLabel(Method):
    name = "pseudo_label"
    Config = PseudoLabelConfig
    views = ("weak", "weak")

    @torch.no_grad()
    def pseudo_labels(self, batch: Batch):
        """(targets in view 2, mask): hard labels ≥ threshold, or shifted landmarks."""
        pred = self.task.prediction(self.model(batch.u[0]))
        if self.task.kind == "classification":
            conf, labels = pred.max(1)
            return labels, (conf >= self.cfg.threshold).to(pred.dtype)
        target = batch.to_second_view(self.task, pred)
        return target, torch.ones(len(target), dtype=pred.dtype, device=pred.device)

    def unlabeled_loss(self, out, target, mask):
        if self.task.kind == "classification":
            per = F.cross_entropy(out, target, reduction="none")
        else:
            per = (out - target).pow(2).mean(1)
        return (per * mask).mean()

    def loss(self, batch: Batch):
        target, mask = self.pseudo_labels(batch)
        sup = self.task.supervised(self.model(batch.x), batch.y)
        unsup = self.unlabeled_loss(self.model(batch.u[1]), target, mask)
        weight = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        return sup + weight * unsup, {
            "sup": sup.item(),
            "unsup": unsup.item(),
            "mask_rate": float(mask.mean()),
        }
