"""Mean Teacher on AFLW, 1% labels, teacher decay min(1-1/(t+1), 0.999)."""

from ._base import AFLW, experiment

CONFIG = experiment(__name__, AFLW, "mean_teacher", eval_ema=True, method_kw={"weight": 1.0})
