"""A learned per-layer learning rate (`BilevelProblem.lr_scale`): the inner steps use lr·s_l(λ)
for the parameters of layer l, and the unrolling estimators differentiate through them, against
a brute-force difference through torch.optim.SGD with one param group per layer, and against
TorchOpt (one MetaSGD per layer, its lr a tensor), in float64."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torchopt

from bilevel import BilevelProblem, ModelFn, hypergradient

from .helpers import DT, MODELS, batch, rel_error

LR = 0.3


def _layers(model):
    """(module name, module) of the layers with parameters."""
    return [(n, m) for n, m in model.named_modules() if list(m.parameters(recurse=False))]


def _problem(model_name: str, steps: int, **settings):
    model = MODELS[model_name]()
    b = batch()
    layers = _layers(model)

    def scale(hp):  # s_l = e^{λ_l} for every parameter of layer l
        return {
            f"{name}.{p}": hp["log_lr"][i].exp()
            for i, (name, m) in enumerate(layers)
            for p, _ in m.named_parameters(recurse=False)
        }

    def inner(f, hp):
        return F.cross_entropy(f(b.x_lab), b.y_lab)

    def outer(f):
        return F.cross_entropy(f(b.x_out), b.y_out)

    hp = {"log_lr": torch.linspace(-0.5, 0.5, len(layers), dtype=DT)}
    problem = BilevelProblem(model, inner, outer, lr=LR, steps=steps, lr_scale=scale, **settings)
    return problem, hp


def _outer_after_sgd(problem: BilevelProblem, hp: dict) -> float:
    """G(θ_K) by torch.optim.SGD with one param group per layer at lr·e^{λ_l}."""
    model = copy.deepcopy(problem.model)
    groups = [
        {"params": list(m.parameters(recurse=False)), "lr": LR * float(hp["log_lr"][i].exp())}
        for i, (_, m) in enumerate(_layers(model))
    ]
    opt = torch.optim.SGD(
        groups,
        lr=LR,
        momentum=problem.momentum,
        nesterov=problem.nesterov,
        weight_decay=problem.weight_decay,
    )
    for _ in range(problem.steps):
        opt.zero_grad()
        problem.inner_loss(ModelFn.of(model), hp).backward()
        opt.step()
    with torch.no_grad():
        return float(problem.outer_loss(ModelFn.of(model)))


def _brute_force(problem: BilevelProblem, hp: dict, h: float = 1e-6) -> dict:
    grad = torch.zeros_like(hp["log_lr"])
    for i in range(len(grad)):
        vals = []
        for sign in (1.0, -1.0):
            shifted = hp["log_lr"].clone()
            shifted[i] += sign * h
            vals.append(_outer_after_sgd(problem, {"log_lr": shifted}))
        grad[i] = (vals[0] - vals[1]) / (2 * h)
    return {"log_lr": grad}


def _torchopt(problem: BilevelProblem, hp: dict) -> dict:
    """One MetaSGD per layer, its lr the tensor lr·e^{λ_l}, autograd through the K steps."""
    model = copy.deepcopy(problem.model)
    log_lr = hp["log_lr"].detach().requires_grad_()
    opts = [
        torchopt.MetaSGD(
            m,
            lr=LR * log_lr[i].exp(),
            momentum=problem.momentum,
            nesterov=problem.nesterov,
            weight_decay=problem.weight_decay,
        )
        for i, (_, m) in enumerate(_layers(model))
    ]
    for _ in range(problem.steps):
        loss = problem.inner_loss(ModelFn.of(model), hp)
        for opt in opts:  # each differentiates the same loss in its own layer's parameters
            opt.step(loss)
    return {"log_lr": torch.autograd.grad(problem.outer_loss(ModelFn.of(model)), log_lr)[0]}


SETTINGS = {"plain": {}, "nesterov_wd": {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}}


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("model_name", ["mlp", "cnn_bn"])
def test_learned_per_layer_lr_under_the_unrolling_estimators(model_name, steps, settings):
    problem, hp = _problem(model_name, steps, **SETTINGS[settings])
    ref = _brute_force(problem, hp)
    for name in ("func", "higher", "auto"):
        got = hypergradient(problem, hp, name)
        assert rel_error(got, ref) <= 1e-6, (name, rel_error(got, ref))
    exact = hypergradient(problem, hp, "func")
    assert rel_error(hypergradient(problem, hp, "higher"), exact) <= 1e-10
    assert rel_error(hypergradient(problem, hp, "func", checkpoint=True), exact) <= 1e-12
    assert float(ref["log_lr"].abs().min()) > 1e-6


@pytest.mark.parametrize("steps", [1, 5])
def test_learned_per_layer_lr_equals_torchopt(steps):
    problem, hp = _problem("mlp", steps, momentum=0.9, nesterov=True, weight_decay=1e-2)
    oracle = _torchopt(problem, hp)
    assert rel_error(hypergradient(problem, hp, "func"), oracle) <= 1e-10


@pytest.mark.parametrize("estimator", ["forward", "fd", "analytic", "implicit"])
def test_the_one_step_and_implicit_estimators_refuse_a_learned_lr(estimator):
    problem, hp = _problem("mlp", 1)
    with pytest.raises(ValueError, match=r"lr_scale: .*'func' or 'higher'"):
        hypergradient(problem, hp, estimator)


def test_a_learned_lr_with_adam_unrolls_under_func():
    """Adam's step lr/(1 − β₁ᵗ)·m/(√v̂ + ε) scaled per layer, against torch.optim.Adam."""
    problem, hp = _problem("mlp", 3, optimizer="adam", betas=(0.5, 0.75))
    problem = BilevelProblem(
        problem.model,
        problem.inner_loss,
        problem.outer_loss,
        lr=0.01,
        steps=3,
        optimizer="adam",
        betas=(0.5, 0.75),
        lr_scale=problem.lr_scale,
    )
    got = hypergradient(problem, hp, "func")

    def outer_after_adam(log_lr):
        model = copy.deepcopy(problem.model)
        groups = [
            {"params": list(m.parameters(recurse=False)), "lr": 0.01 * float(log_lr[i].exp())}
            for i, (_, m) in enumerate(_layers(model))
        ]
        opt = torch.optim.Adam(groups, betas=(0.5, 0.75))
        for _ in range(3):
            opt.zero_grad()
            problem.inner_loss(ModelFn.of(model), hp).backward()
            opt.step()
        with torch.no_grad():
            return float(problem.outer_loss(ModelFn.of(model)))

    h, ref = 1e-6, torch.zeros_like(hp["log_lr"])
    for i in range(len(ref)):
        up, down = hp["log_lr"].clone(), hp["log_lr"].clone()
        up[i] += h
        down[i] -= h
        ref[i] = (outer_after_adam(up) - outer_after_adam(down)) / (2 * h)
    assert rel_error(got, {"log_lr": ref}) <= 1e-6
