"""Interpolation consistency (ICT) on digits, 50 labels."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__, DIGITS, "mixup", ema_decay=0.99, method_kw={"weight": 10.0, "alpha": 1.0}
)
