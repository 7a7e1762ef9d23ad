"""Learning to Impute V2 on a Pseudo-Label base, synthfaces, 1% labels, with the authors' protocol
and step sizes (as impute_v2_synthfaces: virtual step 10× lr, η_z = 1). Base:
pseudo_label_synthfaces."""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(
    __name__,
    SYNTHFACES,
    "impute_pl",
    holdout_batch=32,
    method_kw={
        "variant": "v2",
        "protocol": "authors",
        "weight": 1.0,
        "inner_lr_scale": 10.0,
        "meta_lr": 1.0,
    },
)
