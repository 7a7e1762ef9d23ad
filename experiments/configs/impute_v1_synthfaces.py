"""Learning to Impute V1 on a Mean-Teacher base, synthfaces, 1% labels, with the authors' protocol
and step sizes (Regression/train-L2I-L.py): the base's step, then the imputation
step on the student's prediction, virtual step 1× lr, η_z = 1 on the mean hold-out loss.
Base: mean_teacher_synthfaces (λ = 1, as the authors' run scripts)."""

from ._base import SYNTHFACES, impute

CONFIG = impute(
    __name__, SYNTHFACES, "v1", "mt", protocol="authors", weight=1.0, inner_lr_scale=1.0
)
