"""Learning to Impute V2 on a Mean-Teacher base on digits, 50 labels (toolkit protocol, η_z =
0.1; the ψ-gradient reaches the student through the EMA step, times 1 − d_t).
Base: mean_teacher_digits."""

from ._base import DIGITS, impute

CONFIG = impute(__name__, DIGITS, "v2", "mt", weight=10.0, meta_lr=0.1, ema_decay=0.99)
