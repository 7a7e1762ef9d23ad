import numpy as np
import pytest
import torch
from torch import nn

from analysis.metagrad_theory import (
    TheoryConfig,
    check_theorem1,
    hessian_norm,
    max_jacobian_norm,
    power_iteration,
    running_min_rate,
)


def test_power_iteration_finds_the_largest_magnitude_eigenvalue():
    q, _ = torch.linalg.qr(
        torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    )
    a = q @ torch.diag(torch.tensor([1.0, -5.0, 2.0, 0.5, 3.0, -1.0], dtype=torch.float64)) @ q.T
    value = power_iteration(lambda v: a @ v, torch.ones(6, dtype=torch.float64), iters=500)
    assert value == pytest.approx(-5.0, rel=1e-6)


def test_hessian_norm_of_a_quadratic():
    g = torch.Generator().manual_seed(1)
    b = torch.randn(5, 5, dtype=torch.float64, generator=g)
    a = b @ b.T + torch.eye(5, dtype=torch.float64)
    c = torch.randn(3, dtype=torch.float64, generator=g)

    def loss(p):  # ½ xᵀAx over a (5,) block plus 2‖y‖² over a (3,) block: eigenvalues A ∪ {4}
        return 0.5 * p["x"] @ a @ p["x"] + 2 * (p["y"] ** 2).sum() + c @ p["y"]

    params = {"x": torch.zeros(5, dtype=torch.float64), "y": torch.ones(3, dtype=torch.float64)}
    expected = max(float(torch.linalg.eigvalsh(a).max()), 4.0)
    assert hessian_norm(loss, params, iters=500) == pytest.approx(expected, rel=1e-6)


def test_jacobian_norm_of_a_zero_linear_model():
    """p = softmax(Wx + b) at W = 0, b = 0: J = S [xᵀ ⊗ I, I] with S = (I − 11ᵀ/C)/C, so
    ‖J‖₂ = ‖S‖₂ √(‖x‖² + 1) = √(‖x‖² + 1)/C."""
    model = nn.Linear(4, 3).double()
    params = {k: torch.zeros_like(v) for k, v in model.named_parameters()}
    x = torch.tensor([[1.0, 0, 0, 0], [1.0, 2.0, 2.0, 0.0]], dtype=torch.float64)
    assert max_jacobian_norm(model, params, x) == pytest.approx(np.sqrt(9 + 1) / 3, rel=1e-10)


def test_running_min_rate():
    steps, mins, c = running_min_rate(np.array([9.0, 4.0, 5.0, 1.0]))
    assert steps.tolist() == [1, 2, 3]
    assert mins.tolist() == [4.0, 4.0, 1.0]
    assert c == pytest.approx(max(4.0, 4.0 * np.sqrt(2), np.sqrt(3)))


def test_theorem1_below_the_bound_every_step_decreases():
    cfg = TheoryConfig(steps=12, multiples=(0.5,), estimate_every=6, power_iters=30, hidden=8)
    frame, summary = check_theorem1(cfg)
    row = summary.iloc[0]
    assert row["alpha^2 beta 4 M^2 L0 (own run)"] < 1  # the condition held along the run
    assert row["steps with G(t+1) <= G(t) %"] == 100.0
    assert row["G end"] < row["G start"]
    assert len(frame) == cfg.steps + 1
