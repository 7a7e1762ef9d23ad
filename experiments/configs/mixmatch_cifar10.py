"""MixMatch, WRN-28-2, CIFAR-10 with 250 labels, Adam 0.002."""

from ._base import CIFAR10_WRN, experiment

CONFIG = experiment(
    __name__,
    CIFAR10_WRN,
    "mixmatch",
    optimizer="adam",
    lr=0.002,
    weight_decay=0.0,
    schedule="constant",
    unlabeled_batch=64,
    method_kw={"weight": 75.0, "ramp": 16 / 1024},
)
