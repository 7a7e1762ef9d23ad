"""`implicit` on ridge regression, whose hypergradient has a closed form."""

import pytest
import torch
from torch import nn

from bilevel import BilevelProblem, hypergradient

DT = torch.float64


def _ridge(seed=0, n=20, m=15, d=4):
    g = torch.Generator().manual_seed(seed)
    X, Xv = torch.randn(n, d, generator=g, dtype=DT), torch.randn(m, d, generator=g, dtype=DT)
    w_true = torch.randn(d, generator=g, dtype=DT)
    y = X @ w_true + 0.3 * torch.randn(n, generator=g, dtype=DT)
    yv = Xv @ w_true + 0.3 * torch.randn(m, generator=g, dtype=DT)
    return X, y, Xv, yv


def _closed_form(X, y, Xv, yv, log_lam):
    """θ*(λ) = (XᵀX/n + e^λ I)⁻¹ Xᵀy/n;  dG/dλ = −∇G(θ*)ᵀ A⁻¹ e^λ θ*."""
    n, d = X.shape
    A = X.T @ X / n + log_lam.exp() * torch.eye(d, dtype=DT)
    theta = torch.linalg.solve(A, X.T @ y / n)
    grad_G = Xv.T @ (Xv @ theta - yv) / len(Xv)
    return theta, -grad_G @ torch.linalg.solve(A, log_lam.exp() * theta)


def _problem(X, y, Xv, yv, theta0, steps, lr=0.2):
    model = nn.Linear(X.shape[1], 1, bias=False).to(DT)
    with torch.no_grad():
        model.weight.copy_(theta0[None])

    def inner(f, hp):  # ½ mean (xᵀθ − y)² + ½ e^λ ‖θ‖²
        theta = f(torch.eye(X.shape[1], dtype=DT))[:, 0]  # θ_i = f(e_i) for a bias-free layer
        return 0.5 * (f(X)[:, 0] - y).pow(2).mean() + 0.5 * hp["log_lam"].exp() * theta.pow(2).sum()

    def outer(f):
        return 0.5 * (f(Xv)[:, 0] - yv).pow(2).mean()

    return BilevelProblem(model, inner, outer, lr=lr, steps=steps)


@pytest.mark.parametrize("method", ["cg", "neumann"])
def test_implicit_at_the_solution_equals_closed_form(method):
    X, y, Xv, yv = _ridge()
    log_lam = torch.tensor(-1.0, dtype=DT)
    theta_star, expected = _closed_form(X, y, Xv, yv, log_lam)
    problem = _problem(X, y, Xv, yv, theta_star, steps=0)
    got = hypergradient(problem, {"log_lam": log_lam}, "implicit", method=method, iters=400)
    assert torch.allclose(got["log_lam"], expected, rtol=1e-8, atol=0)


def test_implicit_after_inner_steps_from_far_away():
    X, y, Xv, yv = _ridge(seed=1)
    log_lam = torch.tensor(-0.5, dtype=DT)
    _, expected = _closed_form(X, y, Xv, yv, log_lam)
    problem = _problem(X, y, Xv, yv, torch.zeros(4, dtype=DT), steps=400, lr=0.5)
    got = hypergradient(problem, {"log_lam": log_lam}, "implicit")
    assert torch.allclose(got["log_lam"], expected, rtol=1e-6, atol=0)
    # a short unroll from far away is a different quantity; implicit is not it
    short = _problem(X, y, Xv, yv, torch.zeros(4, dtype=DT), steps=1, lr=0.5)
    assert not torch.allclose(
        hypergradient(short, {"log_lam": log_lam}, "func")["log_lam"], expected, rtol=1e-2
    )


def test_implicit_rejects_unknown_method():
    X, y, Xv, yv = _ridge()
    problem = _problem(X, y, Xv, yv, torch.zeros(4, dtype=DT), steps=0)
    with pytest.raises(ValueError, match="method must be 'cg' or 'neumann'"):
        hypergradient(problem, {"log_lam": torch.tensor(0.0, dtype=DT)}, "implicit", method="lbfgs")


def test_conjugate_gradient_stops_where_the_curvature_is_not_positive():
    """On a singular H with b in its null space, CG returns its finite iterate (zeros), and on a
    positive-definite H it solves the system."""
    from bilevel.estimators.implicit import _conjugate_gradient

    h = torch.diag(torch.tensor([2.0, 0.0], dtype=torch.float64))

    def hvp(v):
        return {"a": h @ v["a"]}

    x = _conjugate_gradient(hvp, {"a": torch.tensor([0.0, 1.0], dtype=torch.float64)}, 10, 1e-12)
    assert torch.equal(x["a"], torch.zeros(2, dtype=torch.float64))
    h = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    x = _conjugate_gradient(hvp, {"a": b}, 10, 1e-20)
    assert torch.allclose(x["a"], torch.linalg.solve(h, b))
