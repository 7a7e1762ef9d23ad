"""Learning to Impute V1 on a Mean-Teacher base, synthetic faces, 1% labels."""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(
    __name__,
    SYNTHFACES,
    "impute",
    eval_ema=True,
    holdout_batch=32,
    method_kw={"variant": "v1", "base": "mean_teacher", "inner_lr_scale": 1.0},
)
