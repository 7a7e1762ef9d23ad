"""Learning to Impute V2 on a Mean-Teacher base, aflw, 1% labels, with the authors' protocol
and step sizes (Regression/train-L2I-O.py): the base's step, then the imputation
step on the student's prediction, virtual step 10× lr, η_z = 1 on the mean hold-out loss, tanh
in the inner loss.
Base: mean_teacher_aflw (λ_u = 75, the scripts' default at a2e54f5)."""

from ._base import AFLW, impute

CONFIG = impute(__name__, AFLW, "v2", "mt", protocol="authors", weight=75.0, inner_lr_scale=10.0)
