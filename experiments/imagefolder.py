"""Images kept as files (ImageNet): decoded and augmented when a batch is built, in the batch
workers, never held in memory as a whole.

`ImageFiles` stands where the in-memory sources hold a uint8 N×C×H×W tensor: it has a length,
a `shape` (N, 3, size, size), and indexing gives the files of those samples. `crops(g)` decodes
them with the training pipeline, `centre()` with the evaluation one, both to `size`×`size` uint8:

    train   random-resized crop (area ∈ [0.1, 1] of the image, aspect ∈ [0.8, 1.25], 100 tries,
            else the centre crop; as the Meta-Gradient authors' ImageNet loader), resized to
            size, flipped with probability ½; every draw from the step's generator
    eval    shorter side resized to round(size·256/224), centre crop of size
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

AREA = (0.1, 1.0)
ASPECT = (0.8, 1.25)
ATTEMPTS = 100


@dataclass(frozen=True)
class ImageFiles:
    paths: tuple[str, ...]
    size: int = 224

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), 3, self.size, self.size)

    def __getitem__(self, idx) -> ImageFiles:
        if isinstance(idx, slice):
            return ImageFiles(self.paths[idx], self.size)
        rows = idx.tolist() if isinstance(idx, Tensor) else list(idx)
        if isinstance(idx, Tensor) and idx.dtype == torch.bool:
            rows = [i for i, keep in enumerate(rows) if keep]
        return ImageFiles(tuple(self.paths[i] for i in rows), self.size)

    def _read(self, path: str) -> Tensor:
        """The image at `path` as uint8 RGB; an unreadable file is a `DataError` naming it."""
        from .sources import DataError

        try:
            with Image.open(path) as img:
                return TF.pil_to_tensor(img.convert("RGB"))
        except FileNotFoundError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(
                f"{path}: not a readable image ({type(err).__name__}: {err}); replace or remove "
                "the file"
            ) from None

    def crops(self, g: torch.Generator) -> Tensor:
        """The training pipeline on every image (uint8 N×3×size×size)."""
        out = torch.empty(self.shape, dtype=torch.uint8)
        for i, path in enumerate(self.paths):
            img = self._read(path)
            top, left, h, w = crop_box(img.shape[1], img.shape[2], g)
            img = TF.resized_crop(img, top, left, h, w, [self.size, self.size], antialias=True)
            out[i] = TF.horizontal_flip(img) if torch.rand((), generator=g) < 0.5 else img
        return out

    def centre(self) -> Tensor:
        """The evaluation pipeline on every image (uint8 N×3×size×size)."""
        out = torch.empty(self.shape, dtype=torch.uint8)
        for i, path in enumerate(self.paths):
            img = TF.resize(self._read(path), [round(self.size * 256 / 224)], antialias=True)
            out[i] = TF.center_crop(img, [self.size, self.size])
        return out


def crop_box(height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random-resized crop: area fraction and log-aspect uniform in
    `AREA` and `ASPECT`, the first of `ATTEMPTS` draws that fits, else the largest centred crop
    with an aspect inside `ASPECT`."""
    area = height * width
    log_lo, log_hi = math.log(ASPECT[0]), math.log(ASPECT[1])
    for _ in range(ATTEMPTS):
        u = torch.rand(4, generator=g, dtype=torch.float64).tolist()
        target = area * (AREA[0] + (AREA[1] - AREA[0]) * u[0])
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[1])
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1)), h, w
    ratio = width / height
    if ratio < ASPECT[0]:
        w, h = width, round(width / ASPECT[0])
    elif ratio > ASPECT[1]:
        h, w = height, round(height * ASPECT[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def as_tensor(x) -> Tensor:
    """Images as a uint8 tensor: in-memory ones as they are, files through `centre()`."""
    return x.centre() if isinstance(x, ImageFiles) else x
