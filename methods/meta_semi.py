"""Meta-Semi (Wang et al.): keep the pseudo-labeled samples whose meta-gradient at w = 0 is ≤ 0.

    ŷ_j = softmax f_EMA(u_j)                                  soft pseudo labels (EMA teacher)
    θ₁(w) = θ − α ∇_θ Σ_j w_j CE(f(u_j), ŷ_j)                 virtual step at w = 0 (θ₁ = θ)
    g_j = ∂ G(θ₁)/∂w_j |_{w=0} = −α ⟨∇_θ G(θ), ∇_θ CE_j(θ)⟩     Eq. (10), G = labeled CE
    w_j = 1 if g_j ≤ 0 else 0                                 Eq. (9)

Training step with mixup (Eq. 12-13, β the only extra hyperparameter):
    X̃ = MixUp(X, Shuffle(X), λ₁),   W = Concat(X, U_kept),   Ũ = MixUp(W, Shuffle(W), λ₂),
    L = CE(X̃) + mean_{Ũ} CE + `ict_weight`·w(t)·ICT consistency (optional, Eq. 14)
with one-hot labels for X, the soft pseudo labels for the kept U, λ₁, λ₂ ~ Beta(β, β).
Reconstruction (the paper leaves it open): the 0/1 weights are applied by dropping the samples
with w_j = 0 before the mixup of Eq. 13, so the mean over Ũ is Eq. 1's normalised weighted loss.
Logs the share of unlabeled samples kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Batch, linear_ramp
from .meta import MetaMethod
from .task import one_hot, soft_cross_entropy


@dataclass
class MetaSemiConfig:
    beta: float = 1.0  # Beta(β, β) of both mixups
    ict_weight: float = 0.0  # optional ICT consistency term
    ramp: float = 0.4


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(len(x))
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


class MetaSemi(MetaMethod):
    name = "meta_semi"
    Config = MetaSemiConfig
    tasks = ("classification",)
    needs_teacher = True

    def meta_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(soft pseudo labels, 0/1 weights) for the unlabeled batch."""
        u = batch.u[0]
        pseudo = self.predict(self.teacher, u)

        def inner(f, hp):
            return (hp["w"] * soft_cross_entropy(f(u), pseudo)).sum()

        def outer(f):
            return F.cross_entropy(f(batch.x), batch.y)

        w0 = torch.zeros(len(u), dtype=pseudo.dtype, device=pseudo.device)
        grad = self.hypergradient(self.problem(inner, outer), {"w": w0})["w"]
        keep = (grad <= 0).to(pseudo.dtype)
        logs = {"kept": keep.mean().item()}
        if batch.u_true is not None:
            labels = pseudo.argmax(1)
            logs["kept_correct"] = (keep.bool() & (labels == batch.u_true)).sum().item()
            logs["kept_wrong"] = (keep.bool() & (labels != batch.u_true)).sum().item()
        return pseudo, keep, logs

    def loss(self, batch: Batch):
        terms, logs = self.terms(batch)
        loss = sum(terms.values())
        return loss, {k: v.item() for k, v in terms.items()} | logs

    def terms(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The loss terms: `sup` (mixed labeled CE), `meta` (L_meta, Eq. 1 on Ũ) and, when
        configured, the weighted ICT term; plus the meta step's logs."""
        pseudo, keep, logs = self.meta_step(batch)
        u, beta = batch.u[0], torch.distributions.Beta(self.cfg.beta, self.cfg.beta)
        y_x = one_hot(batch.y, pseudo.shape[1], pseudo)
        x_mix, y_mix = mixup(batch.x, y_x, float(beta.sample()))
        kept = keep.bool()
        w_x, w_y = torch.cat([batch.x, u[kept]]), torch.cat([y_x, pseudo[kept]])
        u_mix, t_mix = mixup(w_x, w_y, float(beta.sample()))
        terms = {
            "sup": soft_cross_entropy(self.model(x_mix), y_mix).mean(),
            "meta": soft_cross_entropy(self.model(u_mix), t_mix).mean(),
        }
        if self.cfg.ict_weight:
            lam = float(beta.sample())
            perm = torch.randperm(len(u))
            target = lam * pseudo + (1 - lam) * pseudo[perm]
            ict = self.task.consistency(self.model(lam * u + (1 - lam) * u[perm]), target)
            logs["ict"] = ict.item()
            terms["ict"] = self.cfg.ict_weight * linear_ramp(batch.progress, self.cfg.ramp) * ict
        return terms, logs
