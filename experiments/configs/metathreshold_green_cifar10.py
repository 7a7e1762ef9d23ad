"""Green Meta-Threshold (k = 2, as the paper's Table 5) on CIFAR-10, 250 labels."""

from ._base import CIFAR10_WRN, experiment

CONFIG = experiment(__name__, CIFAR10_WRN, "meta_threshold", batch_size=32, method_kw={"k": 2})
