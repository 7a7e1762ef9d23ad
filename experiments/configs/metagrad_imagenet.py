"""Meta-Gradient SSL on ImageNet, 10% labels per class, ResNet-18 (torchvision's ImageNet stem),
with the authors' settings (`train_meta_imagenet.py`, `run_imagenet.sh` of Sakura03/SemiMeta;
docs/authors_code.md): 8 GPUs × 64 = 512 labeled and 512 unlabeled images a step, SGD lr 0.1,
momentum 0.9 (no Nesterov), weight decay 1e-4, 600 epochs of the unlabeled set with 5 warm-up
epochs and cosine annealing, mixup with Beta(1, 1), consistency weight 1 without a ramp, the
finite-difference meta step with ε = 0.01/‖v‖ in eval mode.

    make exp NAME=metagrad_imagenet NPROC=8          # or torchrun --nproc_per_node=8 …

The meta step is the authors' rank-local one (`rank_local=true`: each rank's own slice);
ARGS="rank_local=false" takes the global batch's hypergradient instead. 10,000 training images
are held out for validation (the authors have none). BatchNorm statistics are per rank (the
authors' current script converts the model to SyncBatchNorm; docs/paper_settings.md)."""

from dataclasses import replace

from ._base import CIFAR10, METAGRAD, experiment

UNLABELED = round(0.9 * (1_281_167 - 10_000))  # ImageNet train minus validation and labels
EPOCH = -(-UNLABELED // 512)  # steps per epoch of the unlabeled set (2235)

IMAGENET = replace(
    CIFAR10,
    dataset="imagenet",
    model="resnet18",
    model_kw={"stem": "imagenet"},
    label_fraction=0.1,
    num_labels=0,
    val_size=10_000,
    batch_size=512,
    unlabeled_batch=512,
    steps=600 * EPOCH,
    lr=0.1,
    momentum=0.9,
    nesterov=False,
    weight_decay=1e-4,
    schedule="cosine_annealing",
    milestones=(),
    warmup=5 / 600,
    warmup_offset=1,  # utils.py's warm-up (t + 1)/W, unlike the CIFAR script's t/W
    eval_every=EPOCH,
    image_size=224,
)

CONFIG = experiment(
    __name__,
    IMAGENET,
    "meta_gradient",
    **METAGRAD,
    rank_local=True,
    method_kw={"objective": "mixup", "gamma": 1.0, "weight": 1.0, "ramp": 0.0},
)
