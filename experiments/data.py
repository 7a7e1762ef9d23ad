"""Semi-supervised splits and the batches of every step.

`make_splits` turns a `Source` into labeled / unlabeled / validation / test (and optional
hold-out) parts. `BatchMaker(step)` builds the batch of a given step from the seed and the step
alone (index streams are per-epoch permutations, augmentations use a per-step generator), so a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel import Shard
from bilevel.parallel import LOCAL
from methods import Batch
from methods.task import LandmarkTask, Task

from . import augment
from .config import ConfigError
from .imagefolder import ImageFiles
from .sources import Source

# the landmark targets are standardised by the labeled set's mean and std per coordinate;
# fewer faces give a std near zero and standardised targets in the thousands
MIN_LANDMARK_LABELS = 10


@dataclass
class Part:
    x: Tensor  # uint8 images
    y: Tensor  # class indices, or landmarks in pixels

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: Tensor) -> Part:
        return Part(self.x[idx], self.y[idx])


@dataclass
class SSLData:
    source: Source
    labeled: Part
    unlabeled: Part  # y: hidden ground truth, for diagnostics only
    val: Part
    test: Part
    holdout: Part | None  # a separate hold-out split (None: batches come from `labeled`)
    task: Task
    mean: Tensor  # per-channel input normalisation
    std: Tensor


def mix_seed(*values: int) -> int:
    """A deterministic 62-bit seed from integers."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v + 0x632BE59BD9B4E019 + (h << 6) + (h >> 2))) & (2**64 - 1)
    return h >> 2


def _generator(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*values))


def _balanced(labels: Tensor, num_labels: int, classes: int, g: torch.Generator) -> Tensor:
    """`num_labels` indices, the same number per class."""
    counts = torch.bincount(labels, minlength=classes)
    most = classes * int(counts.min())
    if num_labels <= 0 or num_labels % classes or num_labels > most:
        raise ConfigError(
            f"num_labels: must be a positive multiple of {classes} (labels per class x "
            f"{classes} classes) of at most {most} ({int(counts.min())} per class is what the "
            f"smallest class holds outside the validation set), got {num_labels}"
        )
    chosen = []
    for c in range(classes):
        idx = (labels == c).nonzero().flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=g)[: num_labels // classes]])
    return torch.cat(chosen).sort().values


def _by_fraction(labels: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """round(`fraction` × its size) indices of every class (at least one each)."""
    chosen = []
    for c in range(int(labels.max()) + 1):
        idx = (labels == c).nonzero().flatten()
        take = max(1, round(fraction * len(idx))) if len(idx) else 0
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:take]])
    return torch.cat(chosen).sort().values


def imbalanced_counts(head: int, ratio: float, classes: int) -> list[int]:
    """Samples per class of a long-tailed split: head·ratio^(−c/(C−1)), c = 0…C−1 (at least 1)."""
    return [max(1, round(head * ratio ** (-c / max(1, classes - 1)))) for c in range(classes)]


def _imbalanced(labels: Tensor, heads: tuple[int, int], ratio: float, g: torch.Generator):
    """(labeled, unlabeled) local indices with long-tailed class counts; the rest is unused."""
    classes = int(labels.max()) + 1
    lab, unl = [], []
    for c, n_l, n_u in zip(
        range(classes),
        imbalanced_counts(heads[0], ratio, classes),
        imbalanced_counts(heads[1], ratio, classes),
        strict=True,
    ):
        idx = (labels == c).nonzero().flatten()
        if len(idx) < n_l + n_u:
            raise ConfigError(
                f"head_labeled: imbalanced split: class {c} has {len(idx)} samples, fewer than the "
                f"{n_l} labeled + {n_u} unlabeled needed (lower head_labeled/head_unlabeled)"
            )
        idx = idx[torch.randperm(len(idx), generator=g)]
        lab.append(idx[:n_l])
        unl.append(idx[n_l : n_l + n_u])
    return torch.cat(lab).sort().values, torch.cat(unl).sort().values


def make_splits(
    src: Source,
    seed: int,
    num_labels: int = 0,
    label_fraction: float = 0.0,
    val_size: int = 0,
    holdout: str = "labeled",
    imbalance: float = 0.0,
    heads: tuple[int, int] = (0, 0),
) -> SSLData:
    """Labeled subset by seed; validation fixed (seed-independent) as the papers hold it out.

    With `imbalance` = γ > 0 (classification) the labeled and unlabeled sets are long-tailed,
    `heads` = (N_1, M_1) samples of class 0 down to N_1/γ, M_1/γ of the last class; validation
    and test stay as they are (balanced), as in Meta-T's Sec. 5.3."""
    n = len(src.train_x)
    train_y = src.train_y
    unl_local = None
    if val_size >= n:
        raise ConfigError(
            f"val_size: {src.name} has {n} training samples; val_size={val_size} leaves none "
            f"to train on (at most {n - 1})"
        )
    if src.task == "classification":  # validation: a seed-independent random subset
        order = torch.randperm(n, generator=_generator(0, 1))
        val_idx, rest = order[:val_size], order[val_size:]
        g = _generator(seed, 2)
        if imbalance > 0:
            lab_local, unl_local = _imbalanced(train_y[rest], heads, imbalance, g)
        elif label_fraction > 0:  # ImageNet: 10% of each class
            lab_local = _by_fraction(train_y[rest], label_fraction, g)
        else:
            lab_local = _balanced(train_y[rest], num_labels, src.num_outputs, g)
    else:
        n_val = round(src.val_last_fraction * n) if val_size == 0 else val_size
        val_idx, rest = torch.arange(n - n_val, n), torch.arange(n - n_val)
        n_lab = round(label_fraction * len(rest))
        if n_lab < MIN_LANDMARK_LABELS:
            need = math.ceil((MIN_LANDMARK_LABELS - 0.5) / len(rest) * 1e4) / 1e4
            raise ConfigError(
                f"label_fraction: {label_fraction} of the {len(rest)} training faces of "
                f"{src.name} is {n_lab} labeled faces; the landmark targets are standardised "
                f"with the labeled set's mean and std, which needs at least "
                f"{MIN_LANDMARK_LABELS}: set label_fraction >= {need}"
            )
        lab_local = torch.randperm(len(rest), generator=_generator(seed, 2))[:n_lab].sort().values
    lab_mask = torch.zeros(len(rest), dtype=torch.bool)
    lab_mask[lab_local] = True
    full = Part(src.train_x, train_y)
    labeled = full.take(rest[lab_mask])
    unlabeled = full.take(rest[~lab_mask] if unl_local is None else rest[unl_local])
    val = full.take(val_idx)
    held = None
    if holdout == "separate":
        if len(val) < 2:
            raise ConfigError(
                f"holdout: holdout=separate takes the hold-out split from the validation set, "
                f"which has {len(val)} samples; set val_size >= 2"
            )
        take = min(len(labeled), len(val) // 2)
        perm = torch.randperm(len(val), generator=_generator(seed, 3))
        held, val = val.take(perm[:take]), val.take(perm[take:])
    if src.task == "landmarks":
        task: Task = LandmarkTask(labeled.y.mean(0), labeled.y.std(0).clamp_min(1e-6))
        mean, std = torch.zeros(1), torch.ones(1)  # TCDCN takes raw [0, 1] intensities
    else:
        task = Task()
        if src.mean is not None:  # files: the dataset's published statistics
            mean, std = src.mean, src.std
        else:
            pixels = src.train_x.double() / 255
            mean = pixels.mean((0, 2, 3)).float()
            std = pixels.std((0, 2, 3)).float().clamp_min(1e-3)
    return SSLData(
        src, labeled, unlabeled, val, Part(src.test_x, src.test_y), held, task, mean, std
    )


def stream(n: int, batch: int, step: int, seed: int, name: int) -> Tensor:
    """Indices of `batch` samples for `step`: consecutive slices of per-epoch permutations."""
    start = step * batch
    out = []
    while len(out) < batch:
        epoch, offset = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=_generator(seed, name, epoch))
        out.extend(perm[offset : offset + batch - len(out)].tolist())
    return torch.tensor(out, dtype=torch.long)


class BatchMaker:
    """`maker(step)` → the `methods.Batch` of that step, on `device`.

    In two halves, so that worker processes can build batches ahead of the training loop:
    `host(step)` augments on the CPU and returns uint8 images with CPU targets (a pure function
    of seed and step), `to_device(batch)` copies it (non-blocking from pinned memory) and
    normalises the images on the device. Data parallel (`shard`), each rank builds the step's
    global batch and keeps its rows (`Batch.part`), so the ranks' slices are disjoint and
    together the one-process batch."""

    def __init__(
        self,
        data: SSLData,
        views: tuple[str, ...],
        sizes: dict[str, int],
        seed: int,
        total_steps: int,
        device: torch.device,
        holdout: bool,
        shard: Shard = LOCAL,
        channels_last: bool = False,
    ) -> None:
        self.data, self.views, self.sizes, self.seed = data, views, sizes, seed
        self.shard = shard
        self.channels_last = channels_last  # images in NHWC memory order
        self.total_steps, self.device, self.holdout = total_steps, device, holdout
        self.landmarks = data.task.kind == "landmarks"
        self._mean = data.mean[:, None, None].to(device)
        self._std = data.std[:, None, None].to(device)

    def normalise(self, x: Tensor) -> Tensor:
        """uint8 → (on the device) float in [0, 1] → per-channel standardisation (identity for
        landmarks)."""
        x = x.to(self.device, non_blocking=True).float() / 255
        x = (x - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _targets(self, y: Tensor, offsets: Tensor | None) -> Tensor:
        if not self.landmarks:
            return y
        return self.data.task.standardise(augment.shift_landmarks(y, offsets))

    def _augmented(self, part: Part, idx: Tensor, g: torch.Generator):
        """Weak view of labeled samples, with their (shifted, standardised) targets."""
        src = self.data.source
        if isinstance(part.x, ImageFiles):  # decoded here: random-resized crop and flip
            return part.x[idx].crops(g), part.y[idx]
        imgs = part.x[idx].float() / 255
        offsets = augment.random_offsets(len(idx), src.max_shift, g)
        imgs = augment.translate(imgs, offsets)
        if src.flip:
            imgs = augment.hflip(imgs, g)
        return self._finish(imgs), self._targets(part.y[idx], offsets)

    def _finish(self, imgs01: Tensor) -> Tensor:
        return (imgs01 * 255).round().clamp(0, 255).to(torch.uint8)

    def __call__(self, step: int) -> Batch:
        return self.to_device(self.host(step))

    def to_device(self, b: Batch) -> Batch:
        """A `host` batch on the device, its images normalised there."""

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(self.device, non_blocking=True)

        return dataclasses.replace(
            b,
            x=self.normalise(b.x),
            y=move(b.y),
            u=[self.normalise(v) for v in b.u],
            u_offsets=None if b.u_offsets is None else [move(o) for o in b.u_offsets],
            u_true=move(b.u_true),
            hold_x=None if b.hold_x is None else self.normalise(b.hold_x),
            hold_y=move(b.hold_y),
        )

    def host(self, step: int) -> Batch:
        """The batch of `step` on the CPU, images as uint8 (a function of seed and step)."""
        d, s = self.data, self.sizes
        g = _generator(self.seed, step, 10)
        x, y = self._augmented(
            d.labeled, stream(len(d.labeled), s["labeled"], step, self.seed, 1), g
        )
        views, offsets, u_true = [], [], None
        if self.views:
            u_idx = stream(len(d.unlabeled), s["unlabeled"], step, self.seed, 2)
            u_true = d.unlabeled.y[u_idx]
            files = d.unlabeled.x[u_idx] if isinstance(d.unlabeled.x, ImageFiles) else None
            u01 = None if files else d.unlabeled.x[u_idx].float() / 255
            for view in self.views:
                if files is not None:  # each view its own crop and flip (strong: + RandAugment)
                    img = files.crops(g)
                    if view == "strong":
                        img = self._finish(augment.strong(img.float() / 255, g, 0, False))
                    views.append(img)
                    offsets.append(torch.zeros(len(u_idx), 2, dtype=torch.long))
                    continue
                off = augment.random_offsets(len(u_idx), d.source.max_shift, g)
                if view == "strong":
                    img = augment.strong(augment.translate(u01, off), g, 0, d.source.flip)
                else:
                    img = augment.translate(u01, off)
                    img = augment.hflip(img, g) if d.source.flip else img
                views.append(self._finish(img))
                offsets.append(off)
        hold_x = hold_y = None
        if self.holdout:
            part = d.holdout if d.holdout is not None else d.labeled
            h_idx = stream(len(part), s["holdout"], step, self.seed, 3)
            hold_x, hold_y = self._augmented(part, h_idx, g)
        whole = Batch(
            x,
            y,
            views,
            step,
            self.total_steps,
            u_offsets=offsets if self.landmarks else None,
            u_true=u_true,
            hold_x=hold_x,
            hold_y=hold_y,
        )
        return whole.part(self.shard)


class _Steps(torch.utils.data.Dataset):
    """Steps `start` … `stop` − 1 as a dataset of host batches (for worker processes)."""

    def __init__(self, maker: BatchMaker, start: int, stop: int) -> None:
        self.maker, self.start, self.stop = maker, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> Batch:
        return self.maker.host(self.start + i)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers augment one batch each; the cores are for training


def default_workers(device: torch.device) -> int:
    """Worker processes when `workers=-1`: none on CPU (they would take the training's
    cores), else one per core but one, at most 8."""
    return 0 if device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))


def batches(maker: BatchMaker, start: int, stop: int, workers: int) -> Iterator[Batch]:
    """The batches of steps `start` … `stop` − 1 in order, on the device. With `workers` > 0
    they are built ahead by that many processes (`torch.utils.data.DataLoader`, pinned memory
    on CUDA, 4 batches prefetched per worker); each is still the function of (seed, step) that
    `maker(step)` computes, so the numbers do not depend on `workers`."""
    if workers == 0:
        yield from (maker(step) for step in range(start, stop))
        return
    loader = torch.utils.data.DataLoader(
        _Steps(maker, start, stop),
        batch_size=None,
        num_workers=workers,
        pin_memory=maker.device.type == "cuda",
        prefetch_factor=4,
        worker_init_fn=_one_thread,
    )
    yield from (maker.to_device(host) for host in loader)
