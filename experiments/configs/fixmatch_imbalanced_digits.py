"""FixMatch (threshold 0.95) on the class-imbalanced digits split of
metathreshold_imbalanced_digits (γ = 10, 15 / 90 head samples)."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "fixmatch",
    method_kw={"threshold": 0.95},
    num_labels=0,
    imbalance=10.0,
    head_labeled=15,
    head_unlabeled=90,
)
