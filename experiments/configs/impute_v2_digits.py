"""Learning to Impute V2 (PL base) on digits, 50 labels; eta_z = 0.1 (1.0 diverges)."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "impute",
    holdout_batch=32,
    method_kw={"variant": "v2", "base": "pseudo_label", "meta_lr": 0.1},
)
