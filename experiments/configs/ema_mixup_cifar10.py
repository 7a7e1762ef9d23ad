"""Meta-Semi with every weight 1 on cifar10, Meta-Semi's settings (the base of
metasemi_cifar10)."""

from ._base import META_SEMI_CIFAR10, experiment

CONFIG = experiment(__name__, META_SEMI_CIFAR10, "ema_mixup", method_kw={"beta": 1.0})
