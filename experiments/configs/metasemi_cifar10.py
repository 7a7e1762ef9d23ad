"""Meta-Semi on CIFAR-10, 4000 labels, with its paper's settings (App. D; docs/paper_settings.md):
CNN-13 without dropout, SGD Nesterov 0.9, L2 1e-4, lr 0.1 cosine-annealed to 0 over 600 epochs,
25 labeled + 75 unlabeled a step, EMA teacher 0.999, the paper's plain SGD virtual step
(protocol=paper). β = 1.0 is assumed (the paper selects it in [0.2, 1] on validation data)."""

from ._base import META_SEMI_CIFAR10, experiment

CONFIG = experiment(
    __name__, META_SEMI_CIFAR10, "meta_semi", method_kw={"beta": 1.0, "protocol": "paper"}
)
