"""The hypergradient estimators, by name. Each is a plain function
`estimator(problem, hparams, **options) -> dict of gradients shaped like hparams`."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from .analytic import analytic
from .auto import auto, choose  # noqa: F401 - re-exported by bilevel
from .fd import fd
from .forward import forward
from .implicit import implicit
from .unrolled import func
from .via_higher import higher_unroll

Estimator = Callable[..., dict]

# name -> (function, which numbers of inner steps K it serves)
_TABLE: tuple[tuple[str, Estimator, str], ...] = (
    ("higher", higher_unroll, "K>=1"),
    ("func", func, "K>=1"),
    ("forward", forward, "K=1"),
    ("fd", fd, "K=1"),
    ("analytic", analytic, "K=1"),
    ("implicit", implicit, "K>=0"),
    ("auto", auto, "K>=1"),
)


def _build(table):
    names = [name for name, _, _ in table]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate estimator names: {duplicates}")
    return MappingProxyType({name: fn for name, fn, _ in table}), {n: k for n, _, k in table}


ESTIMATORS, STEPS = _build(_TABLE)
EXACT = ("higher", "func", "forward", "analytic", "auto")  # exact for the problems they serve
# the estimators proper that serve every one-step problem on every model (`analytic` needs a
# one-layer model; `implicit` is a different quantity away from a stationary point; `auto`
# picks one of the others)
GENERAL = tuple(n for n in ESTIMATORS if n not in ("analytic", "implicit", "auto"))


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# (estimator, option) -> (valid?, what it must be); options not listed take any value
_OPTION_RULES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("fd", "r"): (_positive, "a finite number > 0"),
    ("fd", "lookahead"): (lambda v: isinstance(v, bool), "true or false"),
    ("func", "checkpoint"): (lambda v: isinstance(v, bool), "true or false"),
    ("implicit", "method"): (lambda v: v in ("cg", "neumann"), "'cg' or 'neumann'"),
    ("implicit", "iters"): (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an int >= 1",
    ),
    ("implicit", "tol"): (lambda v: _positive(v) or v == 0, "a finite number >= 0"),
    ("implicit", "alpha"): (lambda v: v is None or _positive(v), "None or a finite number > 0"),
}


def check_optimizer(name: str, optimizer: str, weight_decay: float = 0.0) -> None:
    """Raise ValueError if estimator `name` cannot serve an inner `optimizer` ("sgd", "adam",
    "adamw") with this weight decay."""
    if name == "higher" and optimizer != "sgd":
        raise ValueError(
            "higher: its DifferentiableAdam adds eps before the bias correction (eps/√(1−β₂ᵗ) in "
            "torch.optim.Adam's terms) and has no AdamW, so it unrolls another optimizer; use "
            "'func' or 'forward' for Adam and AdamW inner steps"
        )
    if name == "implicit" and optimizer == "adamw" and weight_decay:
        raise ValueError(
            "implicit: AdamW's decoupled weight decay has no inner objective whose stationary "
            "point its steps reach; use optimizer='adam' (L2 decay) or weight_decay=0"
        )


def options_of(name: str) -> dict[str, Any]:
    """The keyword options of estimator `name` with their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(ESTIMATORS[name]).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    }


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise if `name` is not an estimator, or `options` has an unknown or out-of-range option
    (TypeError for an unknown one, ValueError for a bad value; both name the option)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; valid: {', '.join(ESTIMATORS)}")
    allowed = options_of(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "none"
        raise TypeError(f"estimator {name!r} has no option(s) {unknown}; its options: {valid}")
    for option, value in options.items():
        ok, what = _OPTION_RULES.get((name, option), (lambda v: True, ""))
        if not ok(value):
            raise ValueError(f"estimator {name!r}: option {option} must be {what}, got {value!r}")
