"""`truncated`: reverse mode through the last T of K steps, against `func` (T = K, bit for bit)
and against `func` from θ_{K−T} with the optimizer state after K−T real torch.optim steps."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F

from bilevel import BilevelProblem, ModelFn, hypergradient
from bilevel.examples import BUILDERS

from .helpers import DT, MODELS, batch, mlp, real_optimizer, rel_error

SEED = 123  # the random state at the call: the dropout masks of every loss evaluation
SETTINGS = {
    "sgd_nesterov_wd": {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-2},
    "adam": {"optimizer": "adam", "betas": (0.5, 0.75), "weight_decay": 1e-2},
}


def _problem(model_name: str, steps: int, settings: str) -> tuple[BilevelProblem, dict]:
    model = mlp(dropout=0.5) if model_name == "mlp_dropout" else MODELS[model_name]()
    lr = 0.05 if settings == "adam" else 0.3
    return BUILDERS["a_imputed_away"](model, batch(), lr=lr, steps=steps, **SETTINGS[settings])


def _call(problem: BilevelProblem, hp: dict, name: str, **options) -> dict:
    torch.manual_seed(SEED)
    return hypergradient(problem, hp, name, **options)


def _after_real_steps(problem: BilevelProblem, hp: dict, n: int) -> BilevelProblem:
    """The problem continued from θ_n: `n` steps of torch's own optimizer on a deep copy of the
    model (re-seeded before each loss, as the estimators replay the random state), the rest of
    the steps left to take, from the optimizer's state after those `n` steps."""
    model = copy.deepcopy(problem.model)
    opt = real_optimizer(problem, model)
    for _ in range(n):
        torch.manual_seed(SEED)
        opt.zero_grad()
        problem.inner_loss(ModelFn.of(model), {k: v.detach() for k, v in hp.items()}).backward()
        opt.step()
    names = {p: name for name, p in model.named_parameters()}
    state = {names[p]: {k: v.detach().clone() for k, v in s.items()} for p, s in opt.state.items()}
    if problem.optimizer == "sgd":
        settings = {"momentum_buffers": {n: s["momentum_buffer"] for n, s in state.items()}}
    else:
        settings = {"adam_state": state}
    return dataclasses.replace(problem, model=model, steps=problem.steps - n, **settings)


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("model_name", ["mlp_dropout", "cnn_bn"])
def test_all_steps_is_func_bit_for_bit(model_name, steps, settings):
    problem, hp = _problem(model_name, steps, settings)
    got = _call(problem, hp, "truncated", last=steps)
    ref = _call(problem, hp, "func")
    assert all(torch.equal(got[k], ref[k]) for k in ref)


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("last", [1, 2])
def test_the_last_steps_from_the_state_after_the_first_ones(last, settings):
    """T = 1 is the one-step hypergradient at θ_{K−1}; T = 2 the two-step one at θ_{K−2}."""
    steps = 4
    problem, hp = _problem("mlp_dropout", steps, settings)
    got = _call(problem, hp, "truncated", last=last)
    ref = _call(_after_real_steps(problem, hp, steps - last), hp, "func")
    assert rel_error(got, ref) <= 1e-10
    # a control: the truncated hypergradient is another quantity than the full one
    assert rel_error(got, _call(problem, hp, "func")) > 1e-3


def test_a_learned_learning_rate_is_differentiated_through_the_last_steps():
    torch.manual_seed(0)
    model = MODELS["mlp"]()
    b = batch()
    layers = [n for n, m in model.named_modules() if list(m.parameters(recurse=False))]

    def scale(hp):  # lr·e^{λ_l} for the parameters of layer l
        return {
            n: hp["log_lr"][layers.index(n.rpartition(".")[0])].exp()
            for n, _ in model.named_parameters()
        }

    def inner(f, hp):
        return F.cross_entropy(f(b.x_lab), b.y_lab)

    def outer(f):
        return F.cross_entropy(f(b.x_out), b.y_out)

    hp = {"log_lr": torch.tensor([-0.3, 0.4], dtype=DT)}
    settings = {"lr": 0.3, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}
    problem = BilevelProblem(model, inner, outer, steps=3, lr_scale=scale, **settings)
    full = _call(problem, hp, "truncated", last=3)
    assert torch.equal(full["log_lr"], _call(problem, hp, "func")["log_lr"])
    # T = 1 against func's one step from θ₂, reached by torch.optim.SGD with a group per layer
    copied = copy.deepcopy(model)
    groups = [
        {"params": list(m.parameters(recurse=False)), "lr": 0.3 * float(hp["log_lr"][i].exp())}
        for i, m in enumerate(dict(copied.named_modules())[n] for n in layers)
    ]
    opt = torch.optim.SGD(groups, **settings)
    for _ in range(2):
        opt.zero_grad()
        inner(ModelFn.of(copied), hp).backward()
        opt.step()
    buffers = {n: opt.state[p]["momentum_buffer"].clone() for n, p in copied.named_parameters()}
    one = dataclasses.replace(problem, model=copied, steps=1, momentum_buffers=buffers)
    got = _call(problem, hp, "truncated", last=1)
    assert rel_error(got, _call(one, hp, "func")) <= 1e-10
    assert float(got["log_lr"].abs().min()) > 1e-6


def test_more_differentiated_steps_than_steps_is_refused():
    problem, hp = _problem("mlp_dropout", 3, "sgd_nesterov_wd")
    with pytest.raises(ValueError, match=r"option last=4 exceeds steps=3"):
        hypergradient(problem, hp, "truncated", last=4)


@pytest.mark.parametrize("last", [0, -1, 1.0, True])
def test_the_option_rule_names_the_option(last):
    problem, hp = _problem("mlp_dropout", 3, "sgd_nesterov_wd")
    message = f"estimator 'truncated': option last must be an int >= 1, got {last!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        hypergradient(problem, hp, "truncated", last=last)
