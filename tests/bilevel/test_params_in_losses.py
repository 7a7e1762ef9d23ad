"""Losses that read the parameters they are evaluated at (`f.params`): a learned weight-decay
coefficient, one for the whole model and one per layer, through K unrolled steps, under every
estimator that serves it, against a brute-force difference through torch.optim.SGD and against
TorchOpt (float64); and a loss that reads the module's own parameters instead is refused."""

import pytest
import torch
import torch.nn.functional as F

from analysis.oracles import torchopt_hypergradient
from bilevel import BilevelProblem, ModelFn, hypergradient

from .helpers import DT, MODELS, batch, brute_force, rel_error

EXACT_TOL = 1e-8  # between exact estimators, and against TorchOpt
BRUTE_TOL = 1e-6  # against the O(h²) brute-force difference, h = 1e-6
FD_TOL = 1e-5  # `fd`'s own O(ε²) difference, r = 1e-3


def _weight_decay(model_name: str, steps: int, per_layer: bool = False, **settings):
    """L_in = CE(f(x), y) + ½ Σ_l e^{λ_l} ‖θ_l‖², G = CE on the hold-out batch; λ one
    coefficient (the whole model) or one per parameter tensor."""
    model = MODELS[model_name]()
    b = batch()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    size = len(names) if per_layer else 1
    hp = {"log_wd": torch.linspace(-3.0, -1.0, size, dtype=DT)}

    def inner(f: ModelFn, hp: dict) -> torch.Tensor:
        norms = torch.stack([f.params[n].pow(2).sum() for n in names])
        coef = hp["log_wd"].exp() if per_layer else hp["log_wd"].exp().expand(len(names))
        return F.cross_entropy(f(b.x_lab), b.y_lab) + 0.5 * (coef * norms).sum()

    def outer(f: ModelFn) -> torch.Tensor:
        return F.cross_entropy(f(b.x_out), b.y_out)

    return BilevelProblem(model, inner, outer, lr=0.3, steps=steps, **settings), hp


SETTINGS = {"plain": {}, "momentum_wd": {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}}


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("per_layer", [False, True], ids=["global", "per_layer"])
@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("model_name", ["mlp", "cnn_bn"])
def test_learned_weight_decay_under_every_estimator(model_name, steps, per_layer, settings):
    problem, hp = _weight_decay(model_name, steps, per_layer, **SETTINGS[settings])
    ref = brute_force(problem, hp)
    oracle = torchopt_hypergradient(problem, hp)
    assert rel_error(oracle, ref) <= BRUTE_TOL
    exact = ["func", "higher", "auto"] + (["forward"] if steps == 1 else [])
    for name in exact:
        got = hypergradient(problem, hp, name)
        assert rel_error(got, oracle) <= EXACT_TOL, name
    got = hypergradient(problem, hp, "func", checkpoint=True)
    assert rel_error(got, oracle) <= EXACT_TOL
    if steps == 1:
        assert rel_error(hypergradient(problem, hp, "fd"), oracle) <= FD_TOL
    # the penalty matters (per layer, a conv bias under BatchNorm and a BatchNorm bias at its
    # initial 0 can have exactly 0: the first changes no output, the second no gradient at K=1)
    assert float(ref["log_wd"].abs().max()) > 1e-4


def test_learned_weight_decay_with_adam():
    """Adam's virtual step (func; `higher` serves SGD only) against TorchOpt's MetaAdam."""
    settings = {"optimizer": "adam", "betas": (0.5, 0.75), "lr": 0.01}
    problem, hp = _weight_decay("mlp", 3, per_layer=True)
    problem = BilevelProblem(
        problem.model, problem.inner_loss, problem.outer_loss, steps=3, **settings
    )
    oracle = torchopt_hypergradient(problem, hp)
    assert rel_error(hypergradient(problem, hp, "func"), oracle) <= 1e-9
    assert rel_error(oracle, brute_force(problem, hp)) <= BRUTE_TOL


def test_implicit_learns_ridges_coefficient_from_the_parameters():
    """At the solution of ridge regression, `implicit` with the penalty read from f.params
    equals the closed form (tests/bilevel/test_implicit.py has the derivation)."""
    from .test_implicit import _closed_form, _ridge

    X, y, Xv, yv = _ridge()
    log_lam = torch.tensor(-1.0, dtype=DT)
    theta_star, expected = _closed_form(X, y, Xv, yv, log_lam)
    model = torch.nn.Linear(X.shape[1], 1, bias=False).to(DT)
    with torch.no_grad():
        model.weight.copy_(theta_star[None])

    def inner(f, hp):
        fit = 0.5 * (f(X)[:, 0] - y).pow(2).mean()
        return fit + 0.5 * hp["log_lam"].exp() * f.params["weight"].pow(2).sum()

    def outer(f):
        return 0.5 * (f(Xv)[:, 0] - yv).pow(2).mean()

    problem = BilevelProblem(model, inner, outer, lr=0.2, steps=0)
    got = hypergradient(problem, {"log_lam": log_lam}, "implicit", method="cg", iters=400)
    assert torch.allclose(got["log_lam"], expected, rtol=1e-8, atol=0)


@pytest.mark.parametrize("estimator", ["func", "higher", "forward", "fd", "implicit"])
def test_a_loss_that_reads_the_modules_own_parameters_is_refused(estimator):
    """Closing over `model.parameters()` reads θ₀, which no virtual step moves: the penalty's
    share of the hypergradient would be a silent 0. Every estimator refuses it, naming f.params."""
    problem, hp = _weight_decay("mlp", 1)
    model, b = problem.model, batch()

    def inner(f, hp):
        penalty = sum(p.pow(2).sum() for p in model.parameters())
        return F.cross_entropy(f(b.x_lab), b.y_lab) + hp["log_wd"].exp().sum() * penalty

    problem.inner_loss = inner
    with pytest.raises(
        ValueError, match=r"inner_loss reads the module's own parameters .*f\.params"
    ):
        hypergradient(problem, hp, estimator)


def test_a_penalty_in_the_outer_loss_is_read_at_theta_k():
    """G may read f.params too (an L2 to a prior on the trained weights): every exact
    estimator agrees with TorchOpt."""
    problem, hp = _weight_decay("mlp", 3)
    plain = problem.outer_loss

    def outer(f):
        return plain(f) + 0.1 * sum(p.pow(2).sum() for p in f.params.values())

    problem.outer_loss = outer
    oracle = torchopt_hypergradient(problem, hp)
    for name in ("func", "higher"):
        assert rel_error(hypergradient(problem, hp, name), oracle) <= EXACT_TOL, name
    assert rel_error(oracle, brute_force(problem, hp)) <= BRUTE_TOL


def test_the_model_function_names_what_it_is():
    """f is called as f(x) and gives f.params; anything else says so."""
    model = MODELS["mlp"]()
    f = ModelFn.of(model)
    assert list(f.params) == [n for n, _ in model.named_parameters()]
    assert torch.equal(f(batch().x_lab), model(batch().x_lab))
    with pytest.raises(AttributeError, match=r"f\.params"):
        f.parameters()
