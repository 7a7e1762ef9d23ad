"""Supervised CNN-13 on CIFAR-10, 4000 labels."""

from ._base import CIFAR10, experiment

CONFIG = experiment(__name__, CIFAR10, "supervised")
