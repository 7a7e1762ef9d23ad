"""Soft pseudo labels with mixup of labeled/unlabeled pairs on digits, 50 labels: Meta-Gradient's
training step without its meta step. The base of metagrad_digits."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "pl_mixup",
    method_kw={"objective": "mixup", "weight": 10.0, "ramp": 0.1, "gamma": 1.0},
)
