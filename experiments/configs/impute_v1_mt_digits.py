"""Learning to Impute V1 on a Mean-Teacher base on digits, 50 labels; base: mean_teacher_digits.

ψ is the EMA teacher (decay 0.99, evaluated on the EMA, as the base); the other settings are
impute_v1_digits's.
"""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "impute",
    ema_decay=0.99,
    eval_ema=True,
    holdout_batch=32,
    method_kw={"variant": "v1", "base": "mean_teacher", "meta_lr": 1.0},
)
