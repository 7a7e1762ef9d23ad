"""The virtual SGD step against torch.optim.SGD, and problems built from a real optimizer."""

import copy
import dataclasses

import pytest
import torch

from bilevel import BilevelProblem, SGDConfig, hypergradient, sgd_step
from bilevel.examples import BUILDERS
from bilevel.functional import Evaluator

from .helpers import MODELS, batch, brute_force, rel_error

CONFIGS = {
    "plain": dict(lr=0.1),
    "wd": dict(lr=0.1, weight_decay=1e-2),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=1e-3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
}


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_trajectory_matches_torch_optim_sgd(cfg):
    model = MODELS["mlp"]()
    b = batch()
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(reference.parameters(), **CONFIGS[cfg])
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers: dict = {}
    for step in range(4):
        x = b.x_lab * (1 + step)  # a different gradient every step
        opt.zero_grad()
        torch.nn.functional.cross_entropy(reference(x), b.y_lab).backward()
        opt.step()
        leaves = {n: p.requires_grad_() for n, p in params.items()}
        loss = torch.nn.functional.cross_entropy(
            torch.func.functional_call(model, leaves, (x,)), b.y_lab
        )
        grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
        params, buffers = sgd_step(
            {n: p.detach() for n, p in leaves.items()}, grads, buffers, SGDConfig(**CONFIGS[cfg])
        )
        for n, p in reference.named_parameters():
            assert torch.allclose(params[n], p, rtol=1e-13, atol=1e-15), (step, n)


def test_from_optimizer_continues_the_real_optimizer():
    """A problem built from a used optimizer takes its lr, momentum and buffers: θ₁ equals the
    real optimizer's next step, and the hypergradient matches a brute force through it."""
    model = MODELS["mlp"]()
    b = batch()
    opt = torch.optim.SGD(
        model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-3
    )
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(b.x_lab), b.y_lab).backward()
        opt.step()
    problem, hp = BUILDERS["a_imputed_away"](model, b, lr=1.0)
    problem = BilevelProblem.from_optimizer(model, opt, problem.inner_loss, problem.outer_loss)
    assert problem.lr == 0.2 and problem.nesterov and len(problem.momentum_buffers) == 4

    real_model, real_opt = copy.deepcopy(model), copy.deepcopy(opt)
    real_opt.param_groups[0]["params"] = list(real_model.parameters())
    real_opt.state = {
        q: copy.deepcopy(opt.state[p])
        for p, q in zip(model.parameters(), real_model.parameters(), strict=True)
    }
    real_opt.zero_grad()
    problem.inner_loss(real_model, hp).backward()
    real_opt.step()
    with Evaluator(problem) as ev:
        theta1 = ev.first_step(hp)
    for n, p in real_model.named_parameters():
        assert torch.allclose(theta1[n], p, rtol=1e-13, atol=1e-15), n

    ref = hypergradient(problem, hp, "func")
    for name in ("higher", "forward"):
        assert rel_error(hypergradient(problem, hp, name), ref) <= 1e-8, name

    # brute force through the real optimizer with its buffers
    def G(z):
        m, o = copy.deepcopy(model), copy.deepcopy(opt)
        o.param_groups[0]["params"] = list(m.parameters())
        o.state = {
            q: copy.deepcopy(opt.state[p])
            for p, q in zip(model.parameters(), m.parameters(), strict=True)
        }
        o.zero_grad()
        problem.inner_loss(m, {"z": z}).backward()
        o.step()
        return float(problem.outer_loss(m).detach())

    z, h = hp["z"], 1e-6
    brute = torch.zeros_like(z)
    for i in range(z.numel()):
        e = torch.zeros_like(z)
        e.view(-1)[i] = h
        brute.view(-1)[i] = (G(z + e) - G(z - e)) / (2 * h)
    assert rel_error(ref, {"z": brute}) <= 1e-6
    assert rel_error(ref, brute_force(problem, hp)) <= 1e-6  # the helper continues the buffers
    fresh = dataclasses.replace(problem, momentum_buffers={})
    assert rel_error(ref, brute_force(fresh, hp)) > 1e-3  # a fresh optimizer differs


def test_first_step_scale():
    assert SGDConfig(lr=1).first_step_scale(False) == 1.0
    assert SGDConfig(lr=1, momentum=0.9).first_step_scale(False) == 1.0
    assert SGDConfig(lr=1, momentum=0.9, dampening=0.5).first_step_scale(True) == 0.5
    assert SGDConfig(lr=1, momentum=0.9, nesterov=True).first_step_scale(False) == pytest.approx(
        1.9
    )
