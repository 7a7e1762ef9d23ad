"""Meta-Semi with every weight 1 on cifar100, CNN-13, EMA teacher 0.999 (the base of
metasemi_cifar100)."""

from ._base import CIFAR100, experiment

CONFIG = experiment(__name__, CIFAR100, "ema_mixup", ema_decay=0.999, method_kw={"beta": 1.0})
