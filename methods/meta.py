"""What the meta-learning methods share: the virtual step (the real optimizer's, or plain SGD as in
the papers' algorithms and the authors' code), the call to `bilevel.hypergradient` with the
configured estimator, the meta step of a hyperparameter network, and small target utilities."""

from __future__ import annotations

import torch
from torch import Tensor

from bilevel import BilevelProblem, check_optimizer, choose, hypergradient
from bilevel.estimators import check_model
from bilevel.hypergrad import finite_flags, non_finite_message
from bilevel.problem import InnerLoss, OuterLoss, optimizer_kind

from .base import Method, add_grads, choices_of


class MetaMethod(Method):
    """A method whose step needs a hypergradient. The virtual step is the real optimizer's
    (`BilevelProblem.from_optimizer`: its current lr, momentum, nesterov, weight decay and
    momentum buffers) under `protocol=toolkit`, or one plain SGD step θ − α∇L (no momentum, no
    weight decay) under `protocol=authors` (the Meta-Gradient and Learning-to-Impute authors'
    code) and `protocol=paper` (the algorithms of Meta-Semi and Meta-T, which have no public
    code); the learning rate is scaled by `lr_scale` where a paper says so.

    Data parallel, the problem carries `meta_shard`: the global batch (the hypergradient of
    one process on it), or under `rank_local` this rank's own (each rank its own meta step, as
    the Meta-Gradient authors' ImageNet code; a hyperparameter network then steps on the mean
    of the ranks' hypergradients, so that its copies stay equal)."""

    def __init__(self, cfg, model, optimizer, *args, **kwargs):
        super().__init__(cfg, model, optimizer, *args, **kwargs)
        device = next(model.parameters()).device
        self._names: list[str] = []  # what the recorded non-finite values were
        self._codes: dict[tuple[str, ...], Tensor] = {}  # their indices, per call site
        self.estimators_run: set[str] = set()  # what `auto` picked (`bilevel.choose`)
        self._bad_step = torch.tensor(-1, device=device)  # first step with one (-1: none)
        self._bad_name = torch.tensor(0, device=device)
        if not self.plain_virtual_step():
            try:
                kind = optimizer_kind(optimizer)
            except TypeError:
                plain = [p for p in self.protocols() if p != "toolkit"]
                hint = f" (method.protocol={plain[0]} takes a plain SGD step)" if plain else ""
                raise ValueError(
                    f"{self.name}'s virtual step is the real optimizer's, which must be SGD, Adam "
                    f"or AdamW; got {type(optimizer).__name__}{hint}"
                ) from None
            wd = optimizer.param_groups[0]["weight_decay"]
            check_optimizer(self.estimator, kind, wd, self.eager_model())
        check_model(self.estimator, self.eager_model())

    def rank_local(self) -> bool:
        """Data parallel with each rank's own meta step."""
        return self.shard.parallel and not self.meta_shard.parallel

    def meta_part(self, value: Tensor) -> Tensor:
        """A value of the meta step's losses as this rank's share of the global log (under
        `rank_local` each rank's value is its own: its share is value / ranks)."""
        return self.share(value) if self.rank_local() else value

    def protocols(self) -> tuple[str, ...]:
        """The protocols this method offers (its Config's `protocol` choices; none: the
        toolkit's alone): the toolkit's (the real optimizer's virtual step), the authors' public
        code's, or, where no code is public, the paper's algorithm."""
        return choices_of(self.cfg, "protocol")

    def plain_virtual_step(self) -> bool:
        """The authors' and the papers' protocols take one plain SGD step; the toolkit's, the
        real optimizer's."""
        return getattr(self.cfg, "protocol", "toolkit") != "toolkit"

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def problem(
        self,
        inner: InnerLoss,
        outer: OuterLoss,
        coupled: InnerLoss | None = None,
        lr_scale: float = 1.0,
        replicated: tuple[str, ...] = (),
        first_inner_grad: dict[str, Tensor] | None = None,
    ) -> BilevelProblem:
        # lr 0 (a warm-up that starts from 0): the virtual step is the identity and every
        # hypergradient is 0, which `hypergradient` returns without evaluating; the problem is
        # built at lr 1 only to be well formed
        lr = self.current_lr() * lr_scale or 1.0
        kw = dict(coupled_loss=coupled, shard=self.meta_shard, replicated=replicated)
        kw["first_inner_grad"] = first_inner_grad
        model = self.eager_model()  # the estimators evaluate the uncompiled module
        if self.plain_virtual_step():
            return BilevelProblem(model, inner, outer, lr=lr, **kw)
        return BilevelProblem.from_optimizer(model, self.optimizer, inner, outer, lr=lr, **kw)

    def network_step(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        inner: InnerLoss,
        outer: OuterLoss,
    ) -> Tensor:
        """One step of `optimizer` on the parameters Θ of a hyperparameter network `net` along
        dG/dΘ (`inner(f, Θ)` sees Θ by parameter name); returns ‖dG/dΘ‖ (on the device, as
        this rank's share of the log)."""
        theta = {k: v.detach() for k, v in net.named_parameters()}
        grads = self.hypergradient(self.problem(inner, outer, replicated=tuple(theta)), theta)
        if self.rank_local():  # the mean of the ranks' hypergradients
            grads = {k: self.shard.total(g) / self.shard.world for k, g in grads.items()}
        optimizer.zero_grad(set_to_none=True)
        add_grads([(p, grads[name]) for name, p in net.named_parameters()], replace=True)
        optimizer.step()
        return self.share(torch.cat([g.flatten() for g in grads.values()]).norm())

    def hypergradient(
        self, problem: BilevelProblem, hparams: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """The configured estimator's hypergradient. Its finiteness is recorded on the device
        (`non_finite` reads it), not checked with a host synchronisation per meta step."""
        if self.current_lr() == 0:
            return {k: torch.zeros_like(v) for k, v in hparams.items()}
        picked = choose(problem, hparams) if self.estimator == "auto" else self.estimator
        self.estimators_run.add(picked)
        grads = hypergradient(  # `auto` runs its pick (choosing once); it has no options
            problem, hparams, picked, check_finite=False, **self.estimator_kw
        )
        self._record_finite(*finite_flags(hparams, grads))
        return grads

    def _record_finite(self, flags: Tensor, names: list[str]) -> None:
        """Keep, on the device, the first step whose meta step met a non-finite value and which
        value it was (an index into `self._names`)."""
        key = tuple(names)
        if key not in self._codes:  # once per call site: no host-to-device copy per step
            for name in names:
                if name not in self._names:
                    self._names.append(name)
            codes = [self._names.index(name) for name in names]
            self._codes[key] = torch.tensor(codes, device=flags.device)
        bad = ~flags
        code = self._codes[key][bad.int().argmax()]
        first = bad.any() & (self._bad_step < 0)
        self._bad_step = torch.where(first, self.step, self._bad_step)
        self._bad_name = torch.where(first, code, self._bad_name)

    def non_finite(self) -> tuple[int, str] | None:
        """(step, message) of the first non-finite meta step since the start, or None (reads
        the device: the training loop calls it at its checks)."""
        step = int(self._bad_step)
        if step < 0:
            return None
        return step, non_finite_message(self._names[int(self._bad_name)])


def sigmoid_mlp(inputs: int, hidden: int, like: Tensor) -> torch.nn.Sequential:
    """MLP {inputs, hidden, 1} with ReLU and a sigmoid output, on `like`'s device and dtype: the
    hyperparameter networks of Meta-T (thresholds) and Meta-Weight (sample weights)."""
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
        torch.nn.Sigmoid(),
    ).to(like.device, like.dtype)


def renormalise(y: Tensor) -> Tensor:
    """Clip soft labels at 0 and rescale rows to sum 1 (rows summing to 0 are left as they are),
    as the Meta-Gradient authors' code does after the meta step."""
    y = y.clamp_min(0)
    total = y.sum(1, keepdim=True)
    return torch.where(total > 0, y / total.clamp_min(1e-30), y)
