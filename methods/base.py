"""The method contract: one `train_step` template for every method, the shared loop does the rest.

A method gets the model, its optimizer, the task, the EMA teacher (when it asks for one) with its
decay, and the name of a hypergradient estimator (meta methods). It never opens files or parses
configs.

A base method writes `loss(batch)` in terms of the targets, masks or weights it computes in
hooks of its own (`targets`, `mask`, `weights`). A meta method names its base (`base`), subclasses
it and overrides only the hook its paper changes, through a meta step. `train_step` takes one
optimizer step per `Step` that `losses(batch)` yields (one by default; more where a paper's
iteration takes several, e.g. the Learning-to-Impute authors' base step followed by the
imputation step).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from bilevel import Shard, frozen_norm_stats
from bilevel.parallel import LOCAL

from .task import Task


@dataclass
class Batch:
    """One step's data. Images are float tensors; `y` are class indices or standardised landmarks.

    `u` holds the views of the unlabeled batch the method asked for (its `views`), `u_offsets`
    their translations in pixels (landmarks), `u_true` the hidden ground truth of the unlabeled
    samples (diagnostics only), `hold_x/hold_y` a hold-out batch (Learning to Impute).
    """

    x: Tensor
    y: Tensor
    u: list[Tensor]
    step: int
    total_steps: int
    u_offsets: list[Tensor] | None = None
    u_true: Tensor | None = None
    hold_x: Tensor | None = None
    hold_y: Tensor | None = None

    @property
    def progress(self) -> float:
        return self.step / max(1, self.total_steps)

    def to_second_view(self, task: Task, pred: Tensor) -> Tensor:
        """A prediction made on view `u[0]`, moved into the frame of view `u[1]` (landmarks)."""
        offsets = self.u_offsets or [None, None]
        return task.transfer(pred, offsets[0], offsets[1])

    def map(self, fn: Callable[[Tensor], Tensor]) -> Batch:
        """A copy with `fn` applied to every tensor (those in the lists of views too)."""

        def apply(v: Any) -> Any:
            if isinstance(v, Tensor):
                return fn(v)
            return [apply(t) for t in v] if isinstance(v, list) else v

        return replace(self, **{f.name: apply(getattr(self, f.name)) for f in fields(self)})

    def pin_memory(self) -> Batch:
        """A copy with every tensor in pinned memory (`DataLoader(pin_memory=True)` calls it)."""
        return self.map(Tensor.pin_memory)

    def part(self, shard: Shard) -> Batch:
        """This rank's rows of every per-sample tensor (data parallel; `bilevel.parallel`)."""
        return self.map(shard.part) if shard.parallel else self


# the `amp` modes `Method.autocast` implements (fp16 would need a gradient scaler: not supported)
AMP = ("none", "bf16")


def ema_decay(step: int, decay: float) -> float:
    """d_t = min(1 − 1/(t+1), d): the EMA teacher's decay at update t (Mean Teacher's warm-up)."""
    return min(1.0 - 1.0 / (step + 1.0), decay)


@contextmanager
def training_mode(model: nn.Module, mode: bool) -> Iterator[nn.Module]:
    """`model.train(mode)` inside the block; the model's own mode restored on exit."""
    was_training = model.training
    model.train(mode)
    try:
        yield model
    finally:
        model.train(was_training)


def linear_ramp(progress: float, fraction: float) -> float:
    """0 → 1 linearly over the first `fraction` of training, then 1."""
    return 1.0 if fraction <= 0 else min(1.0, progress / fraction)


@dataclass
class NoConfig:
    """For methods without hyperparameters."""


FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max: settings reach float32


def _unit(v: float) -> bool:
    return 0.0 <= v <= 1.0


class Rule(NamedTuple):
    """What a numeric hyperparameter must be: `ok(value)`, and `what` for the error message."""

    ok: Callable[[Any], bool]
    what: str


PROBABILITY = Rule(_unit, "a probability in [0, 1]")
FRACTION = Rule(_unit, "a fraction of training in [0, 1]")  # of `steps` (a ramp)
NON_NEGATIVE = Rule(lambda v: v >= 0, ">= 0")
POSITIVE = Rule(lambda v: v > 0, "> 0")
BETA_SHAPE = Rule(lambda v: v > 0, "> 0 (a Beta parameter)")  # the shape γ of Beta(γ, γ)
AT_LEAST_ONE = Rule(lambda v: v >= 1, ">= 1")


def hp(default: Any, rule: Rule | None = None, choices: tuple[str, ...] = ()) -> Any:
    """A method hyperparameter: a dataclass field with its default and what it must be (a
    numeric `rule` or one of `choices`), which `check_config` checks. A Config that narrows an
    inherited field's choices declares the field again."""
    return field(default=default, metadata={"rule": rule, "choices": choices})


def check_config(cfg: Any) -> list[tuple[str, str]]:
    """(field, what it must be) for each hyperparameter of `cfg` that is out of range: floats
    finite, and each field's own `rule` or `choices` (declared with `hp`)."""
    bad = []
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        rule, choices = f.metadata.get("rule"), f.metadata.get("choices", ())
        if isinstance(v, float) and not (math.isfinite(v) and abs(v) <= FLOAT32_MAX):
            bad.append((f.name, f"must be finite and within float32's range, got {v}"))
        elif choices and v not in choices:
            bad.append((f.name, f"must be one of {', '.join(choices)}, got {v!r}"))
        elif rule is not None and isinstance(v, int | float) and not rule.ok(v):
            bad.append((f.name, f"must be {rule.what}, got {v}"))
    return bad


def choices_of(cfg: Any, name: str) -> tuple[str, ...]:
    """The values field `name` of the config dataclass `cfg` may take (none declared: ())."""
    found = [f for f in fields(cfg) if f.name == name] if is_dataclass(cfg) else []
    return found[0].metadata.get("choices", ()) if found else ()


@dataclass
class Step:
    """One optimizer step of an iteration: its loss, its logs, and extra gradients
    `(parameter, gradient)` added to `.grad` after `loss.backward()` (a hypergradient that
    reaches θ outside the loss's graph, e.g. through the EMA teacher)."""

    loss: Tensor
    logs: dict[str, float] = field(default_factory=dict)
    extra: Sequence[tuple[Tensor, Tensor]] = ()


def add_grads(pairs: Sequence[tuple[Tensor, Tensor | None]], replace: bool = False) -> None:
    """Write gradients into `.grad`: `p.grad = g` (`replace`) or `p.grad += g`; None skips."""
    for p, g in pairs:
        if g is None:
            continue
        g = g.detach().to(p.dtype)
        p.grad = g if replace or p.grad is None else p.grad + g


class Method:
    name: ClassVar[str]
    base: ClassVar[str | None] = None  # the base method a meta method builds on
    Config: ClassVar[type] = NoConfig
    views: ClassVar[tuple[str, ...]] = ("weak",)  # augmentations of the unlabeled batch
    tasks: ClassVar[tuple[str, ...]] = ("classification", "landmarks")
    needs_teacher: ClassVar[bool] = False
    needs_holdout: ClassVar[bool] = False
    # its losses are written as this rank's parts of the global ones (NPROC > 1 allowed)
    data_parallel: ClassVar[bool] = True

    def __init__(
        self,
        cfg: Any,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        task: Task,
        teacher: nn.Module | None = None,
        estimator: str = "auto",
        estimator_kw: dict[str, Any] | None = None,
        teacher_decay: float = 0.0,
        shard: Shard = LOCAL,
        rank_local: bool = False,
        amp: str = "none",
    ) -> None:
        if task.kind not in self.tasks:
            raise ValueError(f"method {self.name!r} supports tasks {self.tasks}, not {task.kind!r}")
        if self.needs_teacher and teacher is None:
            raise ValueError(f"method {self.name!r} needs an EMA teacher (set ema_decay > 0)")
        for key, message in check_config(cfg) if is_dataclass(cfg) else ():
            raise ValueError(f"{self.name}: {key} {message}")
        self.cfg, self.model, self.optimizer, self.task = cfg, model, optimizer, task
        self.teacher, self.estimator = teacher, estimator
        self.estimator_kw = dict(estimator_kw or {})
        self.teacher_decay = teacher_decay  # d of the EMA teacher: min(1 − 1/(t+1), d) at step t
        # data parallel (`bilevel.parallel`): the batch is this rank's slice of the global one;
        # losses and logs are this rank's parts of the global values (Σ over ranks)
        self.shard = shard
        self.step = 0  # the step `train_step` is taking
        if amp not in AMP:
            raise ValueError(f"amp must be one of {', '.join(AMP)}, got {amp!r}")
        self.amp = amp  # "bf16": losses under bfloat16 autocast (`train_step`)
        # the shard of the meta step's losses: this rank's own batch under `rank_local`
        self.meta_shard = LOCAL if rank_local else shard
        if shard.parallel and not self.data_parallel:
            raise ValueError(f"method {self.name!r} does not support data parallel training yet")

    @torch.no_grad()
    def predict(self, net: nn.Module, x: Tensor) -> Tensor:
        """The task's prediction of `net` on `x` without touching BatchNorm statistics."""
        with frozen_norm_stats(net):
            return self.task.prediction(net(x))

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def losses(self, batch: Batch) -> Iterator[Step]:
        """The optimizer steps of one iteration, in order; each is taken before the next is
        computed. Default: one step on `loss(batch)`."""
        yield Step(*self.loss(batch))

    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
        """One iteration: for each `Step`, zero the gradients, backward, add its extra
        gradients, step the optimizer. Logs `loss` (first step), `loss_2`, … and the steps' logs,
        as 0-d tensors left on the device (no host synchronisation; the loop reads them when it
        logs) or plain floats. Data parallel: the losses, extra gradients and logs are this
        rank's parts, and the gradients are summed over ranks before each optimizer step.
        `amp="bf16"`: each step's losses (the meta step's evaluations included) are computed
        under `torch.autocast` in bfloat16; backward and the optimizer step are outside it."""
        self.model.train()
        self.step = batch.step
        logs: dict[str, Tensor | float] = {}
        steps = self.losses(batch)
        for i in itertools.count():
            with self.autocast():
                step = next(steps, None)
            if step is None:
                break
            self.optimizer.zero_grad(set_to_none=True)
            step.loss.backward()
            add_grads(step.extra)
            self.sum_grads()
            self.optimizer.step()
            logs |= step.logs
            logs["loss" if i == 0 else f"loss_{i + 1}"] = step.loss.detach()
        return logs

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on the model's device under `amp="bf16"`, else nothing."""
        if self.amp == "none":
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16)

    def non_finite(self) -> tuple[int, str] | None:
        """(step, what) of the first non-finite value a meta step met; None (base methods)."""
        return None

    def eager_model(self) -> nn.Module:
        """The model itself; under `compile=true` `self.model` is its torch.compile'd module
        (the real step's forward) and this the uncompiled one the estimators evaluate."""
        return getattr(self.model, "_orig_mod", self.model)

    def sum_grads(self) -> None:
        """Data parallel: every parameter's `.grad` summed over ranks (one all-reduce)."""
        if not self.shard.parallel:
            return
        params = [p for p in self.model.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        total = self.shard.total(torch.cat([g.flatten() for g in grads]))
        for p, g in zip(params, total.split([g.numel() for g in grads]), strict=True):
            p.grad = g.view_as(p)

    def share(self, value: Tensor) -> Tensor:
        """A log whose value every rank holds alike, as this rank's share (value / ranks), so
        that the sum over ranks the loop takes gives it back."""
        return value / self.shard.world if self.shard.parallel else value

    def state_dict(self) -> dict[str, Any]:
        """Method state beyond model and optimizer (meta-networks, their optimizers, …)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"method {self.name!r} has no state, got keys {sorted(state)}")


@dataclass
class Registry:
    """Methods by name; unknown or duplicate names raise."""

    methods: dict[str, type[Method]] = field(default_factory=dict)

    def add(self, cls: type[Method]) -> type[Method]:
        if cls.name in self.methods:
            raise ValueError(f"duplicate method name {cls.name!r}")
        self.methods[cls.name] = cls
        return cls

    def base_of(self, name: str) -> str | None:
        """The base method of `name` (None for a base method)."""
        return self[name].base

    def __getitem__(self, name: str) -> type[Method]:
        if name not in self.methods:
            raise KeyError(f"unknown method {name!r}; valid: {', '.join(sorted(self.methods))}")
        return self.methods[name]

    def __contains__(self, name: str) -> bool:
        return name in self.methods

    def __iter__(self):
        return iter(self.methods)
