"""ImageNet in torchvision's ImageFolder layout (experiments/imagefolder.py, sources.load_imagenet)
on a tiny generated folder: loading, class-balanced labeled subsets by fraction, the training and
evaluation pipelines, deterministic batches built in workers, the clear error without data, and
metagrad_imagenet end to end, on one and on two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from experiments import sources
from experiments.data import BatchMaker, batches, make_splits
from experiments.imagefolder import ASPECT, ImageFiles, crop_box
from experiments.sources import DataError

CLASSES = ("n01", "n02", "n03")


def write_imagefolder(root: Path, per_class: int = 10, val_per_class: int = 4) -> Path:
    """Images of varied sizes (JPEG and PNG), colour-coded by class, under root/imagenet."""
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(CLASSES):
            folder = root / "imagenet" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = (
                    int(torch.randint(24, 60, (), generator=g)),
                    int(torch.randint(24, 60, (), generator=g)),
                )
                pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
                pixels[..., c] = 255
                ext = "JPEG" if i % 2 else "png"
                Image.fromarray(pixels.numpy()).save(folder / f"{name}_{i}.{ext}")
    return root / "imagenet"


def test_imagefolder_loads_as_files_with_labels(tmp_path):
    write_imagefolder(tmp_path)
    src = sources.load_imagenet(tmp_path / "imagenet", size=16)
    assert isinstance(src.train_x, ImageFiles) and src.train_x.shape == (30, 3, 16, 16)
    assert src.train_y.tolist() == [c for c in range(3) for _ in range(10)]
    assert len(src.test_x) == 12 and src.num_outputs == 3 and src.flip
    centre = src.test_x[:5].centre()
    assert centre.dtype == torch.uint8 and centre.shape == (5, 3, 16, 16)
    assert torch.equal(centre, src.test_x[:5].centre())  # evaluation is deterministic
    assert (centre[:4, 0].float().mean((1, 2)) > 200).all()  # class 0 (the first 4) is red


def test_missing_imagenet_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    with pytest.raises(DataError) as err:
        sources.load("imagenet")
    text = str(err.value)
    assert f"imagenet not found at {tmp_path / 'imagenet' / 'train'}" in text
    assert "train/<class>/<image>.JPEG" in text and "image-net.org" in text
    write_imagefolder(tmp_path)
    (tmp_path / "imagenet" / "val" / "n03").rename(tmp_path / "imagenet" / "val" / "n99")
    with pytest.raises(DataError, match="different class folders"):
        sources.load("imagenet")


def test_labeled_subset_is_a_fraction_of_every_class(tmp_path):
    write_imagefolder(tmp_path, per_class=10)
    src = sources.load_imagenet(tmp_path / "imagenet", size=16)
    data = make_splits(src, seed=1, label_fraction=0.2, val_size=3)
    assert len(data.val) == 3
    counts = torch.bincount(data.labeled.y, minlength=3)
    rest = torch.bincount(torch.cat([data.labeled.y, data.unlabeled.y]), minlength=3)
    assert counts.tolist() == [max(1, round(0.2 * int(n))) for n in rest]
    assert data.mean.tolist() == pytest.approx([0.485, 0.456, 0.406])
    other = make_splits(src, seed=2, label_fraction=0.2, val_size=3)
    assert other.labeled.x.paths != data.labeled.x.paths  # the subset depends on the seed


def test_crop_boxes_lie_inside_with_the_drawn_area_and_aspect():
    g = torch.Generator().manual_seed(3)
    for h, w in [(40, 60), (300, 200), (10, 200), (200, 10)]:
        for _ in range(50):
            top, left, ch, cw = crop_box(h, w, g)
            assert top >= 0 and top + ch <= h and left >= 0 and left + cw <= w
            assert ch > 0 and cw > 0
    top, left, ch, cw = crop_box(10, 200, torch.Generator().manual_seed(0))  # fallback: centre
    assert ch == 10 and cw == round(10 * ASPECT[1]) and left == (200 - cw) // 2


def test_batches_are_decoded_deterministically_and_alike_in_workers(tmp_path):
    write_imagefolder(tmp_path)
    src = sources.load_imagenet(tmp_path / "imagenet", size=16)
    data = make_splits(src, seed=0, label_fraction=0.3, val_size=3)
    sizes = {"labeled": 4, "unlabeled": 6, "holdout": 4}
    maker = BatchMaker(data, ("weak", "strong"), sizes, 0, 10, torch.device("cpu"), False)
    b = maker.host(3)
    assert b.x.shape == (4, 3, 16, 16) and b.x.dtype == torch.uint8
    assert [v.shape for v in b.u] == [(6, 3, 16, 16)] * 2
    assert not torch.equal(b.u[0], b.u[1])  # each view its own crop
    again = maker.host(3)
    assert torch.equal(b.x, again.x) and all(map(torch.equal, b.u, again.u))
    inline = list(batches(maker, 0, 4, workers=0))
    ahead = list(batches(maker, 0, 4, workers=2))
    for a, c in zip(inline, ahead, strict=True):
        assert torch.equal(a.x, c.x) and all(map(torch.equal, a.u, c.u))


def _exp(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNS_ROOT": str(tmp / "runs"), "DATA_ROOT": str(tmp)}
    cmd = [sys.executable, "-m", "experiments", "metagrad_imagenet", "--scale", "smoke"]
    cmd += ["--quiet", "image_size=64", "val_size=6", "label_fraction=0.3", "steps=4"]
    cmd += ["eval_every=2", "batch_size=8", "unlabeled_batch=8", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("nproc", ["1", "2"])
def test_metagrad_imagenet_runs_end_to_end(tmp_path, nproc):
    write_imagefolder(tmp_path)
    out = _exp(tmp_path, "--nproc", nproc)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["nproc"] == int(nproc) and 0 <= summary["final"]["test/error"] <= 100
