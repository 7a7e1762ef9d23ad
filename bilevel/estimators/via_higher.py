"""`higher`: exact hypergradient by reverse mode through `higher`'s differentiable SGD.

The reference implementation most meta-learning code uses: `higher.innerloop_ctx` patches the
model into a functional one and unrolls `torch.optim.SGD` (momentum, nesterov, weight decay and
the real optimizer's momentum buffers included) with the graph kept for the outer backward.

`higher` is an optional dependency (`pip install 'bilevel-ssl[higher]'`), imported at the first
call: without it, calling this estimator raises `bilevel.extras.MissingExtra` naming the extra.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..extras import require
from ..functional import Evaluator, grad_dict
from ..problem import BilevelProblem, ModelFn
from .base import Estimator


@dataclass(frozen=True)
class Higher(Estimator):
    name = "higher"
    summary = "reverse mode through higher's differentiable torch.optim.SGD (the common reference)"
    exact = True
    priority = 3
    optimizers = ("sgd",)
    learned_lr = True

    @classmethod
    def optimizer_refusal(cls, optimizer: str, weight_decay: float = 0.0) -> str | None:
        if optimizer != "sgd":
            return (
                "higher: its DifferentiableAdam adds eps before the bias correction (eps/√(1−β₂ᵗ) "
                "in torch.optim.Adam's terms) and has no AdamW, so it unrolls another optimizer"
            )
        return None

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        return higher_unroll(problem, hparams)


def higher_unroll(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    higher = require("higher", "the 'higher' estimator")
    named = [(n, p) for n, p in problem.model.named_parameters() if p.requires_grad]
    cfg = problem.optim
    # a learned learning rate (`lr_scale`): one param group per parameter, each at its own lr
    groups = [{"params": [p]} for _, p in named] if problem.lr_scale else [p for _, p in named]
    opt = torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        dampening=cfg.dampening,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )
    for n, p in named:
        if n in problem.momentum_buffers:
            opt.state[p]["momentum_buffer"] = problem.momentum_buffers[n].detach().clone()
    with (
        Evaluator(problem) as ev,
        higher.innerloop_ctx(
            problem.model, opt, copy_initial_weights=True, track_higher_grads=True
        ) as (fmodel, diffopt),
    ):
        _use_in_forward(fmodel, problem.shard)
        hp = ev.hp(hparams)
        override = None
        if problem.lr_scale is not None:
            scale = problem.lr_scale(hp)
            override = {"lr": [cfg.lr * scale[n] if n in scale else cfg.lr for n, _ in named]}
        for _ in range(problem.steps):
            ev.replay_rng()
            diffopt.step(problem.inner_loss(_bound(fmodel, problem), hp), override=override)
        ev.replay_rng()
        return grad_dict(problem.outer_loss(_bound(fmodel, problem)), hparams)


def _bound(fmodel, problem: BilevelProblem) -> ModelFn:
    """higher's functional model as the losses see it: f(x), and f.params its current fast
    weights by name (data parallel: through `shard.use`, as its forward reads them)."""
    shard = problem.shard
    fast = dict(
        zip((n for n, _ in problem.model.named_parameters()), fmodel.fast_params, strict=True)
    )
    params = {
        n: shard.use(fast[n]) if shard.parallel else fast[n] for n in problem.trainable_names()
    }
    return ModelFn(fmodel, params)


def _use_in_forward(fmodel, shard) -> None:
    """Data parallel: higher's forward reads its fast weights through `shard.use`
    (`bilevel.parallel`), so their gradients are summed over ranks at the model's use only, as
    `Evaluator.f` does; the optimizer's own arithmetic on them stays per-rank."""
    if shard.parallel:
        expand = fmodel._expand_params
        fmodel._expand_params = lambda params: [shard.use(p) for p in expand(params)]
