"""The estimators' declarations (`bilevel.Estimator`) and what is derived from them: the
registry, the option checks, auto's choice, the documentation's table and API page."""

from __future__ import annotations

import dataclasses
import pkgutil
from pathlib import Path

import pytest
import torch

import bilevel.estimators as estimators
from bilevel import (
    ESTIMATORS,
    EXACT,
    Estimator,
    check_optimizer,
    check_options,
    choose,
    hypergradient,
    serving,
)
from bilevel.examples import BUILDERS

from .helpers import MODELS, batch

ROOT = Path(__file__).resolve().parents[2]


def test_every_estimator_module_declares_one_registered_estimator():
    modules = {m.name for m in pkgutil.iter_modules(estimators.__path__)}
    declaring = {cls.__module__.rsplit(".", 1)[1] for cls in ESTIMATORS.values()}
    assert declaring <= modules
    for name, cls in ESTIMATORS.items():
        assert issubclass(cls, Estimator) and cls.name == name
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        assert cls.summary and isinstance(cls.exact, bool) and isinstance(cls.priority, int)
        least, most = cls.steps
        assert least >= 0 and (most is None or most >= least)
        for options in cls.compared:  # make compare's rows build
            cls(**options)
    assert set(EXACT) == {n for n, c in ESTIMATORS.items() if c.exact}


def test_an_option_is_checked_by_its_rule_and_defaults_build():
    for name, cls in ESTIMATORS.items():
        assert check_options(name, {}) == cls()  # the defaults satisfy the rules
    with pytest.raises(ValueError, match="option r must be a finite number > 0, got 0"):
        check_options("fd", {"r": 0})
    with pytest.raises(TypeError, match=r"has no option\(s\) \['x'\]"):
        check_options("func", {"x": 1})


def test_a_new_declaration_is_enough(monkeypatch):
    """A subclass registered by name serves, refuses and is checked without other changes."""

    @dataclasses.dataclass(frozen=True)
    class Twice(Estimator):
        name = "twice_func"
        summary = "2 × func (a test double)"
        exact = False
        priority = 99
        steps = (1, 1)
        optimizers = ("sgd",)
        scale: float = estimators.base.option(2.0, estimators.base.POSITIVE)

        def __call__(self, problem, hparams):
            got = ESTIMATORS["func"]()(problem, hparams)
            return {k: self.scale * v for k, v in got.items()}

    monkeypatch.setattr(estimators, "ESTIMATORS", {**ESTIMATORS, "twice_func": Twice})
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.5)
    ref = hypergradient(problem, hp, "func")
    got = hypergradient(problem, hp, "twice_func", scale=3.0)
    assert (got["z"] - 3 * ref["z"]).abs().max() <= 1e-12
    with pytest.raises(ValueError, match="option scale must be a finite number > 0"):
        hypergradient(problem, hp, "twice_func", scale=-1.0)
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.5, steps=2)
    with pytest.raises(ValueError, match=r"'twice_func' serves steps=1, got steps=2; use 'func'"):
        hypergradient(problem, hp, "twice_func")
    assert "twice_func" not in serving(problem, hp)


def test_auto_picks_the_first_exact_estimator_by_priority_that_serves():
    exact = sorted(
        (c for c in ESTIMATORS.values() if c.exact and c.name != "auto"), key=lambda c: c.priority
    )
    for model_name, kind, steps in [
        ("linear", "a_imputed_away", 1),
        ("mlp", "a_imputed_away", 1),
        ("mlp", "c_weighting_net", 3),
    ]:
        problem, hp = BUILDERS[kind](MODELS[model_name](), batch(), lr=0.5, steps=steps)
        first = next(c.name for c in exact if c().refusal(problem, hp) is None)
        assert choose(problem, hp) == first
    # the rule's three outcomes
    problem, hp = BUILDERS["a_imputed_away"](MODELS["linear"](), batch(), lr=0.5)
    assert choose(problem, hp) == "analytic"
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.5)
    assert choose(problem, hp) == "forward"
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](), batch(), lr=0.5, steps=3)
    assert choose(problem, hp) == "func"


def test_the_documentation_table_is_generated_from_the_declarations():
    path = ROOT / "docs" / "generated" / "estimators.md"
    assert path.read_text() == estimators.table(), (
        "docs/generated/estimators.md is stale: run `make docs` (python -m bilevel.estimators "
        "docs/generated/estimators.md)"
    )
    readme = (ROOT / "README.md").read_text()
    assert f"do not edit -->\n{estimators.table()}<!-- end of the estimators table -->" in readme, (
        "README.md's estimators table is stale: run `make docs`"
    )
    for name in ESTIMATORS:
        assert f"| `{name}` |" in estimators.table()


def test_every_estimator_module_is_in_the_api_reference():
    page = (ROOT / "docs" / "api" / "estimators.md").read_text()
    for m in pkgutil.iter_modules(estimators.__path__):
        if not m.name.startswith("_"):
            assert f"::: bilevel.estimators.{m.name}\n" in page, (
                f"add '::: bilevel.estimators.{m.name}' to docs/api/estimators.md"
            )


def test_an_optimizer_refusal_advises_the_exact_estimators_that_serve_it_and_the_model():
    """The advice is derived from the declarations (optimizers, model refusals), not written
    into the reason: with a deep model `analytic` (one layer only) is not advised."""
    deep = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    expected = [
        n
        for n in EXACT
        if n not in ("auto", "higher")
        and ESTIMATORS[n].optimizer_refusal("adam") is None
        and ESTIMATORS[n].model_refusal(deep) is None
    ]
    assert expected == ["forward", "func"]
    with pytest.raises(ValueError, match=r"unrolls another optimizer; use 'forward' or 'func'$"):
        check_optimizer("higher", "adam", 0.0, deep)
    with pytest.raises(ValueError, match=r"; use 'analytic', 'forward' or 'func'$"):
        check_optimizer("higher", "adam", 0.0, torch.nn.Linear(3, 2))
    check_optimizer("higher", "sgd", 0.0, deep)  # served: no error
