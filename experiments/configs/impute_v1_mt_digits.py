"""Learning to Impute V1 on a Mean-Teacher base on digits, 50 labels (toolkit protocol: the
base's softmax-MSE consistency at weight 10, ψ = the EMA teacher, evaluated on the EMA as the
base). Base: mean_teacher_digits."""

from ._base import DIGITS, impute

CONFIG = impute(__name__, DIGITS, "v1", "mt", weight=10.0, meta_lr=1.0, ema_decay=0.99)
