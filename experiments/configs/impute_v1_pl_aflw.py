"""Learning to Impute V1 on a Pseudo-Label base, aflw, 1% labels, with the authors' protocol and
step sizes (as impute_v1_aflw: virtual step 1× lr, η_z = 1). Base: pseudo_label_aflw."""

from ._base import AFLW, impute

CONFIG = impute(__name__, AFLW, "v1", "pl", protocol="authors", weight=75.0, inner_lr_scale=1.0)
