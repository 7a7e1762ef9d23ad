"""Learning to Impute V1 on a Pseudo-Label base, synthfaces, 1% labels, with the authors' protocol
and step sizes (as impute_v1_synthfaces: virtual step 1× lr, η_z = 1). Base:
pseudo_label_synthfaces."""

from ._base import SYNTHFACES, impute

CONFIG = impute(
    __name__, SYNTHFACES, "v1", "pl", protocol="authors", weight=1.0, inner_lr_scale=1.0
)
