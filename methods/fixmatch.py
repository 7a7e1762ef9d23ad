"""FixMatch (Sohn et al., 2020), the base of Meta-Threshold.

    L = L_sup(x, y) + λ_u · mean_j 1[max p_j ≥ τ] · CE(f(A_s(u_j)), argmax p_j),
    p_j = softmax(f(A_w(u_j)) / T)  (no gradient)

One forward pass over [x, weak u, strong u] (BatchNorm statistics over all of it). When the
unlabeled ground truth is known, logs how many pseudo labels pass the threshold correctly and
wrongly (Meta-T Fig. 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bilevel import Shard
from bilevel.parallel import LOCAL

from .base import NON_NEGATIVE, POSITIVE, PROBABILITY, Batch, Method, hp


@dataclass
class FixMatchConfig:
    weight: float = hp(1.0, NON_NEGATIVE)
    threshold: float = hp(0.95, PROBABILITY)
    temperature: float = hp(1.0, POSITIVE)


def pseudo_label_counts(
    labels: Tensor, mask: Tensor, truth: Tensor | None, shard: Shard = LOCAL
) -> dict[str, float]:
    """Mask rate, and the numbers of correct and wrong pseudo labels that pass the threshold."""
    logs = {"mask_rate": shard.mean(mask.float())}
    if truth is not None:
        passed = mask.bool()
        logs["pl_correct"] = (passed & (labels == truth)).sum().float()
        logs["pl_wrong"] = (passed & (labels != truth)).sum().float()
    return logs


def forward_all(model: torch.nn.Module, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """One forward pass over [x, weak u, strong u], split back."""
    n, m = len(batch.x), len(batch.u[0])
    out = model(torch.cat([batch.x, batch.u[0], batch.u[1]]))
    return out[:n], out[n : n + m], out[n + m :]


class FixMatch(Method):
    name = "fixmatch"
    Config = FixMatchConfig
    views = ("weak", "strong")
    tasks = ("classification",)

    def mask(self, batch: Batch, probs: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The pseudo labels that count: max p_j ≥ `threshold` (Meta-T overrides this)."""
        return (probs.max(1).values >= self.cfg.threshold).to(probs.dtype), {}

    def loss(self, batch: Batch):
        out_x, out_w, out_s = forward_all(self.model, batch)
        probs = (out_w.detach() / self.cfg.temperature).softmax(1)
        labels = probs.argmax(1)
        mask, logs = self.mask(batch, probs)
        sup = self.task.supervised(out_x, batch.y, self.shard)
        unsup = self.shard.mean(F.cross_entropy(out_s, labels, reduction="none") * mask)
        logs |= {"sup": sup.detach(), "unsup": unsup.detach()}
        logs |= pseudo_label_counts(labels, mask, batch.u_true, self.shard)
        return sup + self.cfg.weight * unsup, logs
