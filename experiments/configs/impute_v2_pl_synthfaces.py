"""Learning to Impute V2 on a Pseudo-Label base, synthetic faces, 1% labels, with the authors'
protocol (Regression/train-L2I-O.py: tanh inner loss, η_z = 1 on the mean hold-out loss) and a
1× virtual step instead of the script's 10×, which diverges here (why: impute_v2_synthfaces).
Base: pseudo_label_synthfaces."""

from ._base import SYNTHFACES, impute

CONFIG = impute(
    __name__, SYNTHFACES, "v2", "pl", protocol="authors", weight=1.0, inner_lr_scale=1.0
)
