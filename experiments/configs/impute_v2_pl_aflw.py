"""Learning to Impute V2 on a Pseudo-Label base, aflw, 1% labels, with the authors' protocol and
step sizes (as impute_v2_aflw: virtual step 10× lr, η_z = 1). Base: pseudo_label_aflw."""

from ._base import AFLW, impute

CONFIG = impute(__name__, AFLW, "v2", "pl", protocol="authors", weight=75.0, inner_lr_scale=10.0)
