"""Meta-Gradient's training step without its meta step on svhn (the base of metagrad_svhn)."""

from ._base import SVHN, experiment

CONFIG = experiment(__name__, SVHN, "pl_mixup", method_kw={"gamma": 0.1})
