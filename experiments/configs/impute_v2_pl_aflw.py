"""Learning to Impute V2 on a Pseudo-Label base, AFLW, 1% labels."""

from ._base import AFLW, experiment

CONFIG = experiment(
    __name__,
    AFLW,
    "impute",
    holdout_batch=128,
    method_kw={"variant": "v2", "base": "pseudo_label", "inner_lr_scale": 10.0},
)
