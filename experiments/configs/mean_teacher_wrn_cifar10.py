"""Mean Teacher as the Learning to Impute authors' classification base: WRN-28-2, CIFAR-10 with
250 labels, Adam 0.002, λ_u = 50 on the mean over classes (weight 5), EMA 0.999 evaluated."""

from ._base import CIFAR10_L2I, experiment

CONFIG = experiment(__name__, CIFAR10_L2I, "mean_teacher", method_kw={"weight": 5.0})
