"""Green Meta-Threshold on digits: the meta step every k = 4 iterations."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "meta_threshold", method_kw={"k": 4})
