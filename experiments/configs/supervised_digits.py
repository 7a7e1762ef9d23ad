"""Supervised on digits, 50 labels."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "supervised")
