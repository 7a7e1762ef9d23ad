"""FixMatch, WRN-28-2, CIFAR-10 with 250 labels (the base of Meta-Threshold)."""

from ._base import CIFAR10_WRN, experiment

CONFIG = experiment(__name__, CIFAR10_WRN, "fixmatch", method_kw={"threshold": 0.95})
