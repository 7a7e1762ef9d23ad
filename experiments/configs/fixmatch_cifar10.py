"""FixMatch, WRN-28-2, CIFAR-10 with 250 labels, FixMatch's own protocol (Meta-T's base run
with its settings is fixmatch_metat_cifar10)."""

from ._base import CIFAR10_WRN, experiment

CONFIG = experiment(__name__, CIFAR10_WRN, "fixmatch", method_kw={"threshold": 0.95})
