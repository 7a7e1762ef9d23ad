"""The Adam/AdamW virtual step: torch.optim's trajectories, and hypergradients through it."""

import copy

import pytest
import torch

from bilevel import AdamConfig, BilevelProblem, hypergradient
from bilevel.examples import BUILDERS

from .helpers import DT, MODELS, batch, brute_force, real_optimizer, rel_error


def _loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_steps_follow_torch_adam_and_adamw(decoupled, wd):
    """Six steps of the functional step equal torch.optim.Adam/AdamW's, from a fresh state; the
    second layer's last row gets no gradient (v = 0 stays 0 there)."""
    torch.manual_seed(0)
    model = MODELS["mlp"]()
    x, y = torch.randn(7, 1, 6, 6, dtype=DT), torch.randint(0, 2, (7,))  # class 2 never seen
    real = copy.deepcopy(model)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(real.parameters(), lr=0.03, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd)
    cfg = AdamConfig(lr=0.03, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd, decoupled=decoupled)
    params, state = {n: p.detach() for n, p in model.named_parameters()}, {}
    for _ in range(6):
        opt.zero_grad()
        _loss(real, x, y).backward()
        opt.step()
        leaves = {n: p.requires_grad_(True) for n, p in params.items()}
        loss = _loss(lambda t, w=leaves: torch.func.functional_call(model, w, (t,)), x, y)
        grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
        params, state = cfg.step({n: p.detach() for n, p in leaves.items()}, grads, state)
    for n, p in real.named_parameters():
        torch.testing.assert_close(params[n], p.detach(), rtol=1e-14, atol=1e-15)
        assert float(state[n]["step"]) == float(opt.state[p]["step"]) == 6
        torch.testing.assert_close(state[n]["exp_avg_sq"], opt.state[p]["exp_avg_sq"])


def _adam_problem(optimizer, steps=1, kind="a_imputed_away", warm=2, wd=0.01):
    """A problem whose virtual step continues a real Adam/AdamW after `warm` real steps (taken
    at λ + 0.3: at Meta-Semi's λ = 0 the gradient is 0, and v = 0 with d = 0 is a kink of
    √v = √(1 − β₂)|d| where only the symmetric derivative 0 exists)."""
    model = MODELS["mlp"]()
    problem, hp = BUILDERS[kind](model, batch(), lr=0.05)
    cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    opt = cls(model.parameters(), lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)
    for _ in range(warm):
        opt.zero_grad()
        problem.inner_loss(model, {k: v.detach() + 0.3 for k, v in hp.items()}).backward()
        opt.step()
    real = BilevelProblem.from_optimizer(
        model, opt, problem.inner_loss, problem.outer_loss, steps, coupled_loss=problem.coupled_loss
    )
    return real, hp, opt


def test_from_optimizer_continues_the_real_adam():
    problem, hp, opt = _adam_problem("adamw")
    assert problem.optimizer == "adamw" and problem.betas == (0.9, 0.99)
    assert {float(s["step"]) for s in problem.adam_state.values()} == {2.0}
    from bilevel import Evaluator

    with Evaluator(problem) as ev:
        theta1 = ev.first_step(hp)
    model = problem.model
    opt.zero_grad()
    problem.inner_loss(model, {k: v.detach() for k, v in hp.items()}).backward()
    opt.step()  # the real third step
    for n, p in model.named_parameters():
        torch.testing.assert_close(theta1[n], p.detach(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("kind", ["a_imputed_away", "b_sample_weights", "c_weighting_net"])
def test_one_step_estimators_through_adam_match_brute_force(optimizer, kind):
    problem, hp, _ = _adam_problem(optimizer, kind=kind)
    reference = brute_force(problem, hp)
    for name in ("func", "forward"):
        got = hypergradient(problem, hp, name)
        assert rel_error(got, reference) < 1e-6, name
    exact = hypergradient(problem, hp, "func")
    assert rel_error(hypergradient(problem, hp, "forward"), exact) < 1e-10
    assert rel_error(hypergradient(problem, hp, "fd", r=1e-4), exact) < 1e-4


def test_three_adam_steps_unrolled_match_brute_force():
    problem, hp, _ = _adam_problem("adam", steps=3)
    assert rel_error(hypergradient(problem, hp, "func"), brute_force(problem, hp)) < 1e-6


def test_first_adam_step_from_zero_state_has_a_finite_hypergradient():
    """At the very first step v = d², and elements with d = 0 must not give nan (√0)."""
    problem, hp, _ = _adam_problem("adam", kind="b_sample_weights", warm=0, wd=0.0)
    from bilevel import Evaluator

    with Evaluator(problem) as ev:
        g0 = ev.first_grads(hp)
    assert any(bool((g == 0).any()) for g in g0.values())  # there are such elements
    grads = hypergradient(problem, hp, "func")
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert rel_error(hypergradient(problem, hp, "forward"), grads) < 1e-10


def test_what_adam_cannot_be_used_with_is_refused():
    problem, hp, _ = _adam_problem("adamw")
    with pytest.raises(ValueError, match="higher: its DifferentiableAdam adds eps"):
        hypergradient(problem, hp, "higher")
    with pytest.raises(ValueError, match=r"implicit: AdamW.s decoupled weight decay"):
        hypergradient(problem, hp, "implicit")
    with pytest.raises(ValueError, match=r"\['momentum'\] are SGD settings; adam takes betas"):
        BilevelProblem(
            problem.model, problem.inner_loss, problem.outer_loss, optimizer="adam", momentum=0.9
        )
    opt = torch.optim.Adam(problem.model.parameters(), amsgrad=True)
    with pytest.raises(ValueError, match="amsgrad=True is not supported"):
        BilevelProblem.from_optimizer(problem.model, opt, problem.inner_loss, problem.outer_loss)
    assert real_optimizer  # the brute force uses torch's own Adam (helpers.real_optimizer)
