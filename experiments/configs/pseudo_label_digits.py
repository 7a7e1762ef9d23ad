"""Pseudo-Label on digits, 50 labels."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "pseudo_label", method_kw={"threshold": 0.95, "weight": 1.0})
