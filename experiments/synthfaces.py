"""Synthetic faces: 60×60 grayscale faces with 5 landmarks, the embedded stand-in for AFLW.

Each face is drawn (soft-edged, anti-aliased) from random pose (in-plane rotation and a yaw that
compresses one side), scale, position, skin tone, feature sizes, smile, lighting gradient,
background clutter (random ellipses) and pixel noise. Landmarks, interleaved (x, y) in pixels:
left eye, right eye, nose tip, left mouth corner, right mouth corner — the AFLW/MTFL order.
Generation is vectorised in torch and deterministic per seed.

`write_aflw(root, ...)` stores a generated set in the AFLW release format that
`experiments.sources.load_aflw` reads, so that loader runs end to end on it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.io import savemat
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

SIZE = 60
# canonical landmark positions in the face frame (pixels at scale 1, origin at face centre)
_CANON = torch.tensor([[-7.0, -5.0], [7.0, -5.0], [0.0, 3.0], [-6.0, 10.0], [6.0, 10.0]])


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float32)


def _ellipse(xx, yy, cx, cy, rx, ry, angle, soft=0.6) -> Tensor:
    """Soft mask of a rotated ellipse, per image (parameters have shape N)."""
    c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
    u = (c * dx + s * dy) / rx[:, None, None]
    v = (-s * dx + c * dy) / ry[:, None, None]
    r = torch.sqrt(u * u + v * v)
    scale = torch.minimum(rx, ry)[:, None, None]
    return torch.sigmoid((1 - r) * scale / soft)


def generate(n: int, seed: int, chunk: int = 250) -> tuple[Tensor, Tensor]:
    """`n` faces: images uint8 N×1×60×60 and landmarks float32 N×10 (x1, y1, …, x5, y5)."""
    parts = [_generate(min(chunk, n - i), seed, i // chunk) for i in range(0, n, chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _generate(n: int, seed: int, part: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed * 100_003 + part)
    ys, xs = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float32),
        torch.arange(SIZE, dtype=torch.float32),
        indexing="ij",
    )
    xx, yy = xs[None], ys[None]

    # background: gradient + clutter
    phi = _u(g, n, 0, 2 * math.pi)
    base = _u(g, n, 0.15, 0.85)
    grad = _u(g, n, -0.3, 0.3)
    img = (
        base[:, None, None]
        + grad[:, None, None]
        * ((xx - 30) * torch.cos(phi)[:, None, None] + (yy - 30) * torch.sin(phi)[:, None, None])
        / 30
    )
    for _ in range(6):
        m = _ellipse(
            xx,
            yy,
            _u(g, n, 0, 60),
            _u(g, n, 0, 60),
            _u(g, n, 2, 14),
            _u(g, n, 2, 14),
            _u(g, n, 0, math.pi),
        )
        img = img * (1 - m) + m * _u(g, n, 0, 1)[:, None, None]

    # pose
    cx, cy = _u(g, n, 23, 37), _u(g, n, 22, 36)
    scale = _u(g, n, 0.75, 1.2)
    rot = _u(g, n, -0.45, 0.45)
    yaw = _u(g, n, -0.35, 0.35)

    def place(p: Tensor) -> tuple[Tensor, Tensor]:
        """Face-frame points (N×2 or 2) → image coordinates; yaw shifts and compresses x."""
        px, py = p[..., 0], p[..., 1]
        px = px * (1 - 0.35 * yaw * torch.sign(px)) + 8 * yaw
        c, s = torch.cos(rot), torch.sin(rot)
        return cx + scale * (c * px - s * py), cy + scale * (s * px + c * py)

    skin = _u(g, n, 0.45, 0.85)
    fx, fy = place(torch.zeros(n, 2, dtype=torch.float32))
    head = _ellipse(xx, yy, fx, fy, scale * 16 * (1 - 0.2 * yaw.abs()), scale * 20, rot)
    img = img * (1 - head) + head * skin[:, None, None]

    dark = skin - _u(g, n, 0.25, 0.45)
    marks = []
    for i, (px, py) in enumerate(_CANON.tolist()):
        marks.append(
            torch.stack(place(torch.tensor([px, py], dtype=torch.float32).expand(n, 2)), 1)
        )
        if i < 2:  # eyes and brows
            ex, ey = marks[-1][:, 0], marks[-1][:, 1]
            eye = _ellipse(
                xx, yy, ex, ey, scale * _u(g, n, 2.0, 3.2), scale * _u(g, n, 1.1, 1.8), rot
            )
            img = img * (1 - eye) + eye * dark[:, None, None]
            bx, by = place(torch.tensor([px, py - 3.5], dtype=torch.float32).expand(n, 2))
            brow = _ellipse(xx, yy, bx, by, scale * 3.2, scale * 0.7, rot + _u(g, n, -0.2, 0.2))
            img = img * (1 - brow) + brow * (dark[:, None, None] + 0.05)
    nx, ny = marks[2][:, 0], marks[2][:, 1]
    nose = _ellipse(xx, yy, nx, ny - scale * 2.5, scale * 1.3, scale * 3.2, rot)
    img = img * (1 - 0.6 * nose) + 0.6 * nose * (skin[:, None, None] - 0.15)
    smile = _u(g, n, -1.5, 2.5)
    mx, my = place(
        torch.tensor([0.0, 10.0], dtype=torch.float32).expand(n, 2)
        + torch.stack([torch.zeros(n, dtype=torch.float32), smile], 1)
    )
    mouth = _ellipse(xx, yy, mx, my, scale * 6.2, scale * _u(g, n, 0.8, 1.6), rot)
    img = img * (1 - mouth) + mouth * (dark[:, None, None] - 0.05)

    # lighting and noise
    light = _u(g, n, -0.35, 0.35)
    lphi = _u(g, n, 0, 2 * math.pi)
    img = img * (
        1
        + light[:, None, None]
        * ((xx - 30) * torch.cos(lphi)[:, None, None] + (yy - 30) * torch.sin(lphi)[:, None, None])
        / 30
    )
    img = img + _u(g, n, 0.01, 0.06)[:, None, None] * torch.randn(
        img.shape, generator=g, dtype=torch.float32
    )
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)[:, None]
    landmarks = torch.stack(marks, 1).reshape(n, 10).float()
    return images, landmarks


def write_aflw(
    root: str | Path, n_train: int, n_test: int, seed: int = 0, size: int = SIZE
) -> Path:
    """Write a synthetic set in the AFLW release format (see `experiments.sources.load_aflw`):
    images as PNG under `output/`, `aflw_{split}_images.txt` with one path (relative to `output/`)
    per line, `aflw_{split}_keypoints.mat` with `gt` (N×5×2 as (y, x), in the written image's
    pixels) and `hw` (N×2 image height, width). `size` ≠ 60 rescales images and landmarks."""
    root = Path(root)
    (root / "output").mkdir(parents=True, exist_ok=True)
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        images, marks = generate(n, s)
        if size != SIZE:
            images = TF.resize(images, [size, size], antialias=True)
            marks = marks * size / SIZE
        names = []
        for i, img in enumerate(images):
            name = f"{split}_{i:05d}.png"
            Image.fromarray(img[0].numpy(), mode="L").save(root / "output" / name)
            names.append(name)
        (root / f"aflw_{split}_images.txt").write_text("\n".join(names) + "\n")
        xy = marks.reshape(n, 5, 2).numpy().astype(np.float64)
        savemat(
            root / f"aflw_{split}_keypoints.mat",
            {"gt": xy[:, :, ::-1].copy(), "hw": np.full((n, 2), size, dtype=np.float64)},
        )
    return root


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Write synthetic faces in the AFLW release format."
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"wrote {write_aflw(args.root, args.train, args.test, args.seed)}")
