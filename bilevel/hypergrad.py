"""`hypergradient(problem, hparams, estimator=...)`: the one entry point to every estimator."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

from .estimators import ESTIMATORS, STEPS
from .problem import BilevelProblem


class NonFiniteError(ValueError):
    """A hyperparameter with nan or inf values (in training: the model has diverged)."""


def hypergradient(
    problem: BilevelProblem,
    hparams: dict[str, Tensor],
    estimator: str = "func",
    **options,
) -> dict[str, Tensor]:
    """dG(θ_K(λ))/dλ for λ = `hparams`, by the named estimator (see `bilevel.ESTIMATORS`).

    Returns detached gradients, one per key of `hparams`, each shaped like its tensor. The
    model's parameters, buffers and the global random state are the same after the call as
    before. `options` go to the estimator (e.g. `r=` for `fd`, `method=` for `implicit`).
    """
    fn = ESTIMATORS.get(estimator)
    if fn is None:
        raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"problem must be a BilevelProblem, got {type(problem).__name__}")
    _check_options(estimator, fn, options)
    _check_steps(estimator, problem.steps)
    leaves = _as_leaves(hparams)
    grads = fn(problem, leaves, **options)
    return {k: grads[k].detach() for k in hparams}


def _check_options(name: str, fn, options: dict) -> None:
    allowed = [
        p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise TypeError(f"estimator {name!r} has no option(s) {unknown}; its options: {valid}")


def _check_steps(name: str, steps: int) -> None:
    rule = STEPS[name]
    ok = {"K=1": steps == 1, "K>=1": steps >= 1, "K>=0": steps >= 0}[rule]
    if not ok:
        hint = "; use 'func' or 'higher' to unroll K > 1 steps" if rule == "K=1" else ""
        raise ValueError(
            f"estimator {name!r} serves {rule.replace('K', 'steps')}, got steps={steps}{hint}"
        )


def _as_leaves(hparams: dict[str, Tensor]) -> dict[str, Tensor]:
    if not isinstance(hparams, dict) or not hparams:
        raise TypeError("hparams must be a non-empty dict of tensors")
    leaves = {}
    for k, v in hparams.items():
        if not isinstance(v, Tensor) or not torch.is_floating_point(v):
            raise TypeError(
                f"hparams[{k!r}] must be a floating-point tensor, got {type(v).__name__}"
            )
        if not bool(torch.isfinite(v).all()):
            raise NonFiniteError(f"hparams[{k!r}] has non-finite values (nan or inf)")
        leaves[k] = v.detach().requires_grad_(True)
    return leaves
