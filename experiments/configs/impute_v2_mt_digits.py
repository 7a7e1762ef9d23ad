"""Learning to Impute V2 on a Mean-Teacher base on digits, 50 labels (toolkit protocol, η_z =
0.1; the ψ-gradient reaches the student through the EMA step, times 1 − d_t).
Base: mean_teacher_digits."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "impute_mt",
    ema_decay=0.99,
    eval_ema=True,
    holdout_batch=32,
    method_kw={"variant": "v2", "weight": 10.0, "meta_lr": 0.1},
)
