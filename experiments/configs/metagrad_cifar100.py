"""Meta-Gradient SSL on CIFAR-100, 10000 labels, CNN-13 (authors' settings)."""

from ._base import CIFAR100, METAGRAD, experiment

CONFIG = experiment(__name__, CIFAR100, "meta_gradient", **METAGRAD, method_kw={"gamma": 1.0})
