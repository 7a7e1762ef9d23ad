"""Meta-Semi on CIFAR-100, 10000 labels, CNN-13, EMA teacher 0.999 (beta = 1.0 assumed)."""

from ._base import CIFAR100, experiment

CONFIG = experiment(__name__, CIFAR100, "meta_semi", ema_decay=0.999, method_kw={"beta": 1.0})
