"""Learning to Impute V2 on a Mean-Teacher base, synthfaces, 1% labels, with the authors' protocol
and step sizes (Regression/train-L2I-O.py): the base's step, then the imputation
step on the student's prediction, virtual step 10× lr, η_z = 1 on the mean hold-out loss, tanh
in the inner loss.
Base: mean_teacher_synthfaces (λ = 1, as the authors' run scripts)."""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(
    __name__,
    SYNTHFACES,
    "impute_mt",
    eval_ema=True,
    holdout_batch=32,
    method_kw={
        "variant": "v2",
        "protocol": "authors",
        "weight": 1.0,
        "inner_lr_scale": 10.0,
        "meta_lr": 1.0,
    },
)
