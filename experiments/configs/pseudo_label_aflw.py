"""Pseudo-Label on AFLW, 1% labels."""

from ._base import AFLW, experiment

CONFIG = experiment(__name__, AFLW, "pseudo_label", method_kw={"weight": 1.0})
