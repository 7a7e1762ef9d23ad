"""Meta-Gradient SSL on CIFAR-10, 4000 labels, CNN-13 (authors' settings)."""

from ._base import CIFAR10, METAGRAD, experiment

CONFIG = experiment(__name__, CIFAR10, "meta_gradient", **METAGRAD, method_kw={"gamma": 1.0})
