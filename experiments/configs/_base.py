"""Per-dataset defaults that the named experiment files start from (not an experiment)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

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
# AFLW, Learning-to-Impute authors' settings (WeiHongLee/Learning-to-impute a2e54f5,
# docs/paper_settings.md): 150 epochs × 150 iterations, batch 128, 1% labels, lr × 0.1 from step
# 14,850 (epoch 99), evaluation every epoch
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
    milestones=(14850 / 22500,),
    label_fraction=0.01,
    batch_size=128,
    unlabeled_batch=128,
    ema_decay=0.999,
    eval_every=150,
)
# CIFAR-10 with CNN-13, 4000 labels, the Meta-Gradient authors' settings (Sakura03/SemiMeta
# train_meta.py): warm-up lr·t/4000 (lr 0 at step 0), lr × 0.1 after steps 300,000 and 350,000
# (`step > m`: from step m + 1 on)
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
    milestones=(300_001 / 400_000, 350_001 / 400_000),
    warmup=0.01,
    warmup_offset=0,
    num_labels=4000,
    val_size=5000,
    batch_size=128,
    unlabeled_batch=128,
    eval_every=400,  # the authors' --test-freq
)
SVHN = replace(CIFAR10, dataset="svhn", num_labels=1000, weight_decay=5e-5)
CIFAR100 = replace(CIFAR10, dataset="cifar100", num_labels=10000)
# Meta-Semi's CNN-13 settings (its App. D): no dropout, SGD with Nesterov momentum 0.9, L2 1e-4,
# lr 0.1 annealed to 0 by a cosine, 600 epochs of the unlabeled set, 25 labeled + 75 unlabeled
# images a step, EMA teacher 0.999; 5000 images held out for validation
META_SEMI_CIFAR10 = replace(
    CIFAR10,
    model_kw={"dropout": 0.0},
    nesterov=True,
    schedule="cosine_annealing",
    milestones=(),
    warmup=0.0,
    warmup_offset=1,
    batch_size=25,
    unlabeled_batch=75,
    steps=600 * (50_000 - 5_000 - 4_000) // 75,  # 328,000
    ema_decay=0.999,
)
META_SEMI_CIFAR100 = replace(
    META_SEMI_CIFAR10,
    dataset="cifar100",
    num_labels=10_000,
    steps=600 * (50_000 - 5_000 - 10_000) // 75,  # 280,000
)
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

# Meta-T's settings (its Table 6): 32 labeled (and meta) + 192 unlabeled images a step, 300
# epochs of 1024 iterations, lr 0.03 × 0.1 at epochs 100 and 200, momentum 0.9, weight decay
# 5e-4 (1e-3 on CIFAR-100); the rest (Nesterov, EMA 0.999 evaluated) FixMatch's
META_T_CIFAR10 = replace(
    CIFAR10_WRN,
    batch_size=32,
    unlabeled_batch=192,
    steps=300 * 1024,
    schedule="step",
    milestones=(1 / 3, 2 / 3),
)
META_T_CIFAR100 = replace(
    META_T_CIFAR10,
    dataset="cifar100",
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
    eval_every=1024,  # every epoch
)


def experiment(module: str, base: Config, method: str, **changes: Any) -> Config:
    """The config of the experiment file `module` (its `__name__`)."""
    return replace(base, name=module.rsplit(".", 1)[-1], method=method, **changes)


def impute(
    module: str,
    base: Config,
    variant: Literal["v1", "v2"],
    on: Literal["pl", "mt"] = "pl",
    *,
    weight: float,
    meta_lr: float = 1.0,
    protocol: Literal["toolkit", "authors"] | None = None,
    inner_lr_scale: float | None = None,
    post_decay: float | None = None,
    soft: bool | None = None,
    **changes: Any,
) -> Config:
    """A Learning to Impute experiment: `variant` on the base method `on` (Pseudo-Label or Mean
    Teacher) with `base`'s settings, λ_u `weight` and η_z `meta_lr`. Method settings left None
    take the method's defaults (toolkit protocol, 1× virtual step, no post-decay). The hold-out
    batch is the labeled batch; a Mean-Teacher run reports the EMA teacher. `changes` (config
    fields) override both."""
    kw = {
        "variant": variant,
        "protocol": protocol,
        "soft": soft,
        "weight": weight,
        "inner_lr_scale": inner_lr_scale,
        "meta_lr": meta_lr,
        "post_decay": post_decay,
    }
    defaults = {"holdout_batch": changes.get("batch_size", base.batch_size)}
    if on == "mt":
        defaults["eval_ema"] = True
    method_kw = {k: v for k, v in kw.items() if v is not None}
    return experiment(module, base, f"impute_{on}", **defaults | changes, method_kw=method_kw)
