"""DESIGN.md's estimator rules: no mutation, same randomness, float64, and clear errors."""

import re

import pytest
import torch
from torch import nn

from bilevel import ESTIMATORS, BilevelProblem, hypergradient
from bilevel.examples import BUILDERS

from .helpers import MODELS, batch, brute_force, cosine, mlp, rel_error

ONE_STEP_LINEAR = ["higher", "func", "forward", "fd", "analytic", "implicit"]


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", [n for n in ESTIMATORS if n != "analytic"])
def test_parameters_and_batchnorm_buffers_unchanged(name, mode):
    model = MODELS["cnn_bn"]()
    model.train(mode == "train")
    problem, hp = BUILDERS["a_imputed_away"](model, batch(), lr=0.5, momentum=0.9)
    problem.momentum_buffers = {n: torch.ones_like(p) for n, p in problem.params().items()}
    before, bufs, rng = _state(model), _state_of(problem.momentum_buffers), torch.get_rng_state()
    hp_before = hp["z"].clone()
    hypergradient(problem, hp, name)
    after = _state(model)
    assert before.keys() == after.keys()
    for k in before:  # running_mean, running_var, num_batches_tracked, weights
        assert torch.equal(before[k], after[k]), k
    assert all(m.track_running_stats for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.training == (mode == "train")
    assert all(torch.equal(bufs[k], problem.momentum_buffers[k]) for k in bufs)
    assert torch.equal(hp_before, hp["z"])
    assert torch.equal(rng, torch.get_rng_state())  # global random state untouched


def _state_of(d):
    return {k: v.clone() for k, v in d.items()}


def test_batchnorm_mode_is_the_models_mode():
    """Train mode normalises with batch statistics, eval mode with running statistics."""
    model = MODELS["cnn_bn"]()
    model(batch(seed=7).x_lab * 3 + 1)  # move running statistics away from the batch's
    problem, hp = BUILDERS["a_imputed_away"](model, batch(), lr=0.5)
    train = hypergradient(problem, hp, "func")
    model.eval()
    evaluation = hypergradient(problem, hp, "func")
    assert rel_error(train, evaluation) > 1e-3
    for name in ("higher", "forward"):
        assert rel_error(hypergradient(problem, hp, name), evaluation) <= 1e-8
    assert rel_error(evaluation, brute_force(problem, hp)) <= 1e-6


def test_dropout_masks_are_the_same_for_every_evaluation():
    model = mlp(dropout=0.5)
    problem, hp = BUILDERS["a_imputed_away"](model, batch(), lr=0.5)
    torch.manual_seed(123)
    ref = hypergradient(problem, hp, "func")
    torch.manual_seed(123)
    for name in ("higher", "forward"):
        torch.manual_seed(123)
        assert rel_error(hypergradient(problem, hp, name), ref) <= 1e-8, name
    torch.manual_seed(123)
    assert cosine(hypergradient(problem, hp, "fd"), ref) >= 0.9999
    # brute force that re-seeds before every loss evaluation sees the same masks
    assert rel_error(ref, brute_force(problem, hp, seed=123)) <= 1e-6
    # control: dropout is really active, another random state gives another hypergradient
    torch.manual_seed(124)
    assert rel_error(hypergradient(problem, hp, "func"), ref) > 1e-3


@pytest.mark.parametrize("name", ONE_STEP_LINEAR)
def test_float64_end_to_end(name):
    problem, hp = BUILDERS["a_imputed_away"](MODELS["linear"](), batch(), lr=0.5)
    grads = hypergradient(problem, hp, name)
    assert grads.keys() == hp.keys()
    assert grads["z"].dtype == torch.float64 and grads["z"].shape == hp["z"].shape
    assert not grads["z"].requires_grad


# -- clear errors ------------------------------------------------------------------------------
def _problem(steps=1, model_name="mlp", kind="a_imputed_away"):
    return BUILDERS[kind](MODELS[model_name](), batch(), lr=0.5, steps=steps)


def test_unknown_estimator_lists_valid_names():
    problem, hp = _problem()
    valid = r"analytic, forward, func, higher, auto, fd"
    with pytest.raises(ValueError, match=rf"unknown estimator 'exact'; valid: {valid}"):
        hypergradient(problem, hp, "exact")


@pytest.mark.parametrize("name", ["forward", "fd", "analytic"])
def test_one_step_estimators_refuse_more_steps(name):
    problem, hp = _problem(steps=2, model_name="linear")
    with pytest.raises(
        ValueError, match=rf"'{name}' serves steps=1, got steps=2.*'func' or 'higher'"
    ):
        hypergradient(problem, hp, name)


def test_analytic_refuses_deep_model():
    problem, hp = _problem(model_name="cnn_bn")
    with pytest.raises(ValueError, match=r"one-layer models only.*Conv2d"):
        hypergradient(problem, hp, "analytic")


def test_analytic_refuses_unstructured_loss_and_other_hyperparameters():
    problem, hp = _problem(model_name="linear", kind="c_weighting_net")
    with pytest.raises(ValueError, match=r"needs the inner loss as bilevel\.ImputedTargets"):
        hypergradient(problem, hp, "analytic")
    problem, hp = _problem(model_name="linear")
    with pytest.raises(
        ValueError, match=r"imputed targets \(hparams\['z'\]\) only; also got \['w'\]"
    ):
        hypergradient(problem, {**hp, "w": torch.zeros(3, dtype=torch.float64)}, "analytic")


def test_unknown_option_and_bad_inputs():
    problem, hp = _problem()
    with pytest.raises(
        TypeError, match=r"'fd' has no option\(s\) \['eps'\]; its options: r, lookahead"
    ):
        hypergradient(problem, hp, "fd", eps=0.1)
    with pytest.raises(TypeError, match=r"hparams\['z'\] must be a floating-point tensor"):
        hypergradient(problem, {"z": torch.zeros(3, dtype=torch.long)}, "func")
    with pytest.raises(TypeError, match="non-empty dict"):
        hypergradient(problem, {}, "func")
    bad = BilevelProblem(
        problem.model,
        lambda f, hp: f(torch.zeros(2, 1, 6, 6, dtype=torch.float64)),
        problem.outer_loss,
    )
    with pytest.raises(ValueError, match=r"inner_loss must return a scalar tensor, got \(2, 3\)"):
        hypergradient(bad, hp, "func")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        BilevelProblem(problem.model, problem.inner_loss, problem.outer_loss, lr=0.0)
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        BilevelProblem(problem.model, problem.inner_loss, problem.outer_loss, nesterov=True)
    with pytest.raises(KeyError, match="not trainable parameters"):
        BilevelProblem(
            problem.model,
            problem.inner_loss,
            problem.outer_loss,
            momentum_buffers={"nope": torch.zeros(1)},
        )


def test_non_finite_hyperparameters_and_boolean_steps_are_refused():
    from bilevel import BilevelProblem, hypergradient

    model = torch.nn.Linear(2, 1).double()

    def inner(f, hp):
        return (hp["w"] * f(torch.ones(3, 2, dtype=torch.float64))[:, 0]).sum()

    def outer(f):
        return f(torch.ones(1, 2, dtype=torch.float64)).sum()

    problem = BilevelProblem(model, inner, outer)
    for bad in (float("nan"), float("inf")):
        w = torch.tensor([1.0, bad, 0.0], dtype=torch.float64)
        with pytest.raises(ValueError, match=r"hparams\['w'\] has non-finite values"):
            hypergradient(problem, {"w": w})
    with pytest.raises(ValueError, match="steps must be a non-negative int, got True"):
        BilevelProblem(model, inner, outer, steps=True)


def _weighted_problem():
    from bilevel import BilevelProblem

    model = torch.nn.Linear(2, 1).double()
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)

    def inner(f, hp):
        return (hp["w"] * f(x)[:, 0] ** 2).sum()

    def outer(f):
        return f(torch.ones(1, 2, dtype=torch.float64)).sum() ** 2

    return BilevelProblem(model, inner, outer, lr=0.1), outer


@pytest.mark.parametrize("name", ["higher", "func", "forward", "fd", "implicit"])
def test_an_unused_hyperparameter_key_is_refused_unless_allowed(name):
    problem, _ = _weighted_problem()
    hp = {"w": torch.ones(3, dtype=torch.float64), "t": torch.zeros(2, dtype=torch.float64)}
    with pytest.raises(ValueError, match=r"hparams key\(s\) \['t'\] are never read by the inner"):
        hypergradient(problem, hp, name)
    grads = hypergradient(problem, hp, name, allow_unused=True)
    assert torch.equal(grads["t"], torch.zeros(2, dtype=torch.float64))
    alone = hypergradient(problem, {"w": hp["w"]}, name)
    assert torch.equal(grads["w"], alone["w"])


def test_keys_read_through_items_or_a_copy_count_as_used():
    problem, outer = _weighted_problem()
    from bilevel import BilevelProblem

    def inner(f, hp):
        weights = dict(hp)  # a copy reads every key
        return (weights["w"] * f(torch.ones(3, 2, dtype=torch.float64))[:, 0]).sum() + sum(
            v.sum() for _, v in hp.items()
        )

    copied = BilevelProblem(problem.model, inner, outer)
    hp = {"w": torch.ones(3, dtype=torch.float64), "t": torch.zeros(2, dtype=torch.float64)}
    assert set(hypergradient(copied, hp)) == {"w", "t"}


@pytest.mark.parametrize("name", ["func", "forward", "fd"])
def test_a_nan_outer_loss_is_an_error_not_a_nan_gradient(name):
    from bilevel import BilevelProblem, NonFiniteError

    problem, _ = _weighted_problem()

    def nan_outer(f):
        return f(torch.ones(1, 2, dtype=torch.float64)).sum() * float("nan")

    bad = BilevelProblem(problem.model, problem.inner_loss, nan_outer)
    with pytest.raises(NonFiniteError, match=r"the hypergradient of 'w' has non-finite values"):
        hypergradient(bad, {"w": torch.ones(3, dtype=torch.float64)}, name)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("fd", {"r": -1.0}, "option r must be a finite number > 0, got -1.0"),
        ("fd", {"r": float("inf")}, "option r must be a finite number > 0, got inf"),
        ("implicit", {"method": "lu"}, "option method must be 'cg' or 'neumann', got 'lu'"),
        ("implicit", {"iters": 0}, "option iters must be an int >= 1, got 0"),
        ("implicit", {"tol": -1e-3}, "option tol must be a finite number >= 0"),
        ("implicit", {"alpha": 0.0}, "option alpha must be None or a finite number > 0"),
    ],
)
def test_estimator_options_out_of_range_name_the_option(name, options, message):
    problem, _ = _weighted_problem()
    with pytest.raises(ValueError, match=re.escape(message)):
        hypergradient(problem, {"w": torch.ones(3, dtype=torch.float64)}, name, **options)


def test_auto_picks_the_fastest_exact_estimator_by_its_rule():
    from bilevel import choose

    one = _problem(model_name="mlp")
    assert choose(one[0]) == "forward"
    linear, hp = _problem(model_name="linear")
    assert choose(linear) == choose(linear, hp) == "analytic"
    assert choose(linear, {**hp, "w": torch.zeros(3, dtype=torch.float64)}) == "forward"
    assert choose(_problem(model_name="mlp", steps=3)[0]) == "func"
    weights = _problem(model_name="linear", kind="c_weighting_net")
    assert choose(weights[0]) == "forward"  # not ImputedTargets: no closed form
    for problem, hp in (one, _problem(model_name="linear"), _problem(model_name="mlp", steps=3)):
        ref = hypergradient(problem, hp, choose(problem))
        got = hypergradient(problem, hp)  # the default is auto
        assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_an_evaluator_steps_from_the_hparams_it_is_given_each_time():
    """The first step's gradient is reused within a call for the same λ, never for another."""
    from bilevel import Evaluator

    problem, hp = _problem()
    other = {k: v + 1.0 for k, v in hp.items()}
    with Evaluator(problem) as ev:
        a, b, again = ev.first_step(hp), ev.first_step(other), ev.first_step(hp)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], again[k]) for k in a)


def test_a_compiled_model_is_refused_with_what_to_pass_instead():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"torch.compile'd module.*pass model._orig_mod"):
        BilevelProblem(torch.compile(model), lambda f, hp: f(hp["x"]).sum(), lambda f: 0)
