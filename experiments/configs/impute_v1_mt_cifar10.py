"""Learning to Impute V1 on a Mean-Teacher base, CIFAR-10 with 250 labels, WRN-28-2, with the
authors' protocol and settings (Classification/train-L2I-L.py): Adam 0.002, batch 64,
EMA 0.999 (evaluated), λ_u = 50 on the mean over samples and classes (weight 5 here, where the
consistency sums over the 10 classes), virtual step 100.0× lr, η_z = 1, weights × (1 − 0.02·lr)
after each iteration. Base: mean_teacher_wrn_cifar10."""

from ._base import CIFAR10_L2I, impute

CONFIG = impute(
    __name__,
    CIFAR10_L2I,
    "v1",
    "mt",
    protocol="authors",
    weight=5.0,
    inner_lr_scale=100.0,
    post_decay=0.02,
)
