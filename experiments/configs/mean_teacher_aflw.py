"""Mean Teacher on AFLW, 1% labels, teacher decay min(1-1/(t+1), 0.999), λ_u = 75 ramped over 40%
of training (Regression/train-MT.py at a2e54f5; docs/paper_settings.md), the EMA reported."""

from ._base import AFLW, experiment

CONFIG = experiment(__name__, AFLW, "mean_teacher", eval_ema=True, method_kw={"weight": 75.0})
