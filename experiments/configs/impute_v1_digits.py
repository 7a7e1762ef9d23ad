"""Learning to Impute V1 on a soft Pseudo-Label base on digits, 50 labels (toolkit protocol: the
base's loss and weight, ẑ = z − η_z B_u ∂C^H/∂z with η_z = 1). Base: pseudo_label_soft_digits."""

from ._base import DIGITS, impute

CONFIG = impute(__name__, DIGITS, "v1", "pl", soft=True, weight=10.0, meta_lr=1.0)
