"""The hypergradient estimators, by name. Each is a plain function
`estimator(problem, hparams, **options) -> dict of gradients shaped like hparams`."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from .analytic import analytic
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
)


def _build(table):
    names = [name for name, _, _ in table]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate estimator names: {duplicates}")
    return MappingProxyType({name: fn for name, fn, _ in table}), {n: k for n, _, k in table}


ESTIMATORS, STEPS = _build(_TABLE)
EXACT = ("higher", "func", "forward", "analytic")  # exact for the problems they serve
# serve every one-step problem on every model (`analytic` needs a one-layer model; `implicit`
# is a different quantity away from a stationary point)
GENERAL = tuple(n for n in ESTIMATORS if n not in ("analytic", "implicit"))
