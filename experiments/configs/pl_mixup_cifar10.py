"""Meta-Gradient's training step without its meta step on cifar10 (the base of metagrad_cifar10)."""

from ._base import CIFAR10, experiment

CONFIG = experiment(__name__, CIFAR10, "pl_mixup", method_kw={"gamma": 1.0})
