"""Pseudo-Label with soft targets on digits, 50 labels: softmax targets from the model's own
prediction and the softmax-MSE loss (the Learning to Impute paper's PL base, App. A.2), weight 10
as Mean Teacher's. The base of impute_v{1,2}_digits."""

from ._base import DIGITS, experiment

CONFIG = experiment(__name__, DIGITS, "pseudo_label", method_kw={"soft": True, "weight": 10.0})
