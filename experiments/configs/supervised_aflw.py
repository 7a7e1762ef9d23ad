"""Supervised TCDCN on AFLW, 1% labels (needs AFLW under DATA_ROOT/aflw)."""

from ._base import AFLW, experiment

CONFIG = experiment(__name__, AFLW, "supervised")
