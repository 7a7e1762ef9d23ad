"""Mean Teacher on synthetic faces, 1% labels, evaluated on the EMA."""

from ._base import SYNTHFACES, experiment

CONFIG = experiment(__name__, SYNTHFACES, "mean_teacher", eval_ema=True, method_kw={"weight": 1.0})
