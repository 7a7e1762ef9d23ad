"""The bilevel problem: K differentiable SGD steps on an inner loss, an outer loss at the result.

    θ₀ = the model's current trainable parameters
    θ_{k+1} = SGD(θ_k, ∇_θ L_in(θ_k, λ))          k = 0 … K−1
    want   dG(θ_K(λ)) / dλ

`inner_loss(f, hparams)` and `outer_loss(f)` are written against a model function `f`
(`ModelFn`): `f(x)` evaluates the model at whatever (possibly virtual) parameters an estimator
chooses, and `f.params` are those parameters by name, so the same loss code, a penalty on θ
included, runs under every estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .adam import AdamConfig
from .parallel import LOCAL, Shard
from .sgd import SGDConfig

OPTIMIZERS = ("sgd", "adam", "adamw")


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """ "sgd", "adam" or "adamw" for a torch optimizer a virtual step can continue (AdamW also
    as Adam with `decoupled_weight_decay`); TypeError for any other."""
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        decoupled = isinstance(optimizer, torch.optim.AdamW) or any(
            g.get("decoupled_weight_decay") for g in optimizer.param_groups
        )
        return "adamw" if decoupled else "adam"
    raise TypeError(
        f"the virtual step is SGD, Adam or AdamW; got {type(optimizer).__name__}. Build a "
        "BilevelProblem with explicit settings to approximate another optimizer."
    )


class ModelFn:
    """The model at some parameters, as every estimator hands it to the losses.

        f(x)       the model's output at those parameters
        f.params   those parameters by name (the trainable ones, as in `named_parameters()`):
                   the tensors the estimator differentiates, so a penalty on θ (weight decay,
                   an L2 to a prior) written with them is part of the loss; ½ e^λ Σ ‖θ‖² is
                   `0.5 * hp["lam"].exp() * sum(p.pow(2).sum() for p in f.params.values())`

    A loss must read θ from `f.params`, never from the module (`model.parameters()` is θ₀,
    which no virtual step moves: the estimators refuse a loss that reads it). Under data
    parallel (`bilevel.parallel`) each rank's loss is its part of the global loss, so add a
    penalty on `f.params` once over the ranks (e.g. divided by the number of ranks).
    """

    __slots__ = ("_call", "_params")

    def __init__(self, call: Callable[[Tensor], Tensor], params: dict[str, Tensor]) -> None:
        self._call = call
        self._params = params

    @classmethod
    def of(cls, module: nn.Module) -> ModelFn:
        """`module` at its own parameters (to evaluate a problem's losses outside an
        estimator, e.g. in the real training step)."""
        own = {n: p for n, p in module.named_parameters() if p.requires_grad}
        return cls(module, own)

    def __call__(self, x: Tensor) -> Tensor:
        return self._call(x)

    @property
    def params(self) -> dict[str, Tensor]:
        return self._params

    def __getattr__(self, name: str):
        raise AttributeError(
            f"the model function has no {name!r}: a loss calls it as f(x) and reads the "
            "parameters it is evaluated at from f.params (a dict by name)"
        )


InnerLoss = Callable[[ModelFn, dict[str, Tensor]], Tensor]
OuterLoss = Callable[[ModelFn], Tensor]


@dataclass
class BilevelProblem:
    """A bilevel problem over `model`'s trainable parameters.

    Args:
        model: the network; starts from its current parameters and buffers, never modified.
        inner_loss: `inner_loss(f, hparams) -> scalar`, the loss the virtual steps descend.
        outer_loss: `outer_loss(f) -> scalar`, evaluated after the K steps (must not use λ).
        lr: the inner learning rate, as `torch.optim.SGD`'s (or Adam's).
        momentum: the inner SGD's momentum, as `torch.optim.SGD`'s.
        weight_decay: the inner weight decay, as `torch.optim.SGD`'s (or Adam's, AdamW's).
        nesterov: the inner SGD's Nesterov flag, as `torch.optim.SGD`'s.
        dampening: the inner SGD's dampening, as `torch.optim.SGD`'s.
        optimizer: the inner optimizer, "sgd" (the default), "adam" or "adamw", each with
            exactly torch.optim's arithmetic; Adam's `betas`, `eps` and `adam_state` (torch's
            per-parameter state by name: `step`, `exp_avg`, `exp_avg_sq`; empty: first step).
            SGD's momentum, dampening and nesterov do not apply to Adam.
        steps: K ≥ 1 virtual steps (`implicit` accepts K = 0: θ₀ is taken as the solution).
        momentum_buffers: the real optimizer's momentum buffers by parameter name, so the
            virtual step continues the real one; empty means a fresh buffer (first step).
        coupled_loss: optional `coupled_loss(f, hparams)`, the part of `inner_loss` that depends
            on λ (they must differ by a λ-free term, e.g. the labeled loss). The estimators that
            differentiate ∇_θ L_in in λ directly (`forward`, `fd`, `implicit`) evaluate only this
            part, which saves their forward passes over the λ-free data. It must see the same
            model calls as in `inner_loss` (BatchNorm statistics are per call) and, with
            dropout, draw random numbers as `inner_loss` does (λ-dependent term first).
        shard: this process's share of a data-parallel batch (`bilevel.parallel`): the losses
            are this rank's parts of the global losses, and the result is the global
            hypergradient (per-sample λ: this rank's samples; `replicated` λ: summed).
        replicated: the keys of hparams every rank holds alike (a hyperparameter network's
            weights); the others belong to this rank's samples.
        first_inner_grad: ∇_θ L_in(θ₀, λ) by parameter name when the caller already has it
            (e.g. zeros for an inner loss linear in λ at λ = 0, Meta-Semi's); the estimators
            that take the first virtual step without a graph (`forward`, `fd`, `analytic`) use
            it instead of a forward and backward pass over the inner batch.
        lr_scale: optional `lr_scale(hparams) -> {parameter name: factor}`: the inner steps
            use lr·factor for those parameters (others: lr), as torch.optim's param groups with
            their own lr; a learned per-layer learning rate, e.g. `{n: hp["log_lr"][i].exp()}`
            for the parameters n of layer i. The unrolling estimators (`func`, `higher`;
            `auto` picks `func`) differentiate through it; the others refuse it.
    """

    model: nn.Module
    inner_loss: InnerLoss
    outer_loss: OuterLoss
    lr: float = 0.1
    steps: int = 1
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    dampening: float = 0.0
    momentum_buffers: dict[str, Tensor] = field(default_factory=dict)
    coupled_loss: InnerLoss | None = None
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    adam_state: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    shard: Shard = LOCAL
    replicated: tuple[str, ...] = ()
    first_inner_grad: dict[str, Tensor] | None = None
    lr_scale: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(self.model).__name__}")
        if isinstance(self.model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            raise TypeError(
                f"model is wrapped in {type(self.model).__name__}: the estimators evaluate it at "
                "virtual parameters by name, which the wrapper's replicas do not follow; pass "
                "model.module (bilevel.Shard splits a batch over processes instead)"
            )
        if hasattr(self.model, "_orig_mod"):  # torch.compile's OptimizedModule
            raise TypeError(
                "model is a torch.compile'd module: the estimators evaluate it at virtual "
                "parameters (torch.func.functional_call, higher's patching), which a compiled "
                "graph does not follow; pass model._orig_mod (the same parameters) and keep the "
                "compiled module for the real step"
            )
        for name in ("inner_loss", "outer_loss"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{name} must be callable")
        if self.coupled_loss is not None and not callable(self.coupled_loss):
            raise TypeError("coupled_loss must be callable or None")
        if self.lr_scale is not None and not callable(self.lr_scale):
            raise TypeError("lr_scale must be callable (hparams -> factors by name) or None")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {self.steps!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        self.optim: SGDConfig | AdamConfig
        if self.optimizer == "sgd":
            self.optim = SGDConfig(
                lr=self.lr,
                momentum=self.momentum,
                dampening=self.dampening,
                weight_decay=self.weight_decay,
                nesterov=self.nesterov,
            )
        else:
            sgd_only = {"momentum": self.momentum, "dampening": self.dampening}
            sgd_only |= {"nesterov": self.nesterov, "momentum_buffers": self.momentum_buffers}
            given = sorted(k for k, v in sgd_only.items() if v)
            if given:
                raise ValueError(f"{given} are SGD settings; {self.optimizer} takes betas and eps")
            self.optim = AdamConfig(
                lr=self.lr,
                betas=tuple(self.betas),
                eps=self.eps,
                weight_decay=self.weight_decay,
                decoupled=self.optimizer == "adamw",
            )
        names = set(self.trainable_names())
        for what in ("momentum_buffers", "adam_state"):
            unknown = sorted(set(getattr(self, what)) - names)
            if unknown:
                raise KeyError(f"{what} has names that are not trainable parameters: {unknown}")
        if not names:
            raise ValueError("model has no trainable parameters")

    @classmethod
    def from_optimizer(
        cls,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        inner_loss: InnerLoss,
        outer_loss: OuterLoss,
        steps: int = 1,
        lr: float | None = None,
        coupled_loss: InnerLoss | None = None,
        **kw,
    ) -> BilevelProblem:
        """The virtual step of the real optimizer (`torch.optim.SGD`, `Adam` or `AdamW`, one
        param group): its current lr, settings and state (momentum buffers; Adam's step count
        and moments). `lr` overrides the learning rate (some methods take a larger virtual step);
        `kw` are the problem's other fields (`shard`, `replicated`)."""
        kind = optimizer_kind(optimizer)
        if len(optimizer.param_groups) != 1:
            raise ValueError("from_optimizer supports one param group")
        g = optimizer.param_groups[0]
        for flag in ("maximize", "amsgrad", "differentiable", "capturable"):
            if g.get(flag):
                raise ValueError(f"from_optimizer: {flag}=True is not supported")
        by_id = {id(p): n for n, p in model.named_parameters()}
        state = {by_id[id(p)]: optimizer.state.get(p, {}) for p in g["params"]}
        settings: dict = {"lr": float(g["lr"] if lr is None else lr), "steps": steps}
        settings["weight_decay"] = g["weight_decay"]
        if kind == "sgd":
            settings |= {k: g[k] for k in ("momentum", "nesterov", "dampening")}
            settings["momentum_buffers"] = {
                n: s["momentum_buffer"].detach().clone()
                for n, s in state.items()
                if s.get("momentum_buffer") is not None
            }
        else:
            settings |= {"optimizer": kind, "eps": g["eps"]}
            settings["betas"] = tuple(float(b) for b in g["betas"])
            settings["adam_state"] = {
                n: {k: s[k].detach().clone() for k in ("step", "exp_avg", "exp_avg_sq")}
                for n, s in state.items()
                if s
            }
        return cls(model, inner_loss, outer_loss, coupled_loss=coupled_loss, **settings, **kw)

    def initial_state(self) -> dict:
        """The inner optimizer's state at θ₀: momentum buffers (SGD) or Adam's moments."""
        return self.momentum_buffers if self.optimizer == "sgd" else self.adam_state

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    def params(self) -> dict[str, Tensor]:
        """θ₀: detached views of the trainable parameters (never written to)."""
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}
