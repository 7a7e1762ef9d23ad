"""What an estimator declares. Each estimator is a frozen dataclass in its own module: its fields
are its options (default and rule, checked in one place, `__post_init__`), and its class
variables say what it serves. The registry (`bilevel.ESTIMATORS`), `auto`'s choice, the
config's option checks, `make compare`'s rows, the tests' lists of exact estimators and the
documentation's table of estimators are all derived from these declarations.

Adding an estimator is one new module in `bilevel/estimators/` holding a subclass of
`Estimator` (found by `bilevel.estimators` at import) plus its tests; see the documentation's
"Adding an estimator".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..problem import BilevelProblem


@dataclass(frozen=True)
class Rule:
    """What an option's value must be: `ok(value)`, and `what` says so in an error."""

    ok: Callable[[Any], bool]
    what: str


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


POSITIVE = Rule(lambda v: _number(v) and v > 0, "a finite number > 0")
NON_NEGATIVE = Rule(lambda v: _number(v) and v >= 0, "a finite number >= 0")
BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
COUNT = Rule(lambda v: _int(v) and v >= 1, "an int >= 1")


def one_of(*choices: Any) -> Rule:
    return Rule(lambda v: v in choices, " or ".join(repr(c) for c in choices))


def optional(rule: Rule) -> Rule:
    """`rule`, or None."""
    return Rule(lambda v: v is None or rule.ok(v), f"None or {rule.what}")


def option(default: Any, rule: Rule | None = None, doc: str = "") -> Any:
    """A dataclass field for an estimator option: its default, its rule and one line of doc."""
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc})


OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class Estimator:
    """An estimator of dG(θ_K(λ))/dλ; calling it, `estimator(problem, hparams)`, returns one
    gradient per key of `hparams`. `bilevel.hypergradient` builds it from its options, checks
    `refusal(problem, hparams)` first and wraps the call (gradients enabled, losses checked)."""

    name: ClassVar[str]  # what `hypergradient(..., estimator=name)` calls it
    summary: ClassVar[str]  # one line for the documentation's table
    # exact: equal, up to rounding, to the unrolled hypergradient for every problem it serves
    exact: ClassVar[bool]
    # auto's preference among the exact estimators (lower: tried first) and the display order
    priority: ClassVar[int]
    steps: ClassVar[tuple[int, int | None]] = (1, None)  # the K it serves: (least, most or None)
    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS  # the inner optimizers it serves
    learned_lr: ClassVar[bool] = False  # whether it differentiates `BilevelProblem.lr_scale`
    # the option sets `make compare` times on its problems (where the estimator serves them)
    compared: ClassVar[tuple[dict[str, Any], ...]] = ({},)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rule = f.metadata.get("rule")
            value = getattr(self, f.name)
            if rule is not None and not rule.ok(value):
                raise ValueError(
                    f"estimator {self.name!r}: option {f.name} must be {rule.what}, got {value!r}"
                )

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The options with their defaults."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def create(cls, options: dict[str, Any]) -> Estimator:
        """The estimator with these options; TypeError for an unknown option, ValueError for
        a bad value (both name the option)."""
        unknown = sorted(set(options) - set(cls.options()))
        if unknown:
            valid = ", ".join(cls.options()) or "none"
            raise TypeError(
                f"estimator {cls.name!r} has no option(s) {unknown}; its options: {valid}"
            )
        return cls(**options)

    @classmethod
    def steps_text(cls) -> str:
        least, most = cls.steps
        if most == least:
            return f"K={least}"
        return f"K>={least}" if most is None else f"{least}<=K<={most}"

    @classmethod
    def optimizer_refusal(cls, optimizer: str, weight_decay: float = 0.0) -> str | None:
        """Why the inner `optimizer` ("sgd", "adam", "adamw") with this weight decay is not
        served, or None."""
        if optimizer not in cls.optimizers:
            served = ", ".join(cls.optimizers)
            return f"{cls.name} serves the inner optimizers {served}, not {optimizer}"
        return None

    @classmethod
    def model_refusal(cls, model: torch.nn.Module) -> str | None:
        """Why this estimator does not serve `model` whatever the losses, or None (checked by
        training before its first step, and by `refusal`)."""
        return None

    def refusal(
        self, problem: BilevelProblem, hparams: dict[str, Tensor] | None = None
    ) -> str | None:
        """Why this estimator does not serve `problem` (with `hparams`), or None: the step count,
        the inner optimizer and a learned learning rate from the declarations, the model, then
        `refuses`."""
        least, most = self.steps
        if problem.steps < least or (most is not None and problem.steps > most):
            served = self.steps_text().replace("K", "steps")
            return f"estimator {self.name!r} serves {served}, got steps={problem.steps}"
        reason = self.optimizer_refusal(problem.optimizer, problem.weight_decay)
        if reason is not None:
            return reason
        if problem.lr_scale is not None and not self.learned_lr:
            return (
                f"lr_scale: a learned learning rate enters the inner optimizer's steps, which "
                f"{self.name!r} does not differentiate"
            )
        return self.model_refusal(problem.model) or self.refuses(problem, hparams)

    def refuses(self, problem: BilevelProblem, hparams: dict[str, Tensor] | None) -> str | None:
        """What else this estimator refuses (its own conditions), or None."""
        return None

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError
