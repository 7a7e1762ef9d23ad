"""Learning to Impute V2 on a soft Pseudo-Label base on digits, 50 labels (toolkit protocol).
η_z = 0.1. Base: pseudo_label_soft_digits."""

from ._base import DIGITS, impute

CONFIG = impute(__name__, DIGITS, "v2", "pl", soft=True, weight=10.0, meta_lr=0.1)
