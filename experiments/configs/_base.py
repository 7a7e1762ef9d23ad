"""Per-dataset defaults that the named experiment files start from (not an experiment)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import Config

# scikit-learn digits, 50 labels (5 per class): a small MLP, minutes on a laptop CPU
DIGITS = Config(
    name="",
    dataset="digits",
    method="supervised",
    model="mlp",
    model_kw={"hidden": 128},
    steps=3000,
    lr=0.05,
    nesterov=True,
    weight_decay=5e-4,
    schedule="cosine",
    num_labels=50,
    val_size=100,
    batch_size=32,
    unlabeled_batch=64,
    eval_every=500,
)
# synthetic faces, 1% labels: TCDCN as on AFLW, shorter
SYNTHFACES = Config(
    name="",
    dataset="synthfaces",
    method="supervised",
    model="tcdcn",
    steps=3000,
    lr=0.03,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="step",
    milestones=(0.8,),
    label_fraction=0.01,
    batch_size=32,
    unlabeled_batch=32,
    ema_decay=0.99,
    eval_every=500,
)
# AFLW, Learning-to-Impute authors' settings: 150 epochs × 150 iterations, batch 128, 1% labels
AFLW = Config(
    name="",
    dataset="aflw",
    method="supervised",
    model="tcdcn",
    steps=22500,
    lr=0.03,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="step",
    milestones=(0.8,),
    label_fraction=0.01,
    batch_size=128,
    unlabeled_batch=128,
    ema_decay=0.999,
    eval_every=1500,
)
# CIFAR-10 with CNN-13, 4000 labels (Meta-Gradient / Learning-to-Impute protocol)
CIFAR10 = Config(
    name="",
    dataset="cifar10",
    method="supervised",
    model="cnn13",
    steps=400_000,
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="step",
    milestones=(0.75, 0.875),
    warmup=0.01,
    num_labels=4000,
    val_size=5000,
    batch_size=128,
    unlabeled_batch=128,
    eval_every=10_000,
)
SVHN = replace(CIFAR10, dataset="svhn", num_labels=1000, weight_decay=5e-5)
CIFAR100 = replace(CIFAR10, dataset="cifar100", num_labels=10000)
# Meta-Gradient SSL: the paper's first-order approximation is the default estimator
METAGRAD = {"estimator": "fd", "estimator_options": {"fd": {"lookahead": False, "r": 0.01}}}
# CIFAR-10 with WRN-28-2, 250 labels (FixMatch / MixMatch protocol)
CIFAR10_WRN = Config(
    name="",
    dataset="cifar10",
    method="fixmatch",
    model="wrn28",
    steps=2**20,
    lr=0.03,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    schedule="cosine",
    num_labels=250,
    val_size=5000,
    batch_size=64,
    unlabeled_batch=448,
    ema_decay=0.999,
    eval_ema=True,
    eval_every=10_000,
)

CIFAR100_WRN = replace(
    CIFAR10_WRN,
    dataset="cifar100",
    model="wrn28",
    model_kw={"widen": 8},
    num_labels=2500,
    weight_decay=1e-3,
)

# CIFAR-10 as the Learning-to-Impute authors' classification scripts: WRN-28-2, 250 labels,
# Adam 0.002 (constant), batch 64, 1024 epochs × 1024 iterations, EMA 0.999 evaluated
CIFAR10_L2I = replace(
    CIFAR10_WRN,
    optimizer="adam",
    lr=0.002,
    momentum=0.0,
    nesterov=False,
    weight_decay=0.0,
    schedule="constant",
    batch_size=64,
    unlabeled_batch=64,
)


def experiment(module: str, base: Config, method: str, **changes: Any) -> Config:
    """The config of the experiment file `module` (its `__name__`)."""
    return replace(base, name=module.rsplit(".", 1)[-1], method=method, **changes)
