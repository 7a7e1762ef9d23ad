"""Meta-Weight (MW-Net-style learned weights for pseudo labels) on digits, 50 labels.
Base: pseudo_label_digits."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "meta_weight", method_kw={"threshold": 0.95, "weight": 1.0})
