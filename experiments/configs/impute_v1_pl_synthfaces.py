"""Learning to Impute V1 on a Pseudo-Label base, synthetic faces, 1% labels.

Base: pseudo_label_synthfaces (evaluated on the student, as the base); V1 step size 1 in
standardised coordinates, as the authors'.
"""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(
    __name__,
    SYNTHFACES,
    "impute",
    holdout_batch=32,
    method_kw={"variant": "v1", "base": "pseudo_label", "inner_lr_scale": 1.0},
)
