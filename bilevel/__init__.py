"""Bilevel core: one problem, interchangeable hypergradient estimators.

```python
from bilevel import BilevelProblem, hypergradient
problem = BilevelProblem(model, inner_loss, outer_loss, lr=0.1, steps=1)
grads = hypergradient(problem, hparams, estimator="forward")
```
"""

# the version of the bilevel-ssl distribution (pyproject reads it from here; CHANGELOG.md)
__version__ = "0.2.0"

from .adam import AdamConfig, AdamState
from .estimators import (
    ESTIMATORS,
    EXACT,
    Estimator,
    check_optimizer,
    check_options,
    choose,
    options_of,
    serving,
)
from .functional import Evaluator, frozen_norm_stats
from .hypergrad import NonFiniteError, hypergradient
from .losses import ImputedTargets, per_sample_loss
from .parallel import Shard
from .problem import BilevelProblem, ModelFn
from .sgd import SGDConfig, sgd_step

__all__ = [
    "ESTIMATORS",
    "EXACT",
    "AdamConfig",
    "AdamState",
    "BilevelProblem",
    "Estimator",
    "Evaluator",
    "ImputedTargets",
    "ModelFn",
    "NonFiniteError",
    "SGDConfig",
    "Shard",
    "check_optimizer",
    "check_options",
    "choose",
    "frozen_norm_stats",
    "hypergradient",
    "options_of",
    "per_sample_loss",
    "serving",
    "sgd_step",
]
