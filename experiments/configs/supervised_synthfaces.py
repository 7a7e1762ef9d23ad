"""Supervised TCDCN on synthetic faces, 1% labels."""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(__name__, SYNTHFACES, "supervised")
