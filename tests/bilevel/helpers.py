"""Tiny float64 models and batches, and an independent brute-force reference."""

from __future__ import annotations

import copy

import torch
from torch import nn

from bilevel import BilevelProblem, ModelFn
from bilevel.examples import Batch

DT = torch.float64
N_CLASSES = 3


def mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(36, 8), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(8, N_CLASSES)).to(DT)


def cnn_bn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.Softplus(),  # smooth: brute-force differences need no kinks
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, N_CLASSES),
    ).to(DT)


def cnn_bn_conv(seed: int = 0) -> nn.Module:
    """A convolution after BatchNorm (as in CNN-13 and WRN-28-2), which exercises how forward
    mode carries a BatchNorm output's tangent into the next layer."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.Softplus(),
        nn.Conv2d(3, 3, 3),
        nn.Flatten(),
        nn.Linear(12, N_CLASSES),
    ).to(DT)


def linear(seed: int = 0, out: int = N_CLASSES) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, out)).to(DT)


MODELS = {"mlp": mlp, "cnn_bn": cnn_bn, "linear": linear}


def batch(seed: int = 1, n_lab: int = 5, n_unl: int = 4, n_out: int = 5) -> Batch:
    g = torch.Generator().manual_seed(seed)

    def x(n):
        return torch.randn(n, 1, 6, 6, generator=g, dtype=DT)

    def y(n):
        return torch.randint(0, N_CLASSES, (n,), generator=g)

    return Batch(x(n_lab), y(n_lab), x(n_unl), x(n_out), y(n_out))


def unrolled_outer(problem: BilevelProblem, hparams: dict, seed: int | None = None) -> float:
    """G(θ_K(λ)) by training a deep copy of the model with the real torch.optim.SGD.

    Independent of bilevel's functional code. BatchNorm running statistics of the copy change,
    which does not matter in train mode. `seed` re-seeds before every loss evaluation, the
    estimators' rule for randomness (dropout)."""
    model = copy.deepcopy(problem.model)
    opt = real_optimizer(problem, model)
    for _ in range(problem.steps):
        if seed is not None:
            torch.manual_seed(seed)
        opt.zero_grad()
        problem.inner_loss(ModelFn.of(model), hparams).backward()
        opt.step()
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        return float(problem.outer_loss(ModelFn.of(model)))


def real_optimizer(problem: BilevelProblem, model: nn.Module) -> torch.optim.Optimizer:
    """torch's own optimizer with the problem's settings and state, over `model`'s parameters."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    wd = problem.weight_decay
    if problem.optimizer == "sgd":
        opt = torch.optim.SGD(
            params,
            lr=problem.lr,
            momentum=problem.momentum,
            weight_decay=wd,
            nesterov=problem.nesterov,
            dampening=problem.dampening,
        )
        state = {n: {"momentum_buffer": b} for n, b in problem.momentum_buffers.items()}
    else:
        cls = torch.optim.Adam if problem.optimizer == "adam" else torch.optim.AdamW
        opt = cls(params, lr=problem.lr, betas=problem.betas, eps=problem.eps, weight_decay=wd)
        state = problem.adam_state
    for n, p in named:
        if n in state:
            opt.state[p] = {k: v.clone() for k, v in state[n].items()}
    return opt


def brute_force(problem: BilevelProblem, hparams: dict, h: float = 1e-6, seed=None) -> dict:
    """Central difference of G(θ_K(λ)) over every element of every hyperparameter."""
    out = {}
    for key, value in hparams.items():
        grad = torch.zeros_like(value)
        for i in range(value.numel()):
            vals = []
            for sign in (1.0, -1.0):
                shifted = value.clone()
                shifted.view(-1)[i] += sign * h
                vals.append(unrolled_outer(problem, {**hparams, key: shifted}, seed))
            grad.view(-1)[i] = (vals[0] - vals[1]) / (2 * h)
        out[key] = grad
    return out


def flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads.values()])


def rel_error(a: dict, b: dict) -> float:
    fa, fb = flat(a), flat(b)
    return float((fa - fb).norm() / fb.norm())


def cosine(a: dict, b: dict) -> float:
    return float(torch.nn.functional.cosine_similarity(flat(a), flat(b), dim=0))
