"""`hypergradient` misused as a user would: under `torch.no_grad()` (the right answer), under
`torch.inference_mode()` (refused), with a detached or non-scalar loss (refused, naming the loss),
float16 hyperparameters on a float32 model (computed in float32), an infinite lr and a
DataParallel-wrapped model (refused before any work)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bilevel import EXACT as DECLARED_EXACT
from bilevel import BilevelProblem, hypergradient

from .helpers import mlp

# the exact estimators that serve a deep model (analytic: one-layer only; auto picks one)
EXACT = [n for n in DECLARED_EXACT if n not in ("analytic", "auto")]


def _problem(model=None, inner=None, outer=None, lr=0.3):
    g = torch.Generator().manual_seed(3)
    model = model or mlp()
    dtype = next(model.parameters()).dtype
    x, xv = (torch.randn(n, 1, 6, 6, generator=g).to(dtype) for n in (6, 5))
    y, yv = torch.randint(0, 3, (6,), generator=g), torch.randint(0, 3, (5,), generator=g)

    def weighted(f, hp):
        return (hp["w"] * F.cross_entropy(f(x), y, reduction="none")).mean()

    def val(f):
        return F.cross_entropy(f(xv), yv)

    return BilevelProblem(model, inner or weighted, outer or val, lr=lr), x


def _w(dtype=torch.float64):
    return {"w": torch.linspace(0.5, 1.5, 6, dtype=dtype)}


@pytest.mark.parametrize("estimator", [*EXACT, "fd"])
def test_no_grad_gives_the_same_hypergradient(estimator):
    problem, _ = _problem()
    outside = hypergradient(problem, _w(), estimator)["w"]
    with torch.no_grad():
        inside = hypergradient(problem, _w(), estimator)["w"]
    assert outside.abs().max() > 1e-4
    torch.testing.assert_close(inside, outside, rtol=1e-12, atol=0)


def test_inference_mode_is_refused():
    problem, _ = _problem()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        hypergradient(problem, _w(), "func")


@pytest.mark.parametrize("estimator", [*EXACT, "fd", "implicit"])
def test_a_detached_inner_loss_is_refused(estimator):
    _, x = _problem()

    def detached(f, hp):
        return (hp["w"] * F.cross_entropy(f(x), torch.zeros(6, dtype=torch.long))).mean().detach()

    bad, _ = _problem(inner=detached)
    with pytest.raises(ValueError, match="inner_loss is detached from the graph"):
        hypergradient(bad, _w(), estimator)


@pytest.mark.parametrize("estimator", [*EXACT, "fd"])
def test_a_detached_outer_loss_is_refused(estimator):
    zeros = torch.zeros(2, 1, 6, 6, dtype=torch.float64)
    bad, _ = _problem(outer=lambda f: f(zeros).sum().detach())
    with pytest.raises(ValueError, match="outer_loss is detached from the graph"):
        hypergradient(bad, _w(), estimator)


@pytest.mark.parametrize("estimator", [*EXACT, "fd"])
def test_a_non_scalar_inner_loss_is_refused(estimator):
    _, x = _problem()
    bad, _ = _problem(inner=lambda f, hp: hp["w"][:, None] * f(x))
    with pytest.raises(ValueError, match=r"inner_loss must return a scalar tensor, got \(6, 3\)"):
        hypergradient(bad, _w(), estimator)


@pytest.mark.parametrize("estimator", ["fd", "func", "forward"])
def test_half_precision_hparams_on_a_float32_model_are_computed_in_float32(estimator):
    problem, _ = _problem(model=mlp().float())
    full = hypergradient(problem, _w(torch.float32), estimator)["w"]
    half = hypergradient(problem, _w(torch.float16), estimator)["w"]
    assert half.dtype == torch.float16
    # the same λ values (exact in float16) give the float32 result, rounded to float16
    exact = hypergradient(problem, {"w": _w(torch.float16)["w"].float()}, estimator)["w"]
    torch.testing.assert_close(half, exact.half())
    assert F.cosine_similarity(half.float(), full, dim=0) > 0.999


@pytest.mark.parametrize("lr", [float("inf"), float("nan"), 0.0])
def test_a_learning_rate_that_is_not_finite_and_positive_is_refused(lr):
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        _problem(lr=lr)


def test_a_data_parallel_model_is_refused():
    with pytest.raises(TypeError, match=r"DataParallel.*pass model.module"):
        _problem(model=nn.DataParallel(mlp()))
