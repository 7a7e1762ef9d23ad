"""Batch augmentations with per-sample randomness from an explicit generator.

Images are float tensors N×C×H×W in [0, 1]. Translations pad by reflection and crop back, so
content moves by (dx, dy) pixels; landmark targets (interleaved x, y in pixels) move with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2


def random_offsets(n: int, max_shift: int, g: torch.Generator) -> Tensor:
    """Integer offsets (dx, dy) in [−max_shift, max_shift], shape N×2."""
    return torch.randint(-max_shift, max_shift + 1, (n, 2), generator=g)


def translate(images: Tensor, offsets: Tensor) -> Tensor:
    """Shift each image by its (dx, dy): pixel (x, y) moves to (x + dx, y + dy); reflect padding."""
    if len(offsets) == 0:
        return images
    pad = int(offsets.abs().max())
    if pad == 0:
        return images.clone()
    _, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    out = torch.empty_like(images)
    for i, (dx, dy) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, pad - dy : pad - dy + h, pad - dx : pad - dx + w]
    return out


def shift_landmarks(landmarks: Tensor, offsets: Tensor) -> Tensor:
    """Move interleaved (x1, y1, …) landmarks by per-sample (dx, dy)."""
    k = landmarks.shape[1] // 2
    return landmarks + offsets.to(landmarks.dtype).repeat(1, k)


def hflip(images: Tensor, g: torch.Generator) -> Tensor:
    flip = torch.rand(len(images), generator=g) < 0.5
    out = images.clone()
    out[flip] = out[flip].flip(-1)
    return out


def weak(images: Tensor, g: torch.Generator, max_shift: int, flip: bool) -> Tensor:
    """Random translation (and horizontal flip): FixMatch's weak augmentation."""
    out = translate(images, random_offsets(len(images), max_shift, g))
    return hflip(out, g) if flip else out


def strong(images: Tensor, g: torch.Generator, max_shift: int, flip: bool) -> Tensor:
    """Weak augmentation, then RandAugment (2 ops) and Cutout (half the side): FixMatch's strong."""
    out = weak(images, g, max_shift, flip)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    h = images.shape[-1]
    rand_augment = v2.RandAugment(num_ops=2)
    cutout = v2.RandomErasing(p=1.0, scale=(0.0625, 0.25), ratio=(1.0, 1.0), value=0.5)
    with torch.random.fork_rng(devices=[]):  # torchvision draws from the global generator
        torch.manual_seed(seed)
        as_uint8 = (out * 255).round().to(torch.uint8)
        augmented = torch.stack([rand_augment(img) for img in as_uint8]).float() / 255
        if h >= 8:
            augmented = torch.stack([cutout(img) for img in augmented])
    return augmented
