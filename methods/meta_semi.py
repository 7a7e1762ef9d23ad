"""Meta-Semi (Wang et al.): `ema_mixup` that keeps the samples of Ũ whose meta-gradient at w = 0
is ≤ 0 (App. B, Eq. 35-38; Alg. 1 lines 6-12).

    θ₁(w) = θ − α ∇_θ Σ_j w_j H(ỹ_j, f(ũ_j; θ))              virtual step at w = 0 (θ₁ = θ)
    g_j = ∂ G(X̃, θ₁)/∂w_j |_{w=0} = −α ⟨∇_θ G(X̃, θ), ∇_θ H_j(θ)⟩   Eq. (10), (38)
    w_j = 1 if g_j ≤ 0 else 0                                  Eq. (9)
This is `protocol="paper"` (the default): the virtual step of Alg. 1 is one plain SGD step at the
current learning rate α. `protocol="toolkit"` differentiates through the real optimizer's step
instead (momentum buffer, Nesterov, weight decay): then θ₁ = θ − α(μ·buf + λθ) ≠ θ at w = 0,
G and its gradient are taken there, and the per-sample gradients are scaled by (1 + μ) under
Nesterov, which flips the sign of samples with g_j near 0.
A g_j that is zero up to rounding (|g_j| ≤ 100·eps·max|g|) counts as 0 and is kept: such exact
ties occur (a sample mixed with itself while the teacher equals the student, e.g. the first two
steps), and rounding would otherwise decide them differently on each device or split.

G is the cross-entropy on the mixed labeled batch X̃; the step is on the normalised
L_meta = Σ_j w_j H_j / Σ_j w_j over Ũ alone (Eq. 52), the base's loss with these weights.

`weighting="raw"` keeps an earlier reading: weights per raw unlabeled sample with G on the raw
labeled batch, rejected samples dropped before the mixup of Eq. 13, and CE(X̃) added to the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Batch, hp
from .ema_mixup import EmaMixup, EmaMixupConfig, Mixed
from .meta import MetaMethod
from .task import one_hot, soft_cross_entropy


@dataclass
class MetaSemiConfig(EmaMixupConfig):
    # "mixed" (App. B) or "raw" (weights on raw U, CE(X̃) added)
    weighting: str = hp("mixed", choices=("mixed", "raw"))
    # virtual step: "paper" (Alg. 1, Eq. 10: plain SGD θ − α∇L) or "toolkit" (real optimizer)
    protocol: str = hp("paper", choices=("paper", "toolkit"))


def rounding(grad: Tensor) -> Tensor:
    """The size below which a hypergradient is zero up to rounding: 100·eps·max|g|."""
    return 100 * torch.finfo(grad.dtype).eps * grad.abs().max()


class MetaSemi(MetaMethod, EmaMixup):
    name = "meta_semi"
    base = "ema_mixup"
    Config = MetaSemiConfig

    def sign_test(
        self, inputs: Tensor, targets: Tensor, x: Tensor, x_targets: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """w_j = 1[∂G(θ₁)/∂w_j ≤ 0] for (inputs, soft targets); G = H on (x, x_targets)."""

        def inner(f, hp):
            return (hp["w"] * soft_cross_entropy(f(inputs), targets)).sum()

        def outer(f):
            return self.meta_shard.mean(soft_cross_entropy(f(x), x_targets))

        w0 = torch.zeros(len(inputs), dtype=targets.dtype, device=targets.device)
        # at w = 0 the inner loss Σ w_j H_j has zero gradient: the virtual step needs no pass
        # over Ũ (the estimators that take it without a graph skip one forward and backward)
        model = self.eager_model()
        zero = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
        problem = self.problem(inner, outer, first_inner_grad=zero)
        grad = self.hypergradient(problem, {"w": w0})["w"]
        keep = (grad <= rounding(grad)).to(targets.dtype)
        return keep, {"kept": self.shard.mean(keep).detach()}

    def weights(self, batch: Batch, mixed: Mixed) -> tuple[Tensor, dict[str, float]]:
        return self.sign_test(mixed.u, mixed.u_targets, mixed.x, mixed.x_targets)

    def loss(self, batch: Batch):
        if self.cfg.weighting == "mixed":
            return super().loss(batch)
        return self.raw_loss(batch)

    def raw_loss(self, batch: Batch):
        """weighting="raw": CE(X̃) + mean H over MixUp(Concat(X, U_kept)) (one process only:
        the kept samples do not split evenly over ranks)."""
        if self.shard.parallel:
            raise ValueError("meta_semi: weighting=raw does not support data parallel training")
        u = batch.u[0]
        pseudo = self.predict(self.teacher, u)
        y_x = one_hot(batch.y, pseudo.shape[1], pseudo)
        keep, logs = self.sign_test(u, pseudo, batch.x, y_x)
        if batch.u_true is not None:
            right = pseudo.argmax(1) == batch.u_true
            logs["kept_correct"] = (keep.bool() & right).sum().float()
            logs["kept_wrong"] = (keep.bool() & ~right).sum().float()
        mixed = self.mixed(batch, pseudo, keep)
        sup = soft_cross_entropy(self.model(mixed.x), mixed.x_targets).mean()
        meta = soft_cross_entropy(self.model(mixed.u), mixed.u_targets).mean()
        return sup + meta, {"sup": sup.detach(), "meta": meta.detach(), **logs}
