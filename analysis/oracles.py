"""An outside reference for the core's hypergradients: TorchOpt's differentiable optimizers.

`torchopt_hypergradient(problem, hparams)` unrolls the problem's K virtual steps with
`torchopt.MetaSGD` / `MetaAdam` / `MetaAdamW` on a copy of the model and differentiates
G(θ_K(λ)) by autograd through them: the same quantity as the core's exact estimators,
computed by another library. `make compare` times it beside them (its `torchopt` row) and
tests/bilevel/test_torchopt.py checks the estimators against it in float64. TorchOpt is an
optional dependency (`pip install 'bilevel-ssl[torchopt]'`), imported at the first call.

TorchOpt computes Adam's bias corrections 1 − βᵗ in float32 (its step count is a float32
tensor), so its Adam matches torch.optim.Adam only to about 1e-5 relative with β₂ = 0.999;
with β's whose powers float32 holds exactly it matches to float64 rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from bilevel import BilevelProblem, ModelFn
from bilevel.extras import require


def torchopt_hypergradient(problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict:
    """dG(θ_K(λ))/dλ by TorchOpt: K steps of its differentiable optimizer with the problem's
    settings from a fresh state, then autograd. Like the core's estimators, every loss
    evaluation starts from the random state at the call (the same dropout masks), the model
    itself is not changed, and the global random state is restored."""
    torchopt = require("torchopt", "torchopt_hypergradient (the outside reference)")
    if problem.momentum_buffers or problem.adam_state or problem.dampening:
        raise ValueError("torchopt_hypergradient: fresh optimizer state and no dampening only")
    model = copy.deepcopy(problem.model)
    hparams = {k: v.detach().requires_grad_() for k, v in hparams.items()}
    if problem.optimizer == "sgd":
        opt = torchopt.MetaSGD(
            model,
            lr=problem.lr,
            momentum=problem.momentum,
            nesterov=problem.nesterov,
            weight_decay=problem.weight_decay,
        )
    else:
        cls = torchopt.MetaAdam if problem.optimizer == "adam" else torchopt.MetaAdamW
        opt = cls(
            model,
            lr=problem.lr,
            betas=problem.betas,
            eps=problem.eps,
            weight_decay=problem.weight_decay,
        )
    device = next(iter(problem.params().values())).device
    cuda = [device] if device.type == "cuda" else []

    def reset(cpu: Tensor, gpu: Tensor | None) -> None:
        torch.set_rng_state(cpu)
        if gpu is not None:
            torch.cuda.set_rng_state(gpu, device)

    with torch.random.fork_rng(devices=cuda):
        state = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None)
        for _ in range(problem.steps):
            reset(*state)
            opt.step(problem.inner_loss(ModelFn.of(model), hparams))
        reset(*state)
        outer = problem.outer_loss(ModelFn.of(model))
    grads = torch.autograd.grad(outer, list(hparams.values()))
    return dict(zip(hparams, grads, strict=True))
