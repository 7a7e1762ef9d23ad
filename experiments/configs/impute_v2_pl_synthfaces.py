"""Learning to Impute V2 on a Pseudo-Label base, synthetic faces, 1% labels.

Not the authors' step sizes (10× virtual lr, eta_z = 1), which diverge here (see
impute_v2_synthfaces). 1× lr and eta_z = 0.01: on the PL base the ψ-gradient reaches θ directly,
not times 1 − d = 0.01 as through the MT base's EMA step, so this matches the MT-base V2 at
eta_z = 1 in size. The only setting tried (seeds 0 and 1 train to the end); not tuned.
"""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(
    __name__,
    SYNTHFACES,
    "impute",
    holdout_batch=32,
    method_kw={"variant": "v2", "base": "pseudo_label", "inner_lr_scale": 1.0, "meta_lr": 0.01},
)
