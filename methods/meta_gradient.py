"""Meta-Gradient SSL (Xiao et al., AISTATS 2021): pseudo labels moved by the meta-gradient of
the labeled loss through one SGD step on the consistency loss.

Meta step (Alg. 1), with the model in eval mode as in the authors' code (`eval_meta`):

    ỹ = softmax f(u; θ)                                   pseudo labels at the predictions
    θ̃(ỹ) = θ − α ∇_θ (1/B_u) Σ_i ‖softmax f(u_i; θ) − ỹ_i‖²   virtual step (real optimizer, lr α)
    ∇ỹ = ∂ G(θ̃)/∂ỹ,   G = cross-entropy on the labeled batch     (the configured estimator)
    ŷ = renormalise(ỹ − β ∇ỹ)                              clip at 0, rows summing to 1

β = `meta_scale` · B_u: with plain SGD this is exactly the authors' update
ŷ = ỹ − lr·(softmax f(u; θ+εv) − softmax f(u; θ−εv))/ε (their Eq. 11 with β = lr), because the
hypergradient of the *mean* consistency loss carries α/B_u. The paper's approximation (fd with
v = ∇G(θ), `estimator=fd` + `estimator.fd.lookahead=false`) is the experiments' default; every
exact estimator works too.

Training step, `protocol="alg1"`: CE(f(x), y) + w(t)·mean ‖softmax f(u) − ŷ‖².
`protocol="mixup"` (Alg. 2): per-sample μ_i ~ Beta(γ, γ), x_in = μx + (1−μ)u,
y_in = μ·onehot(y) + (1−μ)ŷ; soft cross-entropy on (x_in, y_in) (the KL of Eq. 13 up to a
constant) + w(t)·mean ‖softmax f(u) − ŷ‖². w(t) ramps linearly to `weight` over `ramp`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bilevel import ImputedTargets

from .base import Batch, linear_ramp, training_mode
from .meta import MetaMethod, renormalise
from .task import one_hot, soft_cross_entropy


@dataclass
class MetaGradientConfig:
    protocol: str = "mixup"  # "alg1" or "mixup" (Alg. 2)
    gamma: float = 1.0  # Beta(γ, γ) of the mixup protocol
    weight: float = 1.0  # consistency weight after the ramp
    ramp: float = 0.01  # 4000 of 400k steps in the authors' code
    meta_scale: float = 1.0  # β = meta_scale · B_u
    eval_meta: bool = True  # meta step with the model in eval mode (authors' code)


class MetaGradient(MetaMethod):
    name = "meta_gradient"
    Config = MetaGradientConfig
    tasks = ("classification",)

    def __init__(self, cfg, *args, **kwargs):
        super().__init__(cfg, *args, **kwargs)
        if cfg.protocol not in ("alg1", "mixup"):
            raise ValueError(
                f"meta_gradient: protocol must be 'alg1' or 'mixup', got {cfg.protocol!r}"
            )

    def meta_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """ŷ for the unlabeled batch (no change to the model)."""
        u = batch.u[0]
        with training_mode(self.model, not self.cfg.eval_meta):
            y_tilde = self.predict(self.model, u)
            inner = ImputedTargets(u, "softmax_mse", key="y")

            def outer(f):
                return F.cross_entropy(f(batch.x), batch.y)

            grad = self.hypergradient(self.problem(inner, outer), {"y": y_tilde})["y"]
        y_hat = renormalise(y_tilde - self.cfg.meta_scale * len(u) * grad)
        moved = (y_hat - y_tilde).abs().sum(1).mean().item()
        flipped = (y_hat.argmax(1) != y_tilde.argmax(1)).double().mean().item()
        return y_hat, {"label_change_l1": moved, "label_flip_rate": flipped}

    def loss(self, batch: Batch):
        y_hat, logs = self.meta_step(batch)
        u = batch.u[0]
        w = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        if self.cfg.protocol == "alg1":
            cls = F.cross_entropy(self.model(batch.x), batch.y)
        else:
            n = min(len(batch.x), len(u))
            mu = torch.distributions.Beta(self.cfg.gamma, self.cfg.gamma).sample((n,)).to(u)
            m = mu.view(-1, *[1] * (u.dim() - 1))
            x_in = m * batch.x[:n] + (1 - m) * u[:n]
            y_in = (
                mu[:, None] * one_hot(batch.y[:n], y_hat.shape[1], y_hat)
                + (1 - mu[:, None]) * y_hat[:n]
            )
            cls = soft_cross_entropy(self.model(x_in), y_in).mean()
        cons = self.task.consistency(self.model(u), y_hat)
        return cls + w * cons, {"cls": cls.item(), "cons": cons.item(), **logs}
