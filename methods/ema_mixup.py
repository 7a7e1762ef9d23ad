"""EMA-teacher soft pseudo labels with MixUp over Concat(X, U): Meta-Semi with every weight 1
(its Table 6, "reweighting with the constant 1"), the base Meta-Semi builds on here.

    ŷ_j = softmax f_EMA(u_j)                                   soft pseudo labels
    X̃ = MixUp(X, Shuffle(X), λ₁)                               one-hot labels      (Eq. 12)
    Ũ = MixUp(W, Shuffle(W), λ₂),  W = Concat(X, U)           one-hot / ŷ          (Eq. 13)
    L = Σ_j w_j H(ỹ_j, f(ũ_j)) / Σ_j w_j   over Ũ             L_meta, Alg. 1 line 12

with λ₁, λ₂ ~ Beta(β, β), H the soft cross-entropy and w_j = 1 here (Meta-Semi overrides
`weights`). X̃ enters only Meta-Semi's meta-gradient (App. B, Eq. 35-38); the step is on L
alone (Eq. 52). `ict_weight` > 0 adds the ICT consistency term of the paper's Eq. 14.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import BETA_SHAPE, FRACTION, NON_NEGATIVE, Batch, Method, hp, linear_ramp
from .task import one_hot, soft_cross_entropy


@dataclass
class EmaMixupConfig:
    beta: float = hp(1.0, BETA_SHAPE)  # Beta(β, β) of both mixups
    ict_weight: float = hp(0.0, NON_NEGATIVE)  # optional ICT consistency term (Eq. 14)
    ramp: float = hp(0.4, FRACTION)  # ramp of the ICT term


@dataclass
class Mixed:
    """One iteration's mixed batches: X̃ with targets, Ũ with targets, the pseudo labels."""

    x: Tensor
    x_targets: Tensor
    u: Tensor
    u_targets: Tensor
    pseudo: Tensor


def mixup(x: Tensor, y: Tensor, lam: float, rows: slice = slice(None)) -> tuple[Tensor, Tensor]:
    """MixUp(x, Shuffle(x), λ) with targets; `rows`: only those rows of the result (data
    parallel: this rank's, from the gathered batch)."""
    perm = torch.randperm(len(x))[rows]
    return lam * x[rows] + (1 - lam) * x[perm], lam * y[rows] + (1 - lam) * y[perm]


class EmaMixup(Method):
    name = "ema_mixup"
    Config = EmaMixupConfig
    tasks = ("classification",)
    needs_teacher = True

    def beta(self) -> float:
        return float(torch.distributions.Beta(self.cfg.beta, self.cfg.beta).sample())

    def mixed(
        self, batch: Batch, pseudo: Tensor | None = None, keep: Tensor | None = None
    ) -> Mixed:
        """X̃ (Eq. 12) and Ũ (Eq. 13) with their targets; `pseudo` (default: the teacher's
        predictions) and, with `keep`, only the unlabeled samples it marks in W. Data parallel:
        the shuffles are over the global batch, and this rank gets its rows of X̃ and Ũ."""
        u = batch.u[0]
        pseudo = self.predict(self.teacher, u) if pseudo is None else pseudo
        gather, rows = self.shard.gather, self.shard.rows
        x, y_x = gather(batch.x), gather(one_hot(batch.y, pseudo.shape[1], pseudo))
        x_mix, x_t = mixup(x, y_x, self.beta(), rows(len(x)))
        kept = slice(None) if keep is None else keep.bool()
        w_x, w_y = torch.cat([x, gather(u)[kept]]), torch.cat([y_x, gather(pseudo)[kept]])
        u_mix, u_t = mixup(w_x, w_y, self.beta(), rows(len(w_x)))
        return Mixed(x_mix, x_t, u_mix, u_t, pseudo)

    def weights(self, batch: Batch, mixed: Mixed) -> tuple[Tensor, dict[str, float]]:
        """w_j for the samples of Ũ (all 1 here)."""
        return torch.ones(len(mixed.u), dtype=mixed.u.dtype, device=mixed.u.device), {}

    def loss(self, batch: Batch):
        mixed = self.mixed(batch)
        w, logs = self.weights(batch, mixed)
        per = soft_cross_entropy(self.model(mixed.u), mixed.u_targets)
        total = self.shard.total(w.sum())  # Σw over the global Ũ
        loss = (w * per).sum() / total.clamp_min(1.0)  # Σw = 0: no unlabeled term
        logs = {"meta": loss.detach(), **logs}
        if self.cfg.ict_weight:
            every_u = self.shard.gather(batch.u[0])
            lam = self.beta()
            rows = self.shard.rows(len(every_u))
            u, target = mixup(every_u, self.shard.gather(mixed.pseudo), lam, rows)
            ict = self.task.consistency(self.model(u), target, self.shard)
            logs["ict"] = ict.detach()
            loss = loss + self.cfg.ict_weight * linear_ramp(batch.progress, self.cfg.ramp) * ict
        return loss, logs
