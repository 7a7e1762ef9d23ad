"""Learning to Impute V2 on a Mean-Teacher base, AFLW, 1% labels (authors' settings)."""

from ._base import AFLW, experiment

CONFIG = experiment(
    __name__,
    AFLW,
    "impute",
    eval_ema=True,
    holdout_batch=128,
    method_kw={"variant": "v2", "base": "mean_teacher", "inner_lr_scale": 10.0},
)
