"""Learning to Impute V2 on a Pseudo-Label base, CIFAR-10, 4000 labels, CNN-13."""

from ._base import CIFAR10, experiment

CONFIG = experiment(
    __name__,
    CIFAR10,
    "impute",
    holdout_batch=128,
    method_kw={"variant": "v2", "base": "pseudo_label"},
)
