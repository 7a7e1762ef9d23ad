"""The hypergradient estimators, by name: every module of this package that defines a subclass
of `Estimator` adds it (its `name`), so the registry and every list below are derived from the
declarations (`base.Estimator`) and never kept by hand."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from torch import Tensor, nn

from ..problem import BilevelProblem
from .auto import choose
from .base import Estimator


def _discover() -> MappingProxyType:
    found: dict[str, type[Estimator]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # __main__ writes the table
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Estimator) and "name" in vars(obj):
                other = found.get(obj.name)
                if other is not None and other is not obj:
                    raise RuntimeError(f"two estimators are named {obj.name!r}: {other}, {obj}")
                found[obj.name] = obj
    order = sorted(found.values(), key=lambda cls: (not cls.exact, cls.priority, cls.name))
    return MappingProxyType({cls.name: cls for cls in order})


ESTIMATORS: MappingProxyType = _discover()  # name -> Estimator class, exact ones first
EXACT = tuple(n for n, cls in ESTIMATORS.items() if cls.exact)  # exact where they serve


def get(name: str) -> type[Estimator]:
    """The estimator class named `name` (ValueError listing the valid names)."""
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise ValueError(f"unknown estimator {name!r}; valid: {', '.join(ESTIMATORS)}")
    return cls


def options_of(name: str) -> dict[str, Any]:
    """The keyword options of estimator `name` with their defaults."""
    return get(name).options()


def check_options(name: str, options: dict[str, Any]) -> Estimator:
    """The estimator `name` with `options`; raise if `name` is not an estimator, or `options`
    has an unknown or out-of-range option (TypeError for an unknown one, ValueError for a bad
    value; both name the option)."""
    return get(name).create(options)


def _advice(refused: str, serving: list[str]) -> str:
    """ "; use 'a', 'b' or 'c'": the exact estimators (not `refused`) that serve instead, or ""."""
    others = [repr(n) for n in serving if n != refused]
    if not others:
        return ""
    return "; use " + (
        f"{', '.join(others[:-1])} or {others[-1]}" if len(others) > 1 else others[0]
    )


def _exact_serving(serves: Callable[[type[Estimator]], bool]) -> list[str]:
    """The exact estimators (`auto` left out) for which `serves(cls)` holds, in registry order."""
    return [n for n, cls in ESTIMATORS.items() if cls.exact and n != "auto" and serves(cls)]


def check_model(name: str, model: nn.Module) -> None:
    """Raise ValueError if estimator `name` cannot serve `model`, advising the exact estimators
    that do."""
    reason = get(name).model_refusal(model)
    if reason is not None:
        serving = _exact_serving(lambda cls: cls.model_refusal(model) is None)
        raise ValueError(reason + _advice(name, serving))


def check_optimizer(
    name: str, optimizer: str, weight_decay: float = 0.0, model: nn.Module | None = None
) -> None:
    """Raise ValueError if estimator `name` cannot serve an inner `optimizer` ("sgd", "adam",
    "adamw") with this weight decay, advising the exact estimators that serve it (and `model`,
    when given)."""
    reason = get(name).optimizer_refusal(optimizer, weight_decay)
    if reason is None:
        return
    serving = _exact_serving(
        lambda cls: (
            cls.optimizer_refusal(optimizer, weight_decay) is None
            and (model is None or cls.model_refusal(model) is None)
        )
    )
    raise ValueError(reason + _advice(name, serving))


def serving(
    problem: BilevelProblem, hparams: dict[str, Tensor] | None = None, *, exact: bool | None = None
) -> list[str]:
    """The estimators (with default options, `auto` left out) that serve `problem`; `exact`
    True or False keeps only the exact or only the approximate ones."""
    return [
        n
        for n, cls in ESTIMATORS.items()
        if n != "auto"
        and (exact is None or cls.exact == exact)
        and cls().refusal(problem, hparams) is None
    ]


def check_serves(
    estimator: Estimator, problem: BilevelProblem, hparams: dict[str, Tensor] | None = None
) -> None:
    """Raise ValueError if `estimator` does not serve `problem`, with the exact estimators
    that do."""
    reason = estimator.refusal(problem, hparams)
    if reason is not None:
        raise ValueError(reason + _advice(estimator.name, serving(problem, hparams, exact=True)))


def table() -> str:
    """The documentation's table of estimators (Markdown), from the declarations."""
    rows = [
        "| estimator | exact | steps K | inner optimizers | learned lr | options (default) "
        "| what it computes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, cls in ESTIMATORS.items():
        options = ", ".join(f"`{k}` ({v!r})" for k, v in cls.options().items()) or "none"
        rows.append(
            f"| `{name}` | {'yes' if cls.exact else 'no'} | {cls.steps_text()} | "
            f"{', '.join(cls.optimizers)} | {'yes' if cls.learned_lr else 'no'} | {options} | "
            f"{cls.summary} |"
        )
    return "\n".join(rows) + "\n"


__all__ = [
    "ESTIMATORS",
    "EXACT",
    "Estimator",
    "check_model",
    "check_optimizer",
    "check_options",
    "check_serves",
    "choose",
    "get",
    "options_of",
    "serving",
    "table",
]
