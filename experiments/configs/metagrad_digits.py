"""Meta-Gradient SSL (Alg. 2, mixup protocol) on digits, 50 labels; its base is mixup_digits."""

from ._base import DIGITS, METAGRAD, experiment

CONFIG = experiment(
    __name__,
    DIGITS,
    "meta_gradient",
    **METAGRAD,
    method_kw={"protocol": "mixup", "weight": 10.0, "ramp": 0.1, "gamma": 1.0},
)
