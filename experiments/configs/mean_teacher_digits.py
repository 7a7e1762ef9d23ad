"""Mean Teacher on digits, 50 labels (EMA teacher, evaluated on the EMA)."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__, DIGITS, "mean_teacher", ema_decay=0.99, eval_ema=True, method_kw={"weight": 10.0}
)
