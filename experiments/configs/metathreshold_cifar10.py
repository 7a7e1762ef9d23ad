"""Meta-Threshold on CIFAR-10, 250 labels, WRN-28-2, with Meta-T's Table 6 settings (32 labeled
and meta + 192 unlabeled a step, 300 × 1024 steps, lr 0.03 × 0.1 at epochs 100 and 200; the
paper's plain SGD virtual step, protocol=paper; docs/paper_settings.md). Base:
fixmatch_metat_cifar10."""

from ._base import META_T_CIFAR10, experiment

CONFIG = experiment(__name__, META_T_CIFAR10, "meta_threshold", method_kw={"protocol": "paper"})
