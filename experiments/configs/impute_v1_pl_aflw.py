"""Learning to Impute V1 on a Pseudo-Label base, AFLW, 1% labels."""

from ._base import AFLW, experiment

CONFIG = experiment(
    __name__,
    AFLW,
    "impute",
    holdout_batch=128,
    method_kw={"variant": "v1", "base": "pseudo_label", "inner_lr_scale": 1.0},
)
