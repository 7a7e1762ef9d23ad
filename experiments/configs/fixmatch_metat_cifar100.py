"""FixMatch with Meta-T's settings on CIFAR-100, 2500 labels, WRN-28-8: the base run of
metathreshold_cifar100."""

from ._base import META_T_CIFAR100, experiment

CONFIG = experiment(__name__, META_T_CIFAR100, "fixmatch", method_kw={"threshold": 0.95})
