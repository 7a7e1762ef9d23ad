"""Learning to Impute V2 on a Mean-Teacher base, CIFAR-10 with 250 labels, WRN-28-2, with the
authors' protocol and settings (Classification/train-L2I-O.py): as impute_v1_mt_cifar10 (Adam
0.002, batch 64, EMA 0.999 evaluated, λ_u = 50 as weight 5, η_z = 1, weights × (1 − 0.02·lr)
after each iteration) with virtual step 50.0× lr. Base: mean_teacher_wrn_cifar10."""

from ._base import CIFAR10_L2I, impute

CONFIG = impute(
    __name__,
    CIFAR10_L2I,
    "v2",
    "mt",
    protocol="authors",
    weight=5.0,
    inner_lr_scale=50.0,
    post_decay=0.02,
)
