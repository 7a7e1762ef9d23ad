"""FixMatch with Meta-T's settings on CIFAR-10, 250 labels (32 + 192 a step, 300 × 1024 steps,
step schedule): the base run of metathreshold_cifar10 and metathreshold_green_cifar10, differing
only in the meta step. fixmatch_cifar10 keeps FixMatch's own protocol."""

from ._base import META_T_CIFAR10, experiment

CONFIG = experiment(__name__, META_T_CIFAR10, "fixmatch", method_kw={"threshold": 0.95})
