"""Meta-Threshold on a class-imbalanced digits split (Meta-T Sec. 5.3 in miniature): class c
keeps 15·10^(−c/9) labeled and 90·10^(−c/9) unlabeled samples (γ_l = γ_u = 10); validation and
test stay balanced. Base: fixmatch_imbalanced_digits. Keeps snapshots for analysis.thresholds."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "meta_threshold",
    method_kw={"meta_lr": 1e-3},
    num_labels=0,
    imbalance=10.0,
    head_labeled=15,
    head_unlabeled=90,
    snapshots=True,
)
