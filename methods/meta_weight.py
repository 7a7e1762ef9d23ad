"""Meta-Weight: Pseudo-Label whose per-sample weights come from a weighting network trained through
the hypergradient, as Meta-Weight-Net (Shu et al., 2019) does for noisy labels.

    ℓ_j = ℓ(f(u_j''), ŷ_j)                       the base's per-sample unlabeled loss (no gradient)
    v_j = V_Θ(ℓ_j)                               MLP {1, `hidden`, 1}, sigmoid output
    θ̂(Θ) = θ − α ∇_θ mean_j m_j v_j(Θ) ℓ_j(θ)     virtual step (the real optimizer's)
    Θ ← Adam(Θ, ∇_Θ G(θ̂(Θ))),  G = cross-entropy (or MSE) on the labeled batch
    the base's step with mask m_j · V_Θ(ℓ_j)      (m_j: Pseudo-Label's confidence threshold)

It overrides one hook of its base, `targets` (its mask). This file and `experiments/configs/
metaweight_digits.py` are all it takes (docs/methods.md, "Adding a method").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from .base import AT_LEAST_ONE, NON_NEGATIVE, Batch, frozen_norm_stats, hp
from .meta import MetaMethod, sigmoid_mlp
from .pseudo_label import PseudoLabel, PseudoLabelConfig, Targets


@dataclass
class MetaWeightConfig(PseudoLabelConfig):
    hidden: int = hp(100, AT_LEAST_ONE)
    meta_lr: float = hp(1e-3, NON_NEGATIVE)  # Adam on V
    meta_weight_decay: float = hp(1e-4, NON_NEGATIVE)


class MetaWeight(MetaMethod, PseudoLabel):
    name = "meta_weight"
    base = "pseudo_label"
    Config = MetaWeightConfig

    def __init__(self, cfg, model, *args, **kwargs):
        super().__init__(cfg, model, *args, **kwargs)
        self.vnet = sigmoid_mlp(1, cfg.hidden, next(model.parameters()))
        self.vnet_opt = torch.optim.Adam(
            self.vnet.parameters(), lr=cfg.meta_lr, weight_decay=cfg.meta_weight_decay
        )

    def sample_weights(self, losses: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        params = params or dict(self.vnet.named_parameters())
        return functional_call(self.vnet, params, (losses[:, None],))[:, 0]

    def targets(self, batch: Batch) -> Targets:
        target, mask, logs = super().targets(batch)
        weights, meta_logs = self.reweight(batch, target, mask)
        return target, weights, logs | meta_logs

    def reweight(self, batch: Batch, target: Tensor, mask: Tensor) -> tuple[Tensor, dict]:
        """The meta step on V, then the mask m_j · V_Θ(ℓ_j) (no change to the model)."""
        u = batch.u[1]
        with torch.no_grad(), frozen_norm_stats(self.model):
            losses = self.per_sample_loss(self.model(u), target)

        def inner(f, theta):
            v = self.sample_weights(losses, theta)
            return self.meta_shard.mean(mask * v * self.per_sample_loss(f(u), target))

        def outer(f):
            return self.task.supervised(f(batch.x), batch.y, self.meta_shard)

        norm = self.network_step(self.vnet, self.vnet_opt, inner, outer)
        with torch.no_grad():
            v = self.sample_weights(losses)
        return mask * v, {"meta_grad_norm": norm, "weight_mean": self.shard.mean(v).detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"vnet": self.vnet.state_dict(), "vnet_opt": self.vnet_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.vnet.load_state_dict(state["vnet"])
        self.vnet_opt.load_state_dict(state["vnet_opt"])
