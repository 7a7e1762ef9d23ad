"""A new meta method, file 1 of 2: Pseudo-Label whose unlabeled-loss weight is learned.

Its base is Pseudo-Label (`methods/pseudo_label.py`): L = L_sup + λ_u · mean_j m_j ℓ(f(u_j), ŷ_j).
Here λ_u = e^a, and each step first moves a along the hypergradient of the labeled loss after a
virtual step on the weighted unlabeled loss:

    θ̂(a) = θ − α ∇_θ e^a mean_j m_j ℓ_j(θ)        the real optimizer's virtual step
    a ← a − η · dL_sup(θ̂(a))/da                    `meta_lr` η, one hypergradient per step
    the base's step with mask m_j · e^a

A meta method is its base plus a meta step: it overrides one hook of the base (`targets`, which
returns the pseudo labels and the per-sample mask) and keeps the base's loss. Its Config extends
the base's; each field declares what it must be (`hp`), which the config check enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods.base import NON_NEGATIVE, Batch, hp
from methods.meta import MetaMethod
from methods.pseudo_label import PseudoLabel, PseudoLabelConfig, Targets


@dataclass
class MetaUWeightConfig(PseudoLabelConfig):
    meta_lr: float = hp(0.1, NON_NEGATIVE)  # η, SGD on a = log λ_u
    init_weight: float = hp(1.0, NON_NEGATIVE)  # λ_u at the start


class MetaUWeight(MetaMethod, PseudoLabel):
    name = "meta_uweight"
    base = "pseudo_label"
    Config = MetaUWeightConfig

    def __init__(self, cfg, model, *args, **kwargs):
        super().__init__(cfg, model, *args, **kwargs)
        ref = next(model.parameters())
        self.log_weight = torch.tensor(cfg.init_weight, device=ref.device, dtype=ref.dtype).log()

    def meta_gradient(self, batch: Batch, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """dL_sup(θ̂(a))/da by the configured estimator."""
        u = batch.u[1]

        def inner(f, hp):
            return hp["a"].exp() * self.meta_shard.mean(mask * self.per_sample_loss(f(u), target))

        def outer(f):
            return self.task.supervised(f(batch.x), batch.y, self.meta_shard)

        return self.hypergradient(self.problem(inner, outer), {"a": self.log_weight})["a"]

    def targets(self, batch: Batch) -> Targets:
        target, mask, logs = super().targets(batch)
        grad = self.meta_gradient(batch, target, mask)
        self.log_weight = self.log_weight - self.cfg.meta_lr * grad
        weight = self.log_weight.exp()
        return target, mask * weight, logs | {"unlabeled_weight": weight.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"log_weight": self.log_weight}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_weight = state["log_weight"].to(self.log_weight.device)
