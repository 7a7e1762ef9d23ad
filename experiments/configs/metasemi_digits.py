"""Meta-Semi (App. B: weights on the mixed samples) on digits, 50 labels; its base is
ema_mixup_digits. Keeps snapshots (the Assumption-1 ratio of analysis.assumption1)."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__, DIGITS, "meta_semi", ema_decay=0.99, method_kw={"beta": 1.0}, snapshots=True
)
