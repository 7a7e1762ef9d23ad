"""Learning to Impute V1 on a Mean-Teacher base, aflw, 1% labels, with the authors' protocol
and step sizes (Regression/train-L2I-L.py): the base's step, then the imputation
step on the student's prediction, virtual step 1× lr, η_z = 1 on the mean hold-out loss.
Base: mean_teacher_aflw (λ_u = 75, the scripts' default at a2e54f5). The student is reported, as
train-L2I-L.py does."""

from ._base import AFLW, impute

CONFIG = impute(
    __name__,
    AFLW,
    "v1",
    "mt",
    protocol="authors",
    weight=75.0,
    inner_lr_scale=1.0,
    eval_ema=False,  # train-L2I-L.py reports the student
)
