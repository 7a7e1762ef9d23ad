"""Meta Pseudo Labels (a teacher network's soft pseudo labels, the teacher trained through the
hypergradient of the student's labeled loss) on digits, 50 labels, with the soft Pseudo-Label
base's settings (softmax-MSE, weight 10). Base: pseudo_label_soft_digits.
`method.approximation=paper` takes the paper's estimate of the teacher's gradient instead."""

from ._base import DIGITS, experiment

CONFIG = experiment(
    __name__, DIGITS, "meta_pseudo_labels", method_kw={"soft": True, "weight": 10.0}
)
