"""Learning to Impute V1 (Pseudo-Label base) on digits, 50 labels; base: pseudo_label_digits."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "impute",
    holdout_batch=32,
    method_kw={"variant": "v1", "base": "pseudo_label", "meta_lr": 1.0},
)
