"""MixMatch on digits, 50 labels (K=2, T=0.5)."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "mixmatch", method_kw={"weight": 75.0, "ramp": 0.1})
