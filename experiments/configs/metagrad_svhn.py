"""Meta-Gradient SSL on SVHN, 1000 labels, CNN-13 (authors' settings, gamma 0.1)."""

from ._base import METAGRAD, SVHN, experiment

CONFIG = experiment(__name__, SVHN, "meta_gradient", **METAGRAD, method_kw={"gamma": 0.1})
