"""ICT, CNN-13, CIFAR-10 with 4000 labels (the base of Meta-Gradient Alg. 2)."""

from ._base import CIFAR10, experiment

CONFIG = experiment(
    __name__, CIFAR10, "mixup", ema_decay=0.999, method_kw={"weight": 10.0, "alpha": 1.0}
)
