"""Meta Pseudo Labels (MPL; Pham, Dai, Xie, Luong, Le, CVPR 2021) on the soft Pseudo-Label base: a
teacher network T_Θ, of the student's architecture, makes the student's pseudo labels and learns
from how the student's labeled loss answers them.

    t_j = softmax T_Θ(u'_j)                             the teacher's soft pseudo labels
    θ̂(Θ) = θ − α ∇_θ mean_j ℓ(f(u''_j), softmax T_Θ(u'_j))   the student's virtual step
    G(θ̂) = CE(f(x; θ̂), y)                              the student's labeled loss after it
    Θ ← opt_T(Θ, dG/dΘ + ∇_Θ CE(T_Θ(x), y))             one step of the teacher
    the base's step with the targets t (made before the teacher's step)

ℓ is the base's unlabeled loss with soft targets (softmax-MSE, `soft=true`; the method refuses
hard targets), without the base's weight λ(t): the virtual step is MPL's student step on the
pseudo labels alone, taken as the real optimizer's (MetaMethod, `protocol` toolkit) at the
current lr α. The teacher is also trained on the labeled batch (its supervised cross-entropy, as
in MPL); MPL's UDA term on the teacher is left out. Its optimizer has the student's class and
settings with lr `teacher_lr` × the student's current lr (it follows the schedule). The teacher
is a deep copy of the student's initial model with every layer re-initialised
(`reset_parameters`) from the global generator right after the student's initialisation, so
with its own weights, as MPL's teacher and student are initialised apart. Its BatchNorm
statistics move with its training-mode forwards (pseudo labels, supervised loss), never in the
meta step.

`approximation="exact"` (default): dG/dΘ by the configured estimator, the hypergradient that
`MetaMethod.network_step` takes (`bilevel.hypergradient`), stepped together with the teacher's
supervised gradient (network_step would step on dG/dΘ alone). `approximation="paper"`: the
paper's estimate (Sec. 2, "Practical approximation", and App. A), not through
`bilevel.hypergradient`:

    ŷ_j ~ Cat(t_j)  (`paper_labels="sample"`, the paper's; "argmax": the arg-max)
    h = G(θ) − G(θ̂_ŷ)        θ̂_ŷ: the same virtual step on the one-hot labels ŷ
    dG/dΘ ≈ h · ∇_Θ mean_j CE(T_Θ(u'_j), ŷ_j)

Sign: h > 0 when the student's step on ŷ lowered its labeled loss, and the teacher, descending
h · CE(ŷ, T_Θ), makes ŷ more likely. This is REINFORCE on E_ŷ G(θ̂_ŷ) with baseline G(θ); since
ℓ is linear in its targets, in expectation over ŷ and to first order in α it is dG/dΘ / n (n the
unlabeled batch: REINFORCE's log-likelihood of the batch is a sum over samples, the paper's CE
a mean). Measured on one batch by tests/methods/test_meta_pseudo_labels.py (float64, MLP, n = 6):
one sampled ŷ: cosine −0.18, relative error 1.12; the arg-max ŷ: cosine +0.35, relative
error 0.97; the mean over 4000 draws: cosine +0.9996, relative error 0.83 (≈ 1 − 1/n), and n ×
that mean 0.03. One draw is mostly noise; the mean over draws is dG/dΘ / n.

The official code's training_utils.py (public repository google-research/google-research, path
meta_pseudo_labels/training_utils.py, class `MPL`, `step_fn`) trains the student on the
teacher's soft labels softmax T(u_aug) by cross-entropy, steps the student with its real
optimizer, and sets `dot_product` = CE_l(new student) − CE_l(old student) minus a moving average
of itself (rate 0.01), i.e. −h − b: the opposite sign of the paper's h. Its teacher loss is
UDA + CE_l(teacher) + `dot_product` × `cross_entropy['mpl']`, the last the cross-entropy of the
teacher's logits on u_aug against its own softmax (stop-gradient), whose gradient is
softmax − softmax = 0: with soft labels that code's teacher gets no signal from the student,
whatever the sign. Here the paper's estimate uses hard labels, as the paper describes.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from bilevel import BilevelProblem, Evaluator
from bilevel.hypergrad import finite_flags

from .base import NON_NEGATIVE, Batch, add_grads, frozen_norm_stats, hp
from .meta import MetaMethod
from .pseudo_label import PseudoLabel, PseudoLabelConfig, Targets
from .task import one_hot


@dataclass
class MetaPseudoLabelsConfig(PseudoLabelConfig):
    soft: bool = True  # the teacher's soft labels (hard targets are refused)
    # the teacher's dG/dΘ: the configured estimator, or the paper's estimate h·∇CE(ŷ, T)
    approximation: str = hp("exact", choices=("exact", "paper"))
    paper_labels: str = hp("sample", choices=("sample", "argmax"))  # ŷ under "paper"
    teacher_lr: float = hp(1.0, NON_NEGATIVE)  # × the student's current lr


def reinitialised(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with every layer's `reset_parameters()` called (global generator)."""
    net = copy.deepcopy(model)
    for module in net.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    return net


def same_kind(optimizer: torch.optim.Optimizer, params) -> torch.optim.Optimizer:
    """An optimizer of `optimizer`'s class with its settings (the defaults its constructor
    takes) over `params`."""
    cls = type(optimizer)
    takes = inspect.signature(cls.__init__).parameters
    return cls(params, **{k: v for k, v in optimizer.defaults.items() if k in takes})


class MetaPseudoLabels(MetaMethod, PseudoLabel):
    name = "meta_pseudo_labels"
    base = "pseudo_label"
    Config = MetaPseudoLabelsConfig
    tasks = ("classification",)
    data_parallel = False  # the teacher's own gradient is not summed over ranks yet

    def __init__(self, cfg, model, optimizer, *args, **kwargs):
        super().__init__(cfg, model, optimizer, *args, **kwargs)
        if self.hard():
            raise ValueError(f"{self.name}: the teacher's pseudo labels are soft; set soft=true")
        self.teacher_net = reinitialised(self.eager_model()).train()
        self.teacher_opt = same_kind(optimizer, self.teacher_net.parameters())
        # ŷ under approximation=paper, paper_labels=sample: its own CPU generator (checkpointed)
        self.sampler = torch.Generator().manual_seed(int(torch.randint(2**62, ())))

    def imputer(self) -> nn.Module:
        """ψ, whose prediction on u' makes the targets: the teacher."""
        return self.teacher_net

    def targets(self, batch: Batch) -> Targets:
        """softmax T_Θ(u'), then the teacher's step (the student learns from the labels the
        teacher gave before its step)."""
        self.teacher_net.train()
        target, mask, logs = super().targets(batch)
        return target, mask, logs | self.teacher_step(batch, target)

    def labeled_loss(self, batch: Batch):
        def outer(f):
            return self.task.supervised(f(batch.x), batch.y, self.meta_shard)

        return outer

    def teacher_problem(self, batch: Batch) -> tuple[BilevelProblem, dict[str, Tensor]]:
        """(the problem, Θ): inner = mean_j ℓ(f(u''_j), softmax T_Θ(u'_j)), outer = the
        student's labeled loss; Θ the teacher's parameters by name (detached)."""
        theta = {k: v.detach() for k, v in self.teacher_net.named_parameters()}
        u0, u1 = batch.u[0], batch.u[1]

        def inner(f, th):
            t = self.task.prediction(functional_call(self.teacher_net, th, (u0,)))
            return self.meta_shard.mean(self.per_sample_loss(f(u1), t))

        problem = self.problem(inner, self.labeled_loss(batch), replicated=tuple(theta))
        return problem, theta

    def exact_gradient(self, batch: Batch) -> dict[str, Tensor]:
        """dG/dΘ by the configured estimator."""
        with frozen_norm_stats(self.teacher_net):
            return self.hypergradient(*self.teacher_problem(batch))

    def pseudo_labels(self, probs: Tensor) -> Tensor:
        """ŷ: drawn from Cat(probs) with the method's generator, or the arg-max."""
        if self.cfg.paper_labels == "argmax":
            return probs.argmax(1)
        draw = torch.rand(len(probs), 1, generator=self.sampler, dtype=torch.float64)
        cdf = probs.detach().double().cumsum(1)
        return (cdf < draw.to(probs.device)).sum(1).clamp_max(probs.shape[1] - 1)

    def improvement(self, batch: Batch, labels: Tensor, classes: int, like: Tensor) -> Tensor:
        """h = G(θ) − G(θ̂_ŷ), θ̂_ŷ the virtual step on the one-hot labels ŷ (0 at lr 0)."""
        if self.current_lr() == 0:
            return like.new_zeros(())
        u1 = batch.u[1]

        def inner(f, hp):
            return self.meta_shard.mean(self.per_sample_loss(f(u1), hp["t"]))

        problem = self.problem(inner, self.labeled_loss(batch))
        with Evaluator(problem) as ev:
            before = ev.outer(problem.params()).detach()
            after = ev.outer(ev.first_step({"t": one_hot(labels, classes, like)})).detach()
        return before - after

    def paper_gradient(
        self, batch: Batch, probs: Tensor
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(h · ∇_Θ mean_j CE(T_Θ(u'_j), ŷ_j) by name, logs)."""
        labels = self.pseudo_labels(probs)
        h = self.improvement(batch, labels, probs.shape[1], probs)
        named = dict(self.teacher_net.named_parameters())
        with frozen_norm_stats(self.teacher_net):
            ce = F.cross_entropy(self.teacher_net(batch.u[0]), labels)
        grads = torch.autograd.grad(ce, list(named.values()))
        meta = {k: h * g for k, g in zip(named, grads, strict=True)}
        self._record_finite(*finite_flags(named, meta))
        return meta, {"mpl_h": h}

    def teacher_step(self, batch: Batch, probs: Tensor) -> dict[str, Tensor]:
        """Θ ← opt_T(Θ, dG/dΘ + ∇_Θ CE(T_Θ(x), y)) at lr `teacher_lr` × the student's lr."""
        logs: dict[str, Tensor] = {}
        if self.cfg.approximation == "paper":
            meta, logs = self.paper_gradient(batch, probs)
        else:
            meta = self.exact_gradient(batch)
        named = dict(self.teacher_net.named_parameters())
        sup = self.task.supervised(self.teacher_net(batch.x), batch.y)
        grads = torch.autograd.grad(sup, list(named.values()))
        for group in self.teacher_opt.param_groups:
            group["lr"] = self.cfg.teacher_lr * self.current_lr()
        self.teacher_opt.zero_grad(set_to_none=True)
        add_grads([(p, meta[k] + g) for (k, p), g in zip(named.items(), grads, strict=True)], True)
        self.teacher_opt.step()
        norm = torch.cat([g.flatten() for g in meta.values()]).norm()
        return logs | {"meta_grad_norm": norm.detach(), "teacher_sup": sup.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher_net.state_dict(),
            "teacher_opt": self.teacher_opt.state_dict(),
            "sampler": self.sampler.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher_net.load_state_dict(state["teacher"])
        self.teacher_opt.load_state_dict(state["teacher_opt"])
        self.sampler.set_state(state["sampler"])
