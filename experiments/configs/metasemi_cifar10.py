"""Meta-Semi on CIFAR-10, 4000 labels, CNN-13, EMA teacher 0.999 (beta = 1.0 assumed)."""

from ._base import CIFAR10, experiment

CONFIG = experiment(__name__, CIFAR10, "meta_semi", ema_decay=0.999, method_kw={"beta": 1.0})
