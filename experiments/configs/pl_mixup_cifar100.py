"""Meta-Gradient's training step without its meta step on cifar100 (the base of
metagrad_cifar100)."""

from ._base import CIFAR100, experiment

CONFIG = experiment(__name__, CIFAR100, "pl_mixup", method_kw={"gamma": 1.0})
