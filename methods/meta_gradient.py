"""Meta-Gradient SSL (Xiao et al., AISTATS 2021): `pl_mixup` whose pseudo labels are moved by the
meta-gradient of the labeled loss through one SGD step on the consistency loss.

Meta step (Alg. 1; the model in eval mode as in the authors' code, `eval_mode`):

    ỹ = softmax f(u; θ)                                   the base's pseudo labels
    θ̃(ỹ) = θ − α ∇_θ (1/B_u) Σ_i ‖softmax f(u_i; θ) − ỹ_i‖²   virtual step, lr α
    ∇ỹ = ∂ G(θ̃)/∂ỹ,   G = cross-entropy on the labeled batch     (the configured estimator)
    ŷ = renormalise(ỹ − β ∇ỹ)                              clip at 0, rows summing to 1

β = `meta_scale` · B_u, so that the step is α-times the gradient of the summed loss as in the
paper's Eq. 11. The virtual step depends on `protocol`:

- "authors": one plain SGD step at the current learning rate, as the authors' update
  ŷ = ỹ − lr·(softmax f(u; θ+εv) − softmax f(u; θ−εv))/ε, v = ∇_θ G(θ), ε = 0.01/‖v‖
  (`train_meta.py` of Sakura03/SemiMeta; docs/authors_code.md). With `estimator=fd`
  `estimator.fd.lookahead=false` (the experiments' default, the paper's Eq. 10) this equals
  their update exactly, under any optimizer setting.
- "toolkit": the real optimizer's virtual step (its momentum buffers, weight decay, Nesterov):
  the exact hypergradient of the step the model takes next. Under Nesterov its first step has
  coefficient 1 + μ, so the update is (1 + μ) times the authors'.

The training step is the base's (`pl_mixup`) with ŷ in place of ỹ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bilevel import ImputedTargets

from .base import NON_NEGATIVE, Batch, hp, training_mode
from .meta import MetaMethod, renormalise
from .pl_mixup import PLMixup, PLMixupConfig


@dataclass
class MetaGradientConfig(PLMixupConfig):
    meta_scale: float = hp(1.0, NON_NEGATIVE)  # β = meta_scale · B_u
    # virtual step: "authors" (plain SGD) or "toolkit" (real optimizer)
    protocol: str = hp("authors", choices=("authors", "toolkit"))


class MetaGradient(MetaMethod, PLMixup):
    name = "meta_gradient"
    base = "pl_mixup"
    Config = MetaGradientConfig

    def targets(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """ŷ for the unlabeled batch (no change to the model)."""
        u = batch.u[0]
        y_tilde, _ = super().targets(batch)
        with training_mode(self.model, not self.cfg.eval_mode):
            inner = ImputedTargets(u, "softmax_mse", key="y", shard=self.meta_shard)

            def outer(f):
                return self.task.supervised(f(batch.x), batch.y, self.meta_shard)

            problem = self.problem(inner, outer)
            grad = self.hypergradient(problem, {"y": y_tilde})["y"]
        batch_u = len(u) * self.meta_shard.world  # B_u of the batch the meta step saw
        y_hat = renormalise(y_tilde - self.cfg.meta_scale * batch_u * grad)
        moved = self.shard.mean((y_hat - y_tilde).abs().sum(1)).detach()
        flipped = self.shard.mean((y_hat.argmax(1) != y_tilde.argmax(1)).double()).detach()
        return y_hat, {"label_change_l1": moved, "label_flip_rate": flipped}
