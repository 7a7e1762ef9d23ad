"""Meta-Semi with every weight 1 on cifar100, Meta-Semi's settings (the base of
metasemi_cifar100)."""

from ._base import META_SEMI_CIFAR100, experiment

CONFIG = experiment(__name__, META_SEMI_CIFAR100, "ema_mixup", method_kw={"beta": 1.0})
