"""Green Meta-Threshold (k = 2, as the paper's Table 5) on CIFAR-10, 250 labels, Meta-T's
settings. Base: fixmatch_metat_cifar10."""

from ._base import META_T_CIFAR10, experiment

CONFIG = experiment(
    __name__, META_T_CIFAR10, "meta_threshold", method_kw={"k": 2, "protocol": "paper"}
)
