"""Meta-Threshold (Meta-T, Wei et al.): FixMatch whose confidence threshold is a per-sample τ from
a threshold generation network (TGN) trained through the hypergradient.

    p_m = softmax f(A_w(u_m)), ŷ_m = argmax p_m, p̄_c = mean p_m over the batch's ŷ_m = c  (Eq. 5)
    τ_m = TGN_Θ([p_m, p̄_{ŷ_m}])         MLP {2C, 100, 1}, sigmoid output (Eq. 6)
    S(x) = 1 / (1 + e^{−βx}), β = 100     differentiable surrogate of 1[x ≥ 0]

It overrides one hook of its base, FixMatch's `mask`. Our copy of the paper lacks Sec. 4.3
(Eq. 7-10, Alg. 1); the update follows the three-phase pattern its appendix Eq. 15-17 use
(docs/authors_code.md, "Meta-T"):
  1. virtual step ŵ(Θ) = w − α ∇_w (1/nμ) Σ_m S(max p_m − τ_m(Θ)) CE(f(A_s(u_m)), ŷ_m)   (Eq. 15)
     (`protocol="paper"`, the default: one plain SGD step at the current lr α; "toolkit":
     through the real optimizer's step, which under Nesterov scales dG/dΘ by about 1 + μ)
  2. meta step Θ ← Adam(Θ, ∇_Θ (1/n) Σ_i CE(f(x_i; ŵ(Θ)), y_i)), lr 1e-3, on the labeled batch
  3. actual step: FixMatch's loss with the mask 1[max p_m > τ_m(Θ_new)] (Eq. 3's strict inequality)
The actual step uses the hard indicator; the surrogate is used only where a derivative is
needed. Green Meta-T (Alg. 2) runs the meta step every `k` iterations (cost (k+2)/k of
FixMatch). Logs thresholds (mean, std, 10/50/90% quantiles), mask rate and the correct/wrong
pseudo labels that pass them (Fig. 4); `per_sample` gives every unlabeled sample's τ from a saved
state (analysis.thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from bilevel import Shard
from bilevel.parallel import LOCAL

from .base import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Batch, hp, training_mode
from .fixmatch import FixMatch, FixMatchConfig
from .meta import MetaMethod, sigmoid_mlp


@dataclass
class MetaThresholdConfig(FixMatchConfig):
    sharpness: float = hp(100.0, POSITIVE)  # β of the surrogate S
    hidden: int = hp(100, AT_LEAST_ONE)
    meta_lr: float = hp(1e-3, NON_NEGATIVE)  # Adam on the TGN
    k: int = hp(1, AT_LEAST_ONE)  # Green Meta-T: meta step every k iterations (k = 1: Meta-T)
    # virtual step: "paper" (Eq. 15-17: plain SGD w − α∇L_train) or "toolkit" (real optimizer)
    protocol: str = hp("paper", choices=("paper", "toolkit"))


def class_average_confidence(probs: Tensor, shard: Shard = LOCAL) -> Tensor:
    """p̄_{ŷ_m} for each sample: the mean softmax vector of the batch's samples with its label
    (data parallel: of the global batch)."""
    labels, classes = probs.argmax(1), probs.shape[1]
    sums = shard.total(probs.new_zeros(classes, classes).index_add_(0, labels, probs))
    counts = shard.total(torch.bincount(labels, minlength=probs.shape[1]))
    return (sums / counts.clamp_min(1).to(probs)[:, None])[labels]


def tgn_inputs(probs: Tensor, shard: Shard = LOCAL) -> Tensor:
    """[p_m, p̄_{ŷ_m}]: the 2C-dimensional input of the TGN (Eq. 6)."""
    return torch.cat([probs, class_average_confidence(probs, shard)], 1)


def output_size(model: nn.Module) -> int:
    """The number of outputs of the model's last linear layer (classes)."""
    return next(m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)).out_features


class MetaThreshold(MetaMethod, FixMatch):
    name = "meta_threshold"
    base = "fixmatch"
    Config = MetaThresholdConfig

    def __init__(self, cfg, model, *args, **kwargs):
        super().__init__(cfg, model, *args, **kwargs)
        self.tgn = sigmoid_mlp(2 * output_size(model), cfg.hidden, next(model.parameters()))
        self.tgn_opt = torch.optim.Adam(self.tgn.parameters(), lr=cfg.meta_lr)

    def thresholds(self, feats: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        return functional_call(self.tgn, params or dict(self.tgn.named_parameters()), (feats,))[
            :, 0
        ]

    def meta_step(self, batch: Batch, probs: Tensor) -> dict[str, float]:
        """One Adam step of the TGN on the hypergradient of the labeled loss (Θ only)."""
        probs = probs.to(next(self.tgn.parameters()).dtype)  # amp: bfloat16; `fd` leaves autocast
        conf, labels = probs.max(1)
        shard = self.meta_shard
        feats = tgn_inputs(probs, shard)
        strong, beta = batch.u[1], self.cfg.sharpness

        def inner(f, theta):
            gate = torch.sigmoid(beta * (conf - self.thresholds(feats, theta)))
            return shard.mean(gate * F.cross_entropy(f(strong), labels, reduction="none"))

        def outer(f):
            return self.task.supervised(f(batch.x), batch.y, shard)

        return {"meta_grad_norm": self.network_step(self.tgn, self.tgn_opt, inner, outer)}

    def mask(self, batch: Batch, probs: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The meta step (every k-th iteration), then 1[max p_m > τ_m(Θ)] (Eq. 3)."""
        share = 1.0 / self.shard.world  # logs: this rank's share of the global value
        logs: dict[str, float] = {"meta": 0.0}
        if batch.step % self.cfg.k == 0:
            logs |= self.meta_step(batch, probs) | {"meta": share}
        with torch.no_grad():
            tau = self.thresholds(tgn_inputs(probs, self.shard))
        every = self.shard.gather(tau)  # the statistics of the global batch's thresholds
        q = torch.quantile(every.float(), every.new_tensor([0.1, 0.5, 0.9]).float())
        logs |= {
            "tau_mean": self.shard.mean(tau).detach(),
            "tau_std": self.share(every.std()).detach() if len(every) > 1 else 0.0,
            **{f"tau_q{p}": self.share(v).detach() for p, v in zip((10, 50, 90), q, strict=True)},
        }
        return (probs.max(1).values > tau).to(probs.dtype), logs

    @torch.no_grad()
    def per_sample(self, x: Tensor, chunk: int = 500) -> dict[str, Tensor]:
        """Per-sample thresholds τ, confidences and predicted classes on (unaugmented) inputs
        `x`, with the class-average confidence p̄ taken over all of `x` instead of one batch."""
        with training_mode(self.model, False):
            probs = torch.cat(
                [self.predict(self.model, x[i : i + chunk]) for i in range(0, len(x), chunk)]
            )
        conf, pred = probs.max(1)
        return {"tau": self.thresholds(tgn_inputs(probs)), "conf": conf, "pred": pred}

    def state_dict(self) -> dict[str, Any]:
        return {"tgn": self.tgn.state_dict(), "tgn_opt": self.tgn_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tgn.load_state_dict(state["tgn"])
        self.tgn_opt.load_state_dict(state["tgn_opt"])
