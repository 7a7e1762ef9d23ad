"""Building a run from its config: the device, data splits, model, optimizer and schedule, EMA
teacher, method and batch maker, each checked before anything is written (bad settings are a
ConfigError naming the key)."""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.optim.swa_utils import AveragedModel

from bilevel import Shard
from methods import METHODS, Method
from methods.base import training_mode

from . import sources
from .config import Config, ConfigError
from .data import BatchMaker, SSLData, make_splits, mix_seed
from .ema import EMA
from .imagefolder import as_tensor
from .models import MODELS


@dataclass
class Parts:
    """What `build` makes of a config: data, model, optimizer, schedule, EMA, method, batches."""

    data: SSLData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: AveragedModel | None
    method: Method
    batches: BatchMaker
    device: torch.device


# The lr schedules a config may name (`schedule`): each the factor at step t after the warm-up's,
# given the config and the warm-up's length w in steps.
SCHEDULES: dict[str, Callable[[Config, int, int], float]] = {
    "constant": lambda cfg, t, w: 1.0,
    "step": lambda cfg, t, w: cfg.gamma ** sum(t >= m * cfg.steps for m in cfg.milestones),
    "cosine": lambda cfg, t, w: math.cos(7 * math.pi * t / (16 * cfg.steps)),
    # to 0 after the warm-up
    "cosine_annealing": lambda cfg, t, w: (
        0.5 * (1 + math.cos(math.pi * (t - w) / max(1, cfg.steps - w))) if t >= w else 1.0
    ),
}


def lr_factor(cfg: Config, step: int) -> float:
    """Linear warm-up (t + o)/w over the first w steps, o = `warmup_offset` (1: the first step
    at lr/w; 0: at lr 0, as the Meta-Gradient authors' CIFAR scripts), then constant, step
    (×gamma from each milestone on), FixMatch's cosine cos(7πt/16T), or cosine annealing
    ½(1 + cos(π(t − w)/(T − w))) to 0 after the warm-up w (`SCHEDULES`)."""
    warm = int(cfg.warmup * cfg.steps)
    scale = (step + cfg.warmup_offset) / warm if warm and step < warm else 1.0
    return scale * SCHEDULES[cfg.schedule](cfg, step, warm)


# The optimizers a config may name (`optimizer`), each built from the config's settings.
OPTIMIZERS: dict[str, Callable[[Iterable[torch.Tensor], Config], torch.optim.Optimizer]] = {
    "sgd": lambda params, cfg: torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    ),
    "adam": lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    "adamw": lambda params, cfg: torch.optim.AdamW(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay
    ),
}


def _model(cfg: Config, src: sources.Source, device: torch.device) -> torch.nn.Module:
    """The model for `src`'s inputs and outputs; bad arguments, or a model that cannot take
    the dataset's inputs, are a ConfigError (checked with one forward pass in eval mode)."""
    in_ch = src.train_x.shape[1]
    kw = dict(cfg.model_kw)
    if cfg.model in ("mlp", "linear"):
        kw.setdefault("in_features", in_ch * src.train_x.shape[2] * src.train_x.shape[3])
        kw.setdefault("num_outputs", src.num_outputs)
    elif cfg.model != "tcdcn":
        kw.setdefault("num_classes", src.num_outputs)
        kw.setdefault("in_channels", in_ch)
    known = inspect.signature(MODELS[cfg.model]).parameters
    unknown = sorted(set(kw) - set(known))
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]}: model {cfg.model} has no argument {unknown[0]!r} (its "
            f"arguments: {', '.join(known)})"
        )
    try:
        model = MODELS[cfg.model](**kw).to(device)
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. a negative width
        args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        first = str(err).splitlines()[0]
        raise ConfigError(f"model.*: {cfg.model}({args}) cannot be built: {first}") from None
    shape = tuple(src.train_x.shape[1:])
    try:
        with torch.no_grad(), training_mode(model, False):
            out = model(as_tensor(src.train_x[:2]).to(device).float() / 255)  # any values
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(
            f"model: {cfg.model} cannot take {cfg.dataset} inputs of shape {shape} ({first})"
        ) from None
    if out.shape[1:] != (src.num_outputs,):
        raise ConfigError(
            f"model: {cfg.model} gives outputs of shape {tuple(out.shape[1:])}; {cfg.dataset} "
            f"needs ({src.num_outputs},)"
        )
    return model


def _device(cfg: Config, shard: Shard) -> torch.device:
    """The configured device; data parallel on CUDA, this process's GPU (LOCAL_RANK)."""
    name = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and shard.parallel:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", shard.rank)))
    return device


def check_split(cfg: Config, world: int) -> None:
    """Data parallel: every batch the method uses splits evenly over `world` processes."""
    if world == 1:
        return
    cls = METHODS[cfg.method]
    sizes = {"batch_size": cfg.batch_size}
    if cls.views:
        sizes["unlabeled_batch"] = cfg.unlabeled_batch
    if cls.needs_holdout:
        sizes["holdout_batch"] = cfg.holdout_batch or cfg.batch_size
    for key, n in sizes.items():
        if n % world:
            raise ConfigError(
                f"{key}: {n} does not split over {world} processes; the batch sizes are "
                f"the global ones, so each must be a multiple of the number of processes"
            )


def build(cfg: Config, seed: int, scale: str = "full", shard: Shard | None = None) -> Parts:
    """Everything a run needs, checked. `shard` (default: this process's place in
    `torch.distributed`'s group, if any): data parallel over several processes."""
    shard = Shard.current() if shard is None else shard
    device = _device(cfg, shard)
    src = sources.load(cfg.dataset, download=cfg.download, size=scale, image_size=cfg.image_size)
    data = make_splits(
        src,
        seed,
        cfg.num_labels,
        cfg.label_fraction,
        cfg.val_size,
        cfg.holdout,
        cfg.imbalance,
        (cfg.head_labeled, cfg.head_unlabeled),
    )
    if len(data.val) == 0:
        raise ConfigError(
            "val_size: training needs a validation set (it picks the best evaluation); "
            "set val_size >= 1"
        )
    cls = METHODS[cfg.method]
    check_split(cfg, shard.world)
    if cls.views and len(data.unlabeled) == 0:
        key = "num_labels" if src.task == "classification" else "label_fraction"
        raise ConfigError(
            f"{key}: every training sample of {cfg.dataset} is labeled, and {cfg.method} "
            f"trains on unlabeled data; lower {key}"
        )
    torch.manual_seed(mix_seed(seed, 0, 7))  # model initialisation
    if device.type == "cuda" and cfg.cuda_fast:  # autotuned kernels, TF32 on Ampere and later
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = _model(cfg, src, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s))
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    teacher = ema.module if ema is not None else None
    try:
        method = cls(
            cfg.method_config(),
            torch.compile(model) if cfg.compile else model,
            opt,
            data.task,
            teacher=teacher,
            estimator=cfg.estimator,
            estimator_kw=cfg.estimator_kw(),
            teacher_decay=cfg.ema_decay,
            shard=shard,
            rank_local=cfg.rank_local,
            amp=cfg.amp,
        )
    except (ValueError, TypeError) as err:  # the method refuses this setup
        raise ConfigError(f"{cfg.name}: {err}") from None
    sizes = {
        "labeled": cfg.batch_size,
        "unlabeled": cfg.unlabeled_batch,
        "holdout": cfg.holdout_batch or cfg.batch_size,
    }
    batches = BatchMaker(
        data, cls.views, sizes, seed, cfg.steps, device, cls.needs_holdout, shard, cfg.channels_last
    )
    return Parts(data, model, opt, sched, ema, method, batches, device)
