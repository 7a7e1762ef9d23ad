"""The papers' closed forms, computed by hand, against the estimators."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bilevel import BilevelProblem, ImputedTargets, hypergradient
from bilevel.examples import BUILDERS

from .helpers import DT, MODELS, batch, rel_error

TOL = 1e-10


def _data(seed=0, n_t=6, n_u=4, n_h=5, d=5):
    g = torch.Generator().manual_seed(seed)
    x_t, x_u, x_h = (torch.randn(n, d, generator=g, dtype=DT) for n in (n_t, n_u, n_h))
    return x_t, x_u, x_h, g


def _one_layer(d=5, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d, 1, bias=False).to(DT)  # the paper's σ(θᵀx) / θᵀx: no bias


# Learning to Impute, App. B. The paper sums losses over samples (C^T, C^U, C^H are sums):
# then Eq. (7) is η Σ_H (σ(θ*ᵀx) − y) xᵀxᵘ and Eq. (11) is 4η Σ_H (θ*ᵀx − y) xᵀxᵘ. With losses
# averaged instead (reduction="mean"), C^U carries 1/N_U and C^H carries 1/N_H, so both
# constants are divided by N_U·N_H; the θ* step also averages C^T and C^U separately.
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_learning_to_impute_eq7_binary(reduction):
    x_t, x_u, x_h, g = _data()
    y_t = torch.randint(0, 2, (len(x_t), 1), generator=g).to(DT)
    y_h = torch.randint(0, 2, (len(x_h), 1), generator=g).to(DT)
    z = torch.rand(len(x_u), 1, generator=g, dtype=DT)
    model, eta = _one_layer(), 0.3
    red = torch.sum if reduction == "sum" else torch.mean
    inner = ImputedTargets(x_u, "bce", key="z", reduction=reduction, labeled=(x_t, y_t))

    def outer(f):
        return red(F.binary_cross_entropy_with_logits(f(x_h), y_h, reduction="none"))

    problem = BilevelProblem(model, inner, outer, lr=eta)

    theta = model.weight.detach().reshape(-1)
    n_t, n_u, n_h = (1, 1, 1) if reduction == "sum" else (len(x_t), len(x_u), len(x_h))
    grad_t = ((torch.sigmoid(x_t @ theta) - y_t[:, 0])[:, None] * x_t).sum(0) / n_t
    grad_u = ((torch.sigmoid(x_u @ theta) - z[:, 0])[:, None] * x_u).sum(0) / n_u
    theta_star = theta - eta * (grad_t + grad_u)
    residual = torch.sigmoid(x_h @ theta_star) - y_h[:, 0]  # σ(θ*ᵀx) − y on H
    eq7 = eta * (residual[:, None] * (x_h @ x_u.T)).sum(0) / (n_u * n_h)  # Eq. (7)

    for name in ("analytic", "func", "forward", "higher"):
        got = hypergradient(problem, {"z": z}, name)["z"][:, 0]
        assert torch.allclose(got, eq7, rtol=TOL, atol=0), name


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_learning_to_impute_eq11_regression(reduction):
    x_t, x_u, x_h, g = _data(seed=1)
    y_t, y_h, z = (torch.randn(len(x), 1, generator=g, dtype=DT) for x in (x_t, x_h, x_u))
    model, eta = _one_layer(seed=1), 0.05
    red = torch.sum if reduction == "sum" else torch.mean
    inner = ImputedTargets(x_u, "mse", reduction=reduction, labeled=(x_t, y_t))
    problem = BilevelProblem(model, inner, lambda f: red((f(x_h) - y_h).pow(2)), lr=eta)

    theta = model.weight.detach().reshape(-1)
    n_t, n_u, n_h = (1, 1, 1) if reduction == "sum" else (len(x_t), len(x_u), len(x_h))
    step = ((x_t @ theta - y_t[:, 0])[:, None] * x_t).sum(0) / n_t
    step = step + ((x_u @ theta - z[:, 0])[:, None] * x_u).sum(0) / n_u
    theta_star = theta - 2 * eta * step  # Eq. (9)
    eq11 = 4 * eta * ((x_h @ theta_star - y_h[:, 0])[:, None] * (x_h @ x_u.T)).sum(0) / (n_u * n_h)

    for name in ("analytic", "func", "forward", "higher"):
        got = hypergradient(problem, {"z": z}, name)["z"][:, 0]
        assert torch.allclose(got, eq11, rtol=TOL, atol=0), name


@pytest.mark.parametrize("model_name", ["mlp", "cnn_bn"])
def test_meta_semi_eq10(model_name):
    """∂G(θ₁)/∂w_j at w = 0 equals −α ⟨∇_θ G(θ), ∇_θ L_j(θ)⟩ (per-sample gradients by hand)."""
    model, b, alpha = MODELS[model_name](), batch(), 0.5
    g = torch.Generator().manual_seed(3)
    pseudo = torch.softmax(3 * torch.randn(len(b.x_unl), 3, generator=g, dtype=DT), 1)

    def inner(f, hp):  # Σ_j w_j ℓ(f(u_j), ŷ_j), soft cross-entropy
        return -(hp["w"][:, None] * pseudo * F.log_softmax(f(b.x_unl), 1)).sum()

    def outer(f):
        return F.cross_entropy(f(b.x_out), b.y_out)

    problem = BilevelProblem(model, inner, outer, lr=alpha)
    hp = {"w": torch.zeros(len(b.x_unl), dtype=DT)}

    params = list(model.parameters())
    grad_G = torch.autograd.grad(outer(model), params)
    expected = []
    for j in range(len(b.x_unl)):
        # L_j alone, evaluated within the full batch (BatchNorm statistics as in the inner loss)
        loss_j = -(pseudo[j] * F.log_softmax(model(b.x_unl), 1)[j]).sum()
        grad_j = torch.autograd.grad(loss_j, params)
        expected.append(-alpha * sum((a * c).sum() for a, c in zip(grad_G, grad_j, strict=True)))
    expected = torch.stack(expected)
    assert (expected > 0).any() and (expected < 0).any()  # both kinds of sample present
    for name in ("func", "higher", "forward"):
        got = hypergradient(problem, hp, name)["w"]
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-14), name
    # Meta-Semi keeps samples whose meta-gradient is ≤ 0: the signs must agree too
    assert torch.equal(hypergradient(problem, hp, "fd")["w"] <= 0, expected <= 0)


def test_meta_gradient_eq10_eq11():
    """fd with lookahead=False is the authors' update: α/(B_u ε)(softmax f(θ+εv) − softmax f(θ−εv)),
    v = ∇_θ of the labeled loss at θ_t, ε = 0.01/‖v‖ (Eq. 9-11, MSE consistency on softmax)."""
    model, b, alpha = MODELS["mlp"](), batch(), 0.4
    y = F.softmax(model(b.x_unl), 1).detach()
    inner = ImputedTargets(b.x_unl, "softmax_mse", key="y")

    def labeled(f):
        return F.cross_entropy(f(b.x_out), b.y_out)

    problem = BilevelProblem(model, inner, labeled, lr=alpha)

    params = dict(model.named_parameters())
    v = torch.autograd.grad(labeled(model), list(params.values()))
    eps = 0.01 / torch.sqrt(sum((t * t).sum() for t in v))

    def probs(sign):
        shifted = {
            n: p.detach() + sign * eps * t for (n, p), t in zip(params.items(), v, strict=True)
        }
        return F.softmax(torch.func.functional_call(model, shifted, (b.x_unl,)), 1)

    authors = alpha / (len(b.x_unl) * eps) * (probs(1) - probs(-1))
    got = hypergradient(problem, {"y": y}, "fd", lookahead=False, r=0.01)["y"]
    assert torch.allclose(got, authors, rtol=1e-9, atol=1e-15)


def test_analytic_softmax_mse_is_the_limit_of_eq11():
    """analytic (softmax_mse) = 2αs J_p u, the ε → 0 limit of Eq. 11 at v = ∇G(θ₁)."""
    problem, hp = BUILDERS["a_imputed_away"](MODELS["linear"](), batch(), lr=0.5)
    problem.inner_loss.kind = "softmax_mse"
    exact = hypergradient(problem, hp, "func")
    assert rel_error(hypergradient(problem, hp, "analytic"), exact) <= 1e-10
    assert rel_error(hypergradient(problem, hp, "fd", r=1e-4), exact) <= 1e-6
