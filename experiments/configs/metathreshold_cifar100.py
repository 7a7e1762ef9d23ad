"""Meta-Threshold on CIFAR-100, 2500 labels, WRN-28-8, with Meta-T's Table 6 settings (weight
decay 1e-3). Base: fixmatch_metat_cifar100."""

from ._base import META_T_CIFAR100, experiment

CONFIG = experiment(__name__, META_T_CIFAR100, "meta_threshold", method_kw={"protocol": "paper"})
