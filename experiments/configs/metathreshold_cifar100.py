"""Meta-Threshold on CIFAR-100, 2500 labels, WRN-28-8, FixMatch settings."""

from ._base import CIFAR100_WRN, experiment

CONFIG = experiment(__name__, CIFAR100_WRN, "meta_threshold", batch_size=32)
