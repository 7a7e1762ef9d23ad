"""`higher`: exact hypergradient by reverse mode through `higher`'s differentiable SGD.

The reference implementation most meta-learning code uses: `higher.innerloop_ctx` patches the
model into a functional one and unrolls `torch.optim.SGD` (momentum, nesterov, weight decay and
the real optimizer's momentum buffers included) with the graph kept for the outer backward.
"""

from __future__ import annotations

import higher
import torch
from torch import Tensor

from ..functional import Evaluator, grad_dict
from ..problem import BilevelProblem, ModelFn


def higher_unroll(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    named = [(n, p) for n, p in problem.model.named_parameters() if p.requires_grad]
    cfg = problem.optim
    opt = torch.optim.SGD(
        [p for _, p in named],
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
        for _ in range(problem.steps):
            ev.replay_rng()
            diffopt.step(problem.inner_loss(_bound(fmodel, problem), hp))
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
