"""Pseudo-Label on AFLW, 1% labels, λ_u = 75 (Regression/train-PL.py at a2e54f5), the EMA reported
(the script reports its fixed-decay EMA; docs/paper_settings.md)."""

from ._base import AFLW, experiment

CONFIG = experiment(__name__, AFLW, "pseudo_label", eval_ema=True, method_kw={"weight": 75.0})
