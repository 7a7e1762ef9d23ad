"""Learning to Impute (Li, Foo, Bilen): imputed labels z tuned so that a virtual step on them
lowers the loss on a hold-out batch.

    z = ψ(u')          the base's imputation: the model's (PL) or EMA teacher's (MT) prediction
                       on a first view, moved into the frame of the second view u'' (landmarks)
    θ*(z) = θ − η ∇_θ [C^T(x, y) + C^U(f(u''), z)]         virtual step (real optimizer, lr η;
                                                           no λ, as the paper's inner loop)
    g = ∂ C^H(θ*(z)) / ∂z,   C^H = supervised loss on the hold-out batch   (the estimator)

C^U averages over the B_u unlabeled samples, so g carries 1/B_u; the steps below use B_u·g, the
gradient of the summed loss of the paper's App. B, so that η_z does not depend on batch size.
V1 (z are parameters): ẑ = z − η_z B_u g (soft labels renormalised), then the real step on
    C^T + λ(t) C^U(ẑ).
V2 (g flows through ψ into θ): the real step on C^T + λ(t) C^U(z) + η_z B_u ⟨g, ψ(θ)⟩, i.e. the
    parameters get the extra gradient η_z B_u gᵀ ∂ψ/∂θ. With the MT base ψ is the EMA teacher,
    whose weights depend on the student's through the EMA update θ_EMA ← d_t θ_EMA + (1 − d_t) θ,
    d_t = min(1 − 1/(t+1), d): the student gets (1 − d_t) gᵀ ∂ψ/∂θ_EMA, taken at the teacher's
    current weights. (Applying the teacher's gradient unscaled, as session 1 did, is 1/(1 − d)
    = 100× too large at d = 0.99 and made V2 diverge on landmarks.)
Simplification of the paper's Alg. 1: one real step per iteration after the z update (the
paper first steps the base method, re-imputes and steps again). The hold-out batch comes from
the labeled set (default, as the paper) or a separate split (config `holdout=separate`).
C^U is soft cross-entropy for classes and the task's squared error for landmarks (the authors
use 10× the learning rate for V2's virtual step on landmarks: `inner_lr_scale`). Every
`log_every` steps logs C^H(θ*(z)) and C^H(θ*(ẑ)), the hold-out loss of the virtual model
before and after the z update (paper Fig. 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bilevel import Evaluator, ImputedTargets

from .base import Batch, ema_decay, linear_ramp
from .meta import MetaMethod, renormalise
from .task import one_hot, soft_cross_entropy


@dataclass
class ImputeConfig:
    variant: str = "v1"  # v1 | v2
    base: str = "pseudo_label"  # pseudo_label | mean_teacher
    weight: float = 1.0  # λ after the ramp
    ramp: float = 0.4
    meta_lr: float = 1.0  # η_z (V1) / scale of the ψ-gradient (V2)
    inner_lr_scale: float = 1.0  # virtual step lr = lr × this
    log_every: int = 10


class Impute(MetaMethod):
    name = "impute"
    Config = ImputeConfig
    views = ("weak", "weak")
    needs_holdout = True

    def __init__(self, cfg, *args, **kwargs):
        super().__init__(cfg, *args, **kwargs)
        if cfg.variant not in ("v1", "v2"):
            raise ValueError(f"impute: variant must be 'v1' or 'v2', got {cfg.variant!r}")
        if cfg.base not in ("pseudo_label", "mean_teacher"):
            raise ValueError(f"impute: base must be pseudo_label or mean_teacher, got {cfg.base!r}")
        if cfg.base == "mean_teacher" and self.teacher is None:
            raise ValueError(
                "impute with base=mean_teacher needs an EMA teacher (set ema_decay > 0)"
            )
        self.classes = self.task.kind == "classification"

    def imputer(self):
        return self.teacher if self.cfg.base == "mean_teacher" else self.model

    def impute(self, batch: Batch, net) -> torch.Tensor:
        """ψ: prediction on view 1 moved into view 2's frame (differentiable in `net`)."""
        return batch.to_second_view(self.task, self.task.prediction(net(batch.u[0])))

    def unlabeled_loss(self, out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.classes:
            return soft_cross_entropy(out, z).mean()
        return self.task.consistency(out, z)

    def inner_problem(self, batch: Batch, z: torch.Tensor):
        u = batch.u[1]
        if self.classes:  # structured, so `analytic` serves one-layer models
            labeled = (batch.x, one_hot(batch.y, z.shape[1], z))
            inner = ImputedTargets(u, "ce", labeled=labeled)
            coupled = inner.unlabeled
        else:

            def coupled(f, hp):
                return self.unlabeled_loss(f(u), hp["z"])

            def inner(f, hp):
                return coupled(f, hp) + self.task.supervised(f(batch.x), batch.y)

        def outer(f):
            return self.task.supervised(f(batch.hold_x), batch.hold_y)

        return self.problem(inner, outer, coupled, lr_scale=self.cfg.inner_lr_scale)

    def meta_step(self, batch: Batch):
        """(z, g = ∂C^H/∂z, logs) without changing the model."""
        z = batch.to_second_view(self.task, self.predict(self.imputer(), batch.u[0]))
        problem = self.inner_problem(batch, z)
        g = self.hypergradient(problem, {"z": z})["z"]
        logs = {"meta_grad_norm": g.norm().item()}
        if batch.step % self.cfg.log_every == 0:
            with Evaluator(problem) as ev:
                for tag, target in (("before", z), ("after", self.updated(z, g))):
                    theta = ev.first_step({"z": target})
                    logs[f"holdout_{tag}"] = ev.outer(theta).item()
        return z, g, logs

    def updated(self, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        z_hat = z - self.cfg.meta_lr * len(z) * g
        return renormalise(z_hat) if self.classes else z_hat

    def train_step(self, batch: Batch) -> dict[str, float]:
        self.model.train()
        lam = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        z, g, logs = self.meta_step(batch)
        target = self.updated(z, g) if self.cfg.variant == "v1" else z
        sup = self.task.supervised(self.model(batch.x), batch.y)
        unsup = self.unlabeled_loss(self.model(batch.u[1]), target)
        loss = sup + lam * unsup
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.variant == "v2":
            logs["psi_grad_norm"] = self._psi_gradient(batch, g)
        self.optimizer.step()
        return {"loss": loss.item(), "sup": sup.item(), "unsup": unsup.item(), **logs}

    def _psi_gradient(self, batch: Batch, g: torch.Tensor) -> float:
        """Add η_z B_u gᵀ ∂ψ/∂θ to the parameters' gradients (V2); returns its norm."""
        net, scale = self.imputer(), self.cfg.meta_lr * len(g)
        if self.cfg.base == "mean_teacher":  # ∂θ_EMA/∂θ of this step's EMA update
            scale *= 1.0 - ema_decay(batch.step, self.teacher_decay)
        params = [p for p in net.parameters() if p.requires_grad]
        surrogate = (self.impute(batch, net) * g).sum() * scale
        grads = torch.autograd.grad(surrogate, params, allow_unused=True)
        for p, extra in zip(self.model.parameters(), grads, strict=True):
            if extra is not None:
                p.grad = extra if p.grad is None else p.grad + extra
        return float(torch.cat([e.flatten() for e in grads if e is not None]).norm())
