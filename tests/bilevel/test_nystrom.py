"""`nystrom`: the implicit hypergradient with H⁻¹ from k sampled columns of H, against ridge
regression's closed form, a dense Hessian of a small MLP, and the dense Nyström formulas."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
import torch
from torch.func import functional_call

from bilevel import BilevelProblem, ModelFn, hypergradient
from bilevel.estimators.nystrom import column_indices, nystrom_solve
from bilevel.examples import BUILDERS

from .helpers import DT, MODELS, batch, mlp, rel_error
from .test_implicit import _closed_form, _problem, _ridge

SEED = 123  # the random state at the call (dropout masks)


def _trained(problem: BilevelProblem, hp: dict, steps: int) -> BilevelProblem:
    """The problem at θ_steps of torch.optim.SGD (a deep copy of the model), K = 0."""
    model = copy.deepcopy(problem.model)
    opt = torch.optim.SGD(model.parameters(), lr=problem.lr, weight_decay=problem.weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        problem.inner_loss(ModelFn.of(model), hp).backward()
        opt.step()
    return dataclasses.replace(problem, model=model, steps=0)


def _dense(problem: BilevelProblem, hp: dict, damping: float = 0.0, seed: int | None = None):
    """−∂/∂λ ⟨∇_θ L_in(θ₀, λ), q⟩, (∇²L_in + (wd + damping)·I) q = ∇G(θ₀), with the Hessian of
    the flattened parameters from torch.autograd.functional.hessian and a dense solve; `seed`
    re-seeds before every loss evaluation (the estimators' dropout masks)."""
    model = problem.model
    named = dict(model.named_parameters())
    flat0 = torch.cat([p.detach().reshape(-1) for p in named.values()])

    def at(x: torch.Tensor) -> ModelFn:
        params, start = {}, 0
        for name, p in named.items():
            params[name] = x[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
        return ModelFn(lambda inp: functional_call(model, params, (inp,)), params)

    def inner(x: torch.Tensor, lam: dict) -> torch.Tensor:
        if seed is not None:
            torch.manual_seed(seed)
        return problem.inner_loss(at(x), lam)

    const = {k: v.detach() for k, v in hp.items()}
    hessian = torch.autograd.functional.hessian(lambda x: inner(x, const), flat0)
    mu = problem.weight_decay + damping
    x = flat0.clone().requires_grad_(True)
    if seed is not None:
        torch.manual_seed(seed)
    v = torch.autograd.grad(problem.outer_loss(at(x)), x)[0]
    q = torch.linalg.solve(hessian + mu * torch.eye(len(flat0), dtype=DT), v)
    lam = {k: v.detach().clone().requires_grad_(True) for k, v in hp.items()}
    g = torch.autograd.grad(inner(x, lam), x, create_graph=True)[0]
    return dict(zip(lam, torch.autograd.grad(-(g * q).sum(), list(lam.values())), strict=True))


def _n(problem: BilevelProblem) -> int:
    return sum(p.numel() for p in problem.params().values())


@pytest.mark.parametrize("columns", [4, 1000])  # every column, and more (clamped to n = 4)
def test_every_column_on_ridge_is_the_closed_form(columns):
    X, y, Xv, yv = _ridge()
    log_lam = torch.tensor(-1.0, dtype=DT)
    theta_star, expected = _closed_form(X, y, Xv, yv, log_lam)
    problem = _problem(X, y, Xv, yv, theta_star, steps=0)
    got = hypergradient(problem, {"log_lam": log_lam}, "nystrom", rank=columns)
    assert torch.allclose(got["log_lam"], expected, rtol=1e-8, atol=0)
    # fewer columns: an approximation, not the closed form
    few = hypergradient(problem, {"log_lam": log_lam}, "nystrom", rank=2)
    assert not torch.allclose(few["log_lam"], expected, rtol=1e-2)


def _mlp_problem(model=None) -> tuple[BilevelProblem, dict]:
    """c: a weighting network on the MLP, weight decay 0.1, taken 300 SGD steps towards the
    inner minimum (there H is positive definite on this problem)."""
    problem, hp = BUILDERS["c_weighting_net"](
        model or MODELS["mlp"](), batch(), lr=0.3, weight_decay=0.1
    )
    return _trained(problem, hp, 300), hp


def test_the_error_against_a_dense_solve_falls_to_zero_with_every_column():
    problem, hp = _mlp_problem()
    n = _n(problem)
    exact = _dense(problem, hp)
    errors = {
        k: rel_error(hypergradient(problem, hp, "nystrom", rank=k), exact)
        for k in (2, 8, 32, 128, n)
    }
    assert errors[n] <= 1e-8
    assert errors[2] > 1e-2 and errors[2] > errors[128] > errors[n]
    # damped: every column gives the solve with H + ρI
    damped = hypergradient(problem, hp, "nystrom", rank=n, rho=0.5)
    assert rel_error(damped, _dense(problem, hp, damping=0.5)) <= 1e-8
    assert rel_error(damped, exact) > 1e-2


def test_dropout_masks_are_the_ones_of_every_other_evaluation():
    problem, hp = _mlp_problem(mlp(dropout=0.5))
    torch.manual_seed(SEED)
    got = hypergradient(problem, hp, "nystrom", rank=_n(problem))
    assert rel_error(got, _dense(problem, hp, seed=SEED)) <= 1e-8
    torch.manual_seed(SEED + 1)  # a control: other masks, another result
    assert rel_error(hypergradient(problem, hp, "nystrom", rank=_n(problem)), got) > 1e-3


@pytest.mark.parametrize("mu", [0.0, 0.3])
@pytest.mark.parametrize("k", [3, 7])
def test_the_solve_is_the_dense_nystrom_formula(k, mu):
    """q = (C W⁺ Cᵀ + μI)⁻¹ v (μ = 0: the pseudo-inverse) for a symmetric A of rank 5."""
    g = torch.Generator().manual_seed(0)
    n = 12
    b = torch.randn(n, 5, generator=g, dtype=DT)
    a = b @ torch.diag(torch.tensor([3.0, 2.0, 1.0, -0.5, 0.2], dtype=DT)) @ b.T
    v = torch.randn(n, generator=g, dtype=DT)

    def hessian(u: dict) -> dict:
        return _split(_join(u) @ a)

    q = _join(nystrom_solve(hessian, _split(v), k, mu, seed=4))
    # one product at a time (data parallel, where vmap cannot batch the collectives): the same
    one_by_one = _join(nystrom_solve(hessian, _split(v), k, mu, seed=4, batched=False))
    assert torch.allclose(one_by_one, q, rtol=1e-12, atol=1e-14)
    index = column_indices(n, k, 4)
    c = a[:, index]
    approx = c @ torch.linalg.pinv(c[index]) @ c.T
    if mu:
        expected = torch.linalg.solve(approx + mu * torch.eye(n, dtype=DT), v)
    else:
        expected = torch.linalg.pinv(approx) @ v
    assert torch.allclose(q, expected, rtol=1e-9, atol=1e-12)


def _split(flat: torch.Tensor) -> dict:  # two "parameters", of 4 and 2×4 elements
    return {"x": flat[..., :4], "y": flat[..., 4:].reshape(*flat.shape[:-1], 2, 4)}


def _join(params: dict) -> torch.Tensor:
    x, y = params["x"], params["y"]
    return torch.cat([x, y.reshape(*y.shape[:-2], 8)], dim=-1)


def test_the_columns_come_from_the_seed_alone_and_leave_the_global_rng_untouched():
    problem, hp = _mlp_problem()
    state = torch.get_rng_state()
    index = column_indices(_n(problem), 8, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(index, column_indices(_n(problem), 8, seed=5))
    assert not torch.equal(index, column_indices(_n(problem), 8, seed=6))
    assert len(set(index.tolist())) == 8 and torch.equal(index, index.sort().values)
    torch.manual_seed(0)
    a = hypergradient(problem, hp, "nystrom", rank=8, seed=5)
    torch.manual_seed(1)  # another global state: the same columns
    b = hypergradient(problem, hp, "nystrom", rank=8, seed=5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = torch.get_rng_state()
    c = hypergradient(problem, hp, "nystrom", rank=8, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    assert rel_error(c, a) > 1e-6


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rank": 0}, "option rank must be an int >= 1, got 0"),
        ({"rho": -0.1}, "option rho must be a finite number >= 0, got -0.1"),
        ({"seed": -1}, "option seed must be an int >= 0, got -1"),
        ({"seed": 1.5}, "option seed must be an int >= 0, got 1.5"),
    ],
)
def test_options_out_of_range_name_the_option(options, message):
    problem, hp = BUILDERS["a_imputed_away"](MODELS["linear"](), batch(), lr=0.5)
    with pytest.raises(ValueError, match=re.escape(f"estimator 'nystrom': {message}")):
        hypergradient(problem, hp, "nystrom", **options)


def test_adamw_with_weight_decay_is_refused_as_by_implicit():
    problem, hp = BUILDERS["a_imputed_away"](
        MODELS["linear"](), batch(), lr=0.01, optimizer="adamw", weight_decay=1e-2
    )
    with pytest.raises(ValueError, match=r"nystrom: AdamW.s decoupled weight decay"):
        hypergradient(problem, hp, "nystrom")
