"""`sama` against an independent port of betty's SAMA (written here from reading betty's `sama`
and `precondition_adam`), against `fd` without lookahead where the two coincide, and the
estimator rules (bilevel/estimators/sama.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bilevel import BilevelProblem, ModelFn, hypergradient
from bilevel.examples import BUILDERS

from .helpers import MODELS, batch, cosine, rel_error

R = 1e-3  # the difference step used throughout (float64)


# -- the port -------------------------------------------------------------------------------------
def betty_precondition(vector: list, optimizer: torch.optim.Optimizer, params: list) -> list:
    """betty's preconditioning of the outer gradient: the identity unless the optimizer's class
    name contains "adam"; then, per element, from the state after the last real step and the
    gradient it stored (`last_grad`), with the old moments recovered from them:
        lr · [(1−β₁)β₂·v_old − β₁(1−β₂)·g·m_old] / (√v + eps)³."""
    if "adam" not in type(optimizer).__name__.lower():
        return vector
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    out = []
    for vec, p in zip(vector, params, strict=True):
        state = optimizer.state[p]
        g = state.get("last_grad", torch.zeros_like(vec))
        m = state.get("exp_avg", torch.zeros_like(vec))
        v = state.get("exp_avg_sq", torch.zeros_like(vec))
        m_old = (m - (1 - beta1) * g) / beta1 if beta1 != 0 else 0
        v_old = (v - (1 - beta2) * g * g) / beta2
        scale = (1 - beta1) * beta2 * v_old - beta1 * (1 - beta2) * g * m_old
        scale = scale / (v.sqrt() + group["eps"]) ** 3
        out.append(vec * scale * group["lr"])
    return out


def betty_sama(problem, hparams, stepped_opt, stepped_params, r) -> dict:
    """betty's SAMA on a deep copy of `problem.model`: v = ∇_θG at the current weights,
    preconditioned, ε = r/(‖v'‖ + 1e-15); the weights are moved in place to θ + εv', θ − εv'
    and back, and the result is (∇_λL_in(θ − εv') − ∇_λL_in(θ + εv')) / 2ε (no inner lr)."""
    work = copy.deepcopy(problem.model)
    params = [p for p in work.parameters() if p.requires_grad]
    vector = torch.autograd.grad(problem.outer_loss(ModelFn.of(work)), params)
    vector = betty_precondition(list(vector), stepped_opt, stepped_params)
    eps = r / (torch.cat([t.reshape(-1) for t in vector]).norm() + 1e-15).item()
    keys = list(hparams)
    hp = {k: hparams[k].detach().requires_grad_(True) for k in keys}

    def lam_grad():
        loss = problem.inner_loss(ModelFn.of(work), hp)
        grads = torch.autograd.grad(loss, [hp[k] for k in keys], allow_unused=True)
        return [
            torch.zeros_like(hp[k]) if g is None else g for k, g in zip(keys, grads, strict=True)
        ]

    with torch.no_grad():
        for p, v in zip(params, vector, strict=True):
            p.add_(v, alpha=eps)
    grad_p = lam_grad()
    with torch.no_grad():
        for p, v in zip(params, vector, strict=True):
            p.sub_(v, alpha=2 * eps)
    grad_n = lam_grad()
    with torch.no_grad():
        for p, v in zip(params, vector, strict=True):
            p.add_(v, alpha=eps)
    return {k: (n - p) / (2 * eps) for k, n, p in zip(keys, grad_n, grad_p, strict=True)}


def record_step(model, opt, problem, hparams, decay_in_grad=False) -> None:
    """One real step of `opt` on the inner loss, storing p.grad as `last_grad` (as betty's
    ImplicitProblem.optimizer_step does for SAMA); `decay_in_grad` stores g + wd·p instead."""
    opt.zero_grad()
    hp = {k: v.detach() for k, v in hparams.items()}
    problem.inner_loss(ModelFn.of(model), hp).backward()
    opt.step()
    wd = opt.param_groups[0]["weight_decay"]
    for p in model.parameters():
        if p.grad is not None and opt.state[p]:
            g = p.grad.detach().clone()
            if decay_in_grad:
                g = g + wd * p.detach()  # p is θ₁ here: only used where the test says so
            opt.state[p]["last_grad"] = g


# -- building problems from real optimizers ----------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.9, 0.99)),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.8, 0.99), weight_decay=0.01),
}


def real_problem(which, kind="a_imputed_away", model_name="mlp", warm=3, make=None):
    """A problem continuing a real optimizer after `warm` real steps (at λ + 0.3, so that the
    gradients are not 0 at Meta-Semi's λ = 0), with the optimizer."""
    model = MODELS[model_name]()
    problem, hp = BUILDERS[kind](model, batch())
    opt = (make or OPTIMIZERS[which])(model.parameters())
    shifted = {k: v.detach() + 0.3 for k, v in hp.items()}
    for _ in range(warm):
        record_step(model, opt, problem, shifted)
    real = BilevelProblem.from_optimizer(
        model, opt, problem.inner_loss, problem.outer_loss, coupled_loss=problem.coupled_loss
    )
    return real, hp, opt


def port_for(problem, hp, opt, decay_in_grad=False) -> dict:
    """betty's SAMA for the step from θ₀: a copy of the model and optimizer takes that step,
    storing its gradient, and the difference is taken at θ₀ (the original weights)."""
    model_c, opt_c = copy.deepcopy((problem.model, opt))
    record_step(model_c, opt_c, problem, hp, decay_in_grad)
    return betty_sama(problem, hp, opt_c, list(model_c.parameters()), R)


@pytest.mark.parametrize("kind", ["a_imputed_away", "b_sample_weights", "c_weighting_net"])
@pytest.mark.parametrize("which", list(OPTIMIZERS))
def test_equals_the_port_of_betty(which, kind):
    """SGD (with momentum and weight decay: betty's preconditioner ignores both), Adam and
    AdamW; for SGD betty leaves out the inner lr, which this package's convention includes."""
    problem, hp, opt = real_problem(which, kind)
    got = hypergradient(problem, hp, "sama", r=R)
    ref = port_for(problem, hp, opt)
    if problem.optimizer == "sgd":
        ref = {k: problem.lr * v for k, v in ref.items()}
    assert rel_error(got, ref) <= 1e-10


def test_adam_weight_decay_uses_the_gradient_the_moments_see():
    """Under Adam's coupled decay the moments see d = g + wd·θ₀; betty stores the raw g. The
    estimator equals the port fed d, and differs from betty's own (a deliberate difference)."""
    make = lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.9, 0.99), weight_decay=0.5)  # noqa: E731
    problem, hp, opt = real_problem("adam", make=make)
    got = hypergradient(problem, hp, "sama", r=R)
    # the port's copy stores g + wd·θ₁ after its step; d needs θ₀, so patch it afterwards
    model_c, opt_c = copy.deepcopy((problem.model, opt))
    record_step(model_c, opt_c, problem, hp)
    for p, p0 in zip(model_c.parameters(), problem.model.parameters(), strict=True):
        opt_c.state[p]["last_grad"] = opt_c.state[p]["last_grad"] + 0.5 * p0.detach()
    with_d = betty_sama(problem, hp, opt_c, list(model_c.parameters()), R)
    assert rel_error(got, with_d) <= 1e-10
    assert rel_error(got, port_for(problem, hp, opt)) > 1e-6


def test_first_adam_step_gives_zero():
    """From an empty state (m₀ = v₀ = 0) the preconditioner is 0 (betty's too)."""
    problem, hp, opt = real_problem("adam", warm=0)
    got = hypergradient(problem, hp, "sama")
    assert all(torch.equal(g, torch.zeros_like(g)) for g in got.values())
    ref = port_for(problem, hp, opt)
    assert all(float(g.abs().max()) == 0 for g in ref.values())


# -- against fd without lookahead ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["a_imputed_away", "c_weighting_net"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_equals_fd_without_lookahead(momentum, kind):
    """Both are −α·∂²L_in/∂λ∂θ·c·∇G(θ₀) with c = 1 here (no momentum, or momentum without
    dampening and nesterov: the first step's coefficient of the gradient is 1 either way)."""
    model = MODELS["cnn_bn"]()
    problem, hp = BUILDERS[kind](model, batch(), lr=0.3, momentum=momentum)
    if momentum:
        problem.momentum_buffers = {n: torch.ones_like(p) for n, p in problem.params().items()}
    for r in (1e-3, 1e-6):
        fd = hypergradient(problem, hp, "fd", r=r, lookahead=False)
        assert rel_error(hypergradient(problem, hp, "sama", r=r), fd) <= 1e-12


@pytest.mark.parametrize(("settings", "c"), [({"dampening": 0.5}, 0.5), ({"nesterov": True}, 1.9)])
def test_sgd_differs_from_fd_by_the_momentum_coefficient(settings, c):
    """With dampening (and a buffer) or nesterov `fd` scales w by the first step's coefficient
    c of the gradient; SAMA (as betty) does not. The points θ₀ ± εw are the same, so fd = c·sama."""
    problem, hp = BUILDERS["a_imputed_away"](
        MODELS["mlp"](), batch(), lr=0.3, momentum=0.9, **settings
    )
    problem.momentum_buffers = {n: torch.ones_like(p) for n, p in problem.params().items()}
    fd = hypergradient(problem, hp, "fd", r=R, lookahead=False)
    got = hypergradient(problem, hp, "sama", r=R)
    assert rel_error({k: c * v for k, v in got.items()}, fd) <= 1e-9
    assert rel_error(got, fd) > 0.3


@pytest.mark.parametrize("which", ["adam", "adamw"])
def test_adam_is_fd_without_lookahead_up_to_the_bias_corrections(which):
    """fd's D is the exact derivative of Adam's step, √(1−β₂ᵗ)/(1−β₁ᵗ)·∂(m₁/(√v₁ + ε'))/∂d
    (ε' = eps·√(1−β₂ᵗ)); SAMA's leaves out the factor, the same for every element at step t,
    and takes eps in the cube: fd = factor·sama up to O(eps/√v₁) (2.8e-5 at eps = 1e-8 here,
    some elements have small v₁; 2.8e-9 at eps = 1e-12)."""
    cls = torch.optim.Adam if which == "adam" else torch.optim.AdamW
    make = lambda ps: cls(ps, lr=0.05, betas=(0.9, 0.99), eps=1e-12, weight_decay=0.01)  # noqa: E731
    problem, hp, _ = real_problem(which, make=make)
    beta1, beta2 = problem.betas
    t = 4  # three real steps, then the one from θ₀
    factor = (1 - beta2**t) ** 0.5 / (1 - beta1**t)
    fd = hypergradient(problem, hp, "fd", r=R, lookahead=False)
    got = hypergradient(problem, hp, "sama", r=R)
    assert rel_error({k: factor * v for k, v in got.items()}, fd) <= 1e-7
    assert rel_error(got, fd) > 0.1


# -- the rules ----------------------------------------------------------------------------------
def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("which", ["sgd_momentum", "adamw"])
def test_model_buffers_and_random_state_unchanged(which):
    """betty moves the weights in place (and one of its versions did not move them back);
    here they, the BatchNorm buffers and the global random state are bit-identical after."""
    problem, hp, _ = real_problem(which, model_name="cnn_bn")
    problem.model.train()
    before, rng = _snapshot(problem.model), torch.get_rng_state()
    state = copy.deepcopy(problem.initial_state())
    hypergradient(problem, hp, "sama")
    assert _same(before, _snapshot(problem.model))
    assert torch.equal(rng, torch.get_rng_state())
    after = problem.initial_state()
    for n in state:
        if isinstance(state[n], dict):
            assert _same(state[n], after[n])
        else:
            assert torch.equal(state[n], after[n])


@pytest.mark.parametrize("call", [1, 2])
def test_model_unchanged_after_a_loss_raises_at_a_perturbed_point(call):
    """The coupled loss raises at θ₀ + εw (call 1) or θ₀ − εw (call 2): the error comes out,
    and the weights, buffers, BatchNorm flags and random state are as before."""
    problem, hp, _ = real_problem("adam", model_name="cnn_bn")
    calls = []

    def failing(f, h):
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("boom")
        return problem.coupled_loss(f, h)

    bad = BilevelProblem(
        problem.model,
        problem.inner_loss,
        problem.outer_loss,
        lr=problem.lr,
        optimizer="adam",
        betas=problem.betas,
        adam_state=problem.adam_state,
        coupled_loss=failing,
    )
    before, rng = _snapshot(problem.model), torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"):
        hypergradient(bad, hp, "sama")
    assert len(calls) == call
    assert _same(before, _snapshot(problem.model))
    assert torch.equal(rng, torch.get_rng_state())
    norms = [m for m in problem.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.track_running_stats for m in norms)


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf"), True, "1e-3", None])
def test_bad_option_is_refused_naming_it(bad):
    problem, hp, _ = real_problem("sgd", warm=0)
    with pytest.raises(ValueError, match=r"estimator 'sama': option r must be a finite number > 0"):
        hypergradient(problem, hp, "sama", r=bad)
    with pytest.raises(TypeError, match=r"'sama' has no option\(s\) \['alpha'\]; its options: r"):
        hypergradient(problem, hp, "sama", alpha=1.0)


def test_more_steps_and_a_learned_lr_are_refused():
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.3, steps=2)
    with pytest.raises(ValueError, match=r"'sama' serves steps=1, got steps=2"):
        hypergradient(problem, hp, "sama")
    problem, hp = BUILDERS["a_imputed_away"](
        MODELS["mlp"](), batch(), lr=0.3, lr_scale=lambda h: {}
    )
    with pytest.raises(ValueError, match=r"lr_scale: .*'sama' does not differentiate"):
        hypergradient(problem, hp, "sama")


# -- against the exact one-step hypergradient -----------------------------------------------------
@pytest.mark.parametrize("which", ["sgd", "sgd_momentum", "adam", "adamw"])
def test_direction_close_to_func_at_a_small_lr(which):
    """A smooth model (tanh MLP) at lr = 1e-3: ∇G(θ₁) ≈ ∇G(θ₀). For Adam D differs from the
    exact derivative by the bias corrections (one factor for all elements, the same step
    count everywhere) and where eps enters, so the direction is still close."""
    make = lambda ps: {  # noqa: E731
        "sgd": lambda: torch.optim.SGD(ps, lr=1e-3),
        "sgd_momentum": lambda: torch.optim.SGD(ps, lr=1e-3, momentum=0.9),
        "adam": lambda: torch.optim.Adam(ps, lr=1e-3),
        "adamw": lambda: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01),
    }[which]()
    problem, hp, _ = real_problem(which, kind="c_weighting_net", make=make)
    got = hypergradient(problem, hp, "sama")
    ref = hypergradient(problem, hp, "func")
    value = cosine(got, ref)
    print(f"sama vs func cosine ({which}, lr=1e-3): {value:.8f}")
    assert value >= 0.99
