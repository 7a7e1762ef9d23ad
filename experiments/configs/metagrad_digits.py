"""Meta-Gradient SSL (Alg. 2, mixup objective, authors' meta step) on digits, 50 labels; its base
is pl_mixup_digits (mixup_digits, ICT, is the paper's comparison)."""

from ._base import DIGITS, METAGRAD, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "meta_gradient",
    **METAGRAD,
    method_kw={"objective": "mixup", "weight": 10.0, "ramp": 0.1, "gamma": 1.0},
)
