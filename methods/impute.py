"""Learning to Impute (Li, Foo, Bilen): the imputed targets z of a Pseudo-Label (`impute_pl`) or
Mean-Teacher (`impute_mt`) base, tuned so that a virtual step on them lowers the loss C^H on a
hold-out batch (from the labeled set, or a separate split with `holdout=separate`).

`protocol="toolkit"` (one optimizer step per iteration, the base's own loss):
    z = ψ(u')            the base's targets: the model's (PL) or EMA teacher's (MT) prediction on
                         view u', moved into the frame of view u'' (landmarks)
    θ*(z) = θ − η ∇_θ [C^T(x, y) + C^U(f(u''), z)]     the real optimizer's virtual step, lr η ×
                                                       `inner_lr_scale`; C^U the base's loss, no λ
    g = ∂ C^H(θ*(z)) / ∂z                              (the configured estimator)
    V1: the base's step with ẑ = z − η_z B_u g (soft labels renormalised): B_u g is the gradient
        of the summed loss of the paper's App. B, so η_z does not depend on batch size.
    V2: the base's step with z, plus η_z B_u gᵀ ∂ψ/∂θ in the gradient. On the MT base ψ is the
        teacher, which depends on θ through this step's EMA update θ_EMA ← d_t θ_EMA + (1 − d_t)θ:
        the student gets (1 − d_t) gᵀ ∂ψ/∂θ_EMA at the teacher's weights.

`protocol="authors"` (the authors' scripts, docs/authors_code.md): (1) the base's step; (2) on the
updated student, p = f(u') (ψ is the student on either base) and the targets T(p) (softmax for
classes; shifted into view u'' for landmarks); one plain SGD step on the unlabeled loss alone
(classes: Σ over samples and classes of (softmax f(u'') − softmax p)²; landmarks: mean of
(f(u'') − T(p))², through tanh for V2) at `inner_lr_scale` × lr; g = ∂C^H/∂p for the mean hold-out
loss. V1: p̂ = p − η_z g and a second optimizer step on the mean over samples and outputs of
(softmax f(u'') − softmax p̂)² (landmarks (f(u'') − T(p̂))²), without λ. V2: a second optimizer
step whose gradient is η_z gᵀ ∂p/∂θ. `post_decay` > 0 then multiplies the weights by
1 − post_decay·lr (the classification scripts' EMA helper does this with 0.02).

Every `log_every` steps logs C^H(θ*(z)) and C^H(θ*(ẑ)), the hold-out loss of the virtual model
before and after the z update (paper Fig. 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel import Evaluator, ImputedTargets

from .base import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    Batch,
    Step,
    ema_decay,
    frozen_norm_stats,
    hp,
)
from .mean_teacher import MeanTeacher, MeanTeacherConfig
from .meta import MetaMethod, renormalise
from .pseudo_label import PseudoLabel, PseudoLabelConfig
from .task import one_hot


@dataclass
class ImputeFields:
    variant: str = hp("v1", choices=("v1", "v2"))
    protocol: str = hp("toolkit", choices=("toolkit", "authors"))
    meta_lr: float = hp(1.0, NON_NEGATIVE)  # η_z (V1) / scale of the ψ-gradient (V2)
    inner_lr_scale: float = hp(1.0, POSITIVE)  # virtual step lr = lr × this
    # authors: θ ← θ(1 − post_decay·lr) after the iteration
    post_decay: float = hp(0.0, NON_NEGATIVE)
    log_every: int = hp(10, AT_LEAST_ONE)


@dataclass
class ImputePLConfig(PseudoLabelConfig, ImputeFields):
    soft: bool = True  # imputed class targets are soft (the paper's PL base)


@dataclass
class ImputeMTConfig(MeanTeacherConfig, ImputeFields):
    pass


class Impute(MetaMethod):
    """The meta step and both protocols; mixed into a base (`PseudoLabel` or `MeanTeacher`)."""

    needs_holdout = True

    def __init__(self, cfg, *args, **kwargs):
        super().__init__(cfg, *args, **kwargs)
        if self.hard():
            raise ValueError(f"{self.name}: imputed class targets are soft; set soft=true")
        self.classes = self.task.kind == "classification"

    def losses(self, batch: Batch) -> Iterator[Step]:
        if self.cfg.protocol == "authors":
            yield from self.authors_iteration(batch)
            return
        z, mask, logs = self.targets(batch)
        g, meta_logs = self.meta_step(batch, z)
        logs |= meta_logs
        if self.cfg.variant == "v1":
            yield Step(*self.loss(batch, (self.updated(z, g), mask, logs)))
            return
        extra = self.psi_gradient(batch, g)
        total = self.shard.total(torch.cat([e.flatten() for _, e in extra]))
        logs["psi_grad_norm"] = self.share(total.norm())
        yield Step(*self.loss(batch, (z, mask, logs)), extra)

    # the toolkit's formulation
    def inner_problem(self, batch: Batch, z: Tensor):
        u = batch.u[1]
        if self.classes:  # structured, so `analytic` serves one-layer models
            labeled = (batch.x, one_hot(batch.y, z.shape[1], z))
            inner = ImputedTargets(
                u, "softmax_mse", labeled=labeled, labeled_kind="ce", shard=self.meta_shard
            )
            coupled = inner.unlabeled
        else:
            shard = self.meta_shard

            def coupled(f, hp):
                return self.task.consistency(f(u), hp["z"], shard)

            def inner(f, hp):
                return coupled(f, hp) + self.task.supervised(f(batch.x), batch.y, shard)

        return self.problem(inner, self.holdout_loss(batch), coupled, self.cfg.inner_lr_scale)

    def holdout_loss(self, batch: Batch):
        def outer(f):
            return self.task.supervised(f(batch.hold_x), batch.hold_y, self.meta_shard)

        return outer

    def meta_step(self, batch: Batch, z: Tensor) -> tuple[Tensor, dict[str, float]]:
        """g = ∂C^H/∂z without changing the model, and logs."""
        problem = self.inner_problem(batch, z)
        g = self.hypergradient(problem, {"z": z})["z"]
        return g, self.meta_logs(batch, problem, "z", z, self.updated(z, g), g)

    def meta_logs(self, batch, problem, key, before, after, g) -> dict[str, float]:
        """‖g‖ and, every `log_every` steps, C^H after the virtual step with the targets
        before and after the update (paper Fig. 2)."""
        norm = self.shard.total(g.pow(2).sum()).sqrt() if self.shard.parallel else g.norm()
        logs = {"meta_grad_norm": self.share(norm).detach()}
        if batch.step % self.cfg.log_every == 0:
            with Evaluator(problem) as ev:
                for tag, value in (("before", before), ("after", after)):
                    held = ev.outer(ev.first_step({key: value})).detach()
                    logs[f"holdout_{tag}"] = self.meta_part(held)
        return logs

    def updated(self, z: Tensor, g: Tensor) -> Tensor:
        z_hat = z - self.cfg.meta_lr * len(z) * self.meta_shard.world * g
        return renormalise(z_hat) if self.classes else z_hat

    def psi_gradient(self, batch: Batch, g: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(θ, η_z B_u gᵀ ∂ψ/∂θ) pairs for V2; ψ's gradient taken at ψ's own weights."""
        net, scale = self.imputer(), self.cfg.meta_lr * len(g) * self.meta_shard.world
        if self.rank_local():  # each rank's extra gradient counts as 1/ranks of it
            scale /= self.shard.world
        if net is not self.model:  # the EMA teacher: ∂θ_EMA/∂θ of this step's EMA update
            scale *= 1.0 - ema_decay(batch.step, self.teacher_decay)
        params = [p for p in net.parameters() if p.requires_grad]
        with frozen_norm_stats(net):
            psi = batch.to_second_view(self.task, self.task.prediction(net(batch.u[0])))
        grads = torch.autograd.grad((psi * g).sum() * scale, params, allow_unused=True)
        return [
            (p, e) for p, e in zip(self.model.parameters(), grads, strict=True) if e is not None
        ]

    # the authors' scripts
    def to_target(self, batch: Batch, p: Tensor) -> Tensor:
        """T(p): class probabilities, or landmarks moved from view u' into view u''."""
        return p.softmax(1) if self.classes else batch.to_second_view(self.task, p)

    def authors_inner(self, out: Tensor, target: Tensor, shard) -> Tensor:
        if self.classes:
            return (out.softmax(1) - target).pow(2).sum()
        if self.cfg.variant == "v2":
            return shard.mean((torch.tanh(out) - torch.tanh(target)).pow(2))
        return shard.mean((out - target).pow(2))

    def authors_iteration(self, batch: Batch) -> Iterator[Step]:
        yield Step(*self.loss(batch))  # (1) the base method's step
        u = batch.u[1]

        def inner(f, hp):
            return self.authors_inner(f(u), self.to_target(batch, hp["p"]), self.meta_shard)

        problem = self.problem(inner, self.holdout_loss(batch), lr_scale=self.cfg.inner_lr_scale)
        with frozen_norm_stats(self.model):
            p = self.model(batch.u[0])  # ψ = the updated student
        g = self.hypergradient(problem, {"p": p.detach()})["p"]
        p_hat = p.detach() - self.cfg.meta_lr * g
        logs = self.meta_logs(batch, problem, "p", p.detach(), p_hat, g)
        if self.cfg.variant == "v1":
            target = self.to_target(batch, p_hat)
            out = self.model(u)
            loss = self.shard.mean((out.softmax(1) if self.classes else out).sub(target).pow(2))
            yield Step(loss, logs)  # (2) the imputation step
        else:  # gradient η_z gᵀ ∂p/∂θ (rank_local: the ranks' mean)
            yield Step(self.meta_part((p * g).sum() * self.cfg.meta_lr), logs)
        if self.cfg.post_decay:
            factor = 1.0 - self.cfg.post_decay * self.current_lr()
            with torch.no_grad():
                for param in self.model.parameters():
                    param.mul_(factor)


class ImputePL(Impute, PseudoLabel):
    name = "impute_pl"
    base = "pseudo_label"
    Config = ImputePLConfig


class ImputeMT(Impute, MeanTeacher):
    name = "impute_mt"
    base = "mean_teacher"
    Config = ImputeMTConfig
