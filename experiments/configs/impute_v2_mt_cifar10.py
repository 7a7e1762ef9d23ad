"""Learning to Impute V2 on a Mean-Teacher base, CIFAR-10, 4000 labels, CNN-13."""

from ._base import CIFAR10, experiment

CONFIG = experiment(
    __name__,
    CIFAR10,
    "impute",
    ema_decay=0.999,
    eval_ema=True,
    holdout_batch=128,
    method_kw={"variant": "v2", "base": "mean_teacher"},
)
