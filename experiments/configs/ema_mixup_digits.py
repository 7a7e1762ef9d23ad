"""EMA soft pseudo labels with MixUp over Concat(X, U) on digits, 50 labels: Meta-Semi with every
weight 1 (its Table 6 ablation). The base of metasemi_digits."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "ema_mixup", ema_decay=0.99, method_kw={"beta": 1.0})
