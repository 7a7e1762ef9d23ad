"""FixMatch on digits, 50 labels (threshold 0.95)."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "fixmatch", method_kw={"threshold": 0.95})
