"""Learning to Impute V2 on a Mean-Teacher base, synthetic faces, 1% labels.

The authors' AFLW setting (10× virtual lr, eta_z = 1) diverges here (NaN by step ~50: the
virtual model overshoots, g spikes and the ψ-gradient blows the weights up); 1× with
eta_z = 0.01 trains.
"""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(
    __name__,
    SYNTHFACES,
    "impute",
    eval_ema=True,
    holdout_batch=32,
    method_kw={"variant": "v2", "base": "mean_teacher", "inner_lr_scale": 1.0, "meta_lr": 0.01},
)
