"""Meta-Threshold on digits, 50 labels (TGN with Adam 1e-3); its base is fixmatch_digits.
Keeps snapshots (per-sample thresholds for analysis.thresholds)."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "meta_threshold", method_kw={"meta_lr": 1e-3}, snapshots=True)
