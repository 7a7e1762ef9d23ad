"""Mean Teacher, CNN-13, CIFAR-10 with 4000 labels."""

from ._base import CIFAR10, experiment

CONFIG = experiment(
    __name__, CIFAR10, "mean_teacher", ema_decay=0.999, eval_ema=True, method_kw={"weight": 10.0}
)
