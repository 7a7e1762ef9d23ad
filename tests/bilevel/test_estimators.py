"""Every estimator against the others and against a brute-force central difference (float64)."""

import dataclasses

import pytest
import torch

from bilevel import BilevelProblem, hypergradient, serving
from bilevel.examples import BUILDERS

from .helpers import MODELS, batch, brute_force, cosine, flat, rel_error

EXACT_TOL = 1e-8  # between exact estimators
BRUTE_TOL = 1e-6  # against the O(h²) brute-force difference, h = 1e-6


def _exact_for(problem, hp) -> list[str]:
    """The exact estimators that serve the problem, from their declarations (`func`, the
    reference, left out)."""
    return [n for n in serving(problem, hp, exact=True) if n != "func"]


def test_the_declared_lists_cover_what_the_problems_need():
    """A control on the derivation: the one-layer imputed problem is served by every exact
    estimator, a three-step one only by the unrolling ones."""
    problem, hp = BUILDERS["a_imputed_away"](MODELS["linear"](), batch(), lr=0.5)
    assert _exact_for(problem, hp) == ["analytic", "forward", "higher"]
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.5, steps=3)
    assert _exact_for(problem, hp) == ["higher"]


@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_one_step(model_name, kind):
    problem, hp = BUILDERS[kind](MODELS[model_name](), batch(), lr=0.5)
    ref = hypergradient(problem, hp, "func")
    assert flat(ref).abs().max() > 1e-6, "degenerate problem: hypergradient is zero"
    for name in _exact_for(problem, hp):
        assert rel_error(hypergradient(problem, hp, name), ref) <= EXACT_TOL, name
    assert rel_error(ref, brute_force(problem, hp)) <= BRUTE_TOL
    assert cosine(hypergradient(problem, hp, "fd"), ref) >= 0.9999


SGD_VARIANTS = {
    "plain": {},
    "momentum_wd": {"momentum": 0.9, "weight_decay": 5e-2},
    "nesterov_wd": {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-2},
}


@pytest.mark.parametrize("sgd", list(SGD_VARIANTS))
@pytest.mark.parametrize("kind", ["a_imputed_away", "c_weighting_net"])
@pytest.mark.parametrize("model_name", ["mlp", "cnn_bn"])
def test_three_steps(model_name, kind, sgd):
    problem, hp = BUILDERS[kind](
        MODELS[model_name](), batch(), lr=0.3, steps=3, **SGD_VARIANTS[sgd]
    )
    ref = hypergradient(problem, hp, "func")
    assert rel_error(hypergradient(problem, hp, "higher"), ref) <= EXACT_TOL
    assert rel_error(ref, brute_force(problem, hp)) <= BRUTE_TOL


@pytest.mark.parametrize("sgd", list(SGD_VARIANTS))
def test_one_step_estimators_follow_momentum_and_weight_decay(sgd):
    """forward/fd/analytic scale by the first step's momentum coefficient (1 + μ under nesterov)."""
    problem, hp = BUILDERS["a_imputed_away"](
        MODELS["linear"](), batch(), lr=0.3, **SGD_VARIANTS[sgd]
    )
    ref = brute_force(problem, hp)
    for name in ("func", "higher", "forward", "analytic"):
        assert rel_error(hypergradient(problem, hp, name), ref) <= BRUTE_TOL, name
    assert cosine(hypergradient(problem, hp, "fd"), ref) >= 0.9999


def test_fd_error_shrinks_with_radius():
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.5)
    ref = hypergradient(problem, hp, "func")
    errors = [rel_error(hypergradient(problem, hp, "fd", r=r), ref) for r in (1e-1, 1e-2, 1e-3)]
    assert errors[0] > errors[1] > errors[2]  # central difference: O(r²) until round-off
    assert errors[2] < 1e-5


def test_fd_without_lookahead_is_the_meta_gradient_papers_approximation():
    """lookahead=False uses v = ∇G(θ₀): a different (cheaper) quantity, close but not equal."""
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.5)
    ref = hypergradient(problem, hp, "func")
    approx = hypergradient(problem, hp, "fd", lookahead=False)
    assert rel_error(approx, ref) > 1e-4
    assert cosine(approx, ref) > 0.5


def test_float32_is_supported_and_kept():
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"]().float(), _batch32(), lr=0.5)
    grads = {n: hypergradient(problem, hp, n) for n in ("func", "higher", "forward", "fd")}
    assert all(g["z"].dtype == torch.float32 for g in grads.values())
    assert rel_error(grads["forward"], grads["func"]) < 1e-4


def _batch32():
    b = batch()
    for field in ("x_lab", "x_unl", "x_out"):
        setattr(b, field, getattr(b, field).float())
    return b


@pytest.mark.parametrize("kind", ["a_imputed_away", "c_weighting_net"])
def test_coupled_loss_is_used_and_changes_nothing(kind):
    """The one-step estimators evaluate only the λ-dependent part of L_in when given it."""
    problem, hp = BUILDERS[kind](MODELS["cnn_bn"](), batch(), lr=0.5)
    assert problem.coupled_loss is not None
    with_part = {n: hypergradient(problem, hp, n) for n in ("forward", "fd")}
    whole = dataclasses.replace(problem, coupled_loss=None)
    for name, grads in with_part.items():
        assert rel_error(grads, hypergradient(whole, hp, name)) <= 1e-10, name
    wrong = dataclasses.replace(problem, coupled_loss=lambda f, h: 2 * problem.coupled_loss(f, h))
    assert rel_error(hypergradient(wrong, hp, "forward"), with_part["forward"]) > 0.5


@pytest.mark.parametrize("model_name", ["mlp_dropout", "cnn_bn"])
def test_checkpointed_unroll_equals_the_plain_one(model_name):
    """`func(checkpoint=True)` recomputes each step in the backward pass: same numbers (the
    random state is replayed, BatchNorm statistics frozen), through SGD and Adam steps."""
    from .helpers import mlp

    model = mlp(dropout=0.3) if model_name == "mlp_dropout" else MODELS[model_name]()
    problem, hp = BUILDERS["a_imputed_away"](model, batch(), lr=0.3, steps=3, momentum=0.9)
    plain = hypergradient(problem, hp, "func")
    assert rel_error(hypergradient(problem, hp, "func", checkpoint=True), plain) <= 1e-14
    adam = BilevelProblem(
        model, problem.inner_loss, problem.outer_loss, lr=0.01, steps=3, optimizer="adam"
    )
    plain = hypergradient(adam, hp, "func")
    assert rel_error(hypergradient(adam, hp, "func", checkpoint=True), plain) <= 1e-14


@pytest.mark.parametrize("name", ["forward", "fd"])
def test_a_given_first_inner_gradient_replaces_its_pass(name):
    """`first_inner_grad`: with the gradient the caller knows (zeros for Σ w_j ℓ_j at w = 0,
    Meta-Semi's sign test), the same hypergradient and one pass over the inner batch fewer."""
    model, b = MODELS["mlp"](), batch()
    calls = []

    def inner(f, hp):
        calls.append(1)
        per = torch.nn.functional.cross_entropy(
            f(b.x_unl), b.x_unl.new_zeros(len(b.x_unl)).long(), reduction="none"
        )
        return (hp["w"] * per).sum()

    def outer(f):
        return torch.nn.functional.cross_entropy(f(b.x_out), b.y_out)

    w0 = {"w": torch.zeros(len(b.x_unl), dtype=b.x_unl.dtype)}
    plain = BilevelProblem(model, inner, outer, lr=0.5, momentum=0.9, weight_decay=1e-2)
    given = dataclasses.replace(
        plain, first_inner_grad={n: torch.zeros_like(p) for n, p in plain.params().items()}
    )
    want = hypergradient(plain, w0, name)
    n_plain = len(calls)
    got = hypergradient(given, w0, name)
    assert torch.equal(got["w"], want["w"]) and want["w"].abs().max() > 0
    assert len(calls) - n_plain == n_plain - 1  # one evaluation of the inner loss fewer
