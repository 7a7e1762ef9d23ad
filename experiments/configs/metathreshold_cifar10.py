"""Meta-Threshold on CIFAR-10, 250 labels, WRN-28-2, FixMatch settings, meta batch 32."""

from ._base import CIFAR10_WRN, experiment

CONFIG = experiment(__name__, CIFAR10_WRN, "meta_threshold", batch_size=32)
