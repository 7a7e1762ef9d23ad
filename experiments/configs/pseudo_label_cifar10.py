"""Pseudo-Label, CNN-13, CIFAR-10 with 4000 labels."""

from ._base import CIFAR10, experiment

CONFIG = experiment(__name__, CIFAR10, "pseudo_label", method_kw={"weight": 1.0, "threshold": 0.95})
