"""Pseudo-Label on synthetic faces, 1% labels (prediction of one view shifted into the other)."""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(__name__, SYNTHFACES, "pseudo_label", method_kw={"weight": 1.0})
