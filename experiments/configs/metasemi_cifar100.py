"""Meta-Semi on CIFAR-100, 10000 labels, with its paper's settings (as metasemi_cifar10; 600
epochs of the 35,000 unlabeled images). β = 1.0 is assumed."""

from ._base import META_SEMI_CIFAR100, experiment

CONFIG = experiment(
    __name__, META_SEMI_CIFAR100, "meta_semi", method_kw={"beta": 1.0, "protocol": "paper"}
)
