"""Loaders on small data written in each real on-disk format, and their errors."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from experiments import sources, synthfaces
from experiments.sources import DataError


def _write_cifar10(root, n=6):
    base = root / "cifar10" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        batches[name] = (data, labels)
        with open(base / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    return batches


def test_cifar10_reads_torchvision_format(tmp_path):
    batches = _write_cifar10(tmp_path)
    src = sources.load_torchvision("cifar10", root=tmp_path)
    assert src.train_x.shape == (30, 3, 32, 32) and src.train_x.dtype == torch.uint8
    assert src.test_x.shape == (6, 3, 32, 32)
    first = torch.from_numpy(batches["data_batch_1"][0][0].reshape(3, 32, 32))
    assert torch.equal(src.train_x[0], first)  # channel-first, same pixels
    assert src.train_y[:6].tolist() == batches["data_batch_1"][1]
    assert src.flip and src.num_outputs == 10


def test_cifar100_reads_torchvision_format(tmp_path):
    base = tmp_path / "cifar100" / "cifar-100-python"
    base.mkdir(parents=True)
    for name, n in (("train", 8), ("test", 4)):
        with open(base / name, "wb") as fh:
            pickle.dump({"data": np.zeros((n, 3072), np.uint8), "fine_labels": list(range(n))}, fh)
    with open(base / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [str(i) for i in range(100)]}, fh)
    src = sources.load_torchvision("cifar100", root=tmp_path)
    assert src.num_outputs == 100 and src.train_y.tolist() == list(range(8))


def test_svhn_reads_mat_format(tmp_path):
    (tmp_path / "svhn").mkdir()
    for split, n in (("train", 5), ("test", 3)):
        x = np.arange(32 * 32 * 3 * n, dtype=np.uint64).reshape(32, 32, 3, n) % 256
        y = np.array([[10], [1], [2], [3], [4]][:n])  # SVHN stores digit 0 as 10
        savemat(tmp_path / "svhn" / f"{split}_32x32.mat", {"X": x.astype(np.uint8), "y": y})
    src = sources.load_torchvision("svhn", root=tmp_path)
    assert src.train_x.shape == (5, 3, 32, 32)
    assert src.train_y.tolist() == [0, 1, 2, 3, 4] and not src.flip


def test_missing_torchvision_data_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        sources.load_torchvision("cifar10", root=tmp_path)
    text = str(err.value)
    assert str(tmp_path / "cifar10") in text and "data_batch_1" in text
    assert 'ARGS="download=true"' in text and "_digits" in text


def test_aflw_release_format_end_to_end(tmp_path):
    """Synthetic faces written in the AFLW format (at 90×90) load back into the 60×60 frame."""
    synthfaces.write_aflw(tmp_path, n_train=12, n_test=5, seed=3, size=90)
    src = sources.load_aflw(tmp_path)
    images, marks = synthfaces.generate(12, 3)
    assert src.train_x.shape == (12, 1, 60, 60) and src.test_x.shape == (5, 1, 60, 60)
    assert torch.allclose(src.train_y, marks, atol=1e-4)  # (y, x) order and rescaling undone
    diff = (src.train_x.float() - images.float()).abs().mean()
    assert diff < 8, diff  # resized twice (60 → 90 → 60): close, not identical
    assert src.val_last_fraction == 0.1


def test_aflw_missing_and_malformed(tmp_path):
    with pytest.raises(DataError) as err:
        sources.load_aflw(tmp_path / "nowhere")
    text = str(err.value)
    assert "aflw_train_images.txt" in text and "output/" in text
    assert "python -m experiments.synthfaces" in text and "impute_v2_synthfaces" in text
    synthfaces.write_aflw(tmp_path, n_train=3, n_test=2)
    listing = tmp_path / "aflw_train_images.txt"
    listing.write_text("train_00000.png\n\ntrain_00002.png\n")
    with pytest.raises(DataError, match=r"aflw_train_images.txt:2: empty line"):
        sources.load_aflw(tmp_path)
    listing.write_text("train_00000.png\nmissing.png\ntrain_00002.png\n")
    with pytest.raises(DataError, match=r"aflw_train_images.txt:2: cannot read image"):
        sources.load_aflw(tmp_path)
    savemat(
        tmp_path / "aflw_train_keypoints.mat", {"gt": np.zeros((3, 4, 2)), "hw": np.ones((3, 2))}
    )
    with pytest.raises(DataError, match=r"'gt' is \(3, 4, 2\)"):
        sources.load_aflw(tmp_path)


def _write_mtfl(root, bad_line=False):
    (root / "lfw").mkdir(parents=True)
    lines = []
    for i in range(3):
        img = np.full((100, 120), 50 * i, dtype=np.uint8)  # H=100, W=120
        Image.fromarray(img).save(root / "lfw" / f"face{i}.png")
        xs, ys = [30, 90, 60, 40, 80], [40, 40, 60, 80, 80]
        lines.append(f"lfw\\face{i}.png " + " ".join(map(str, xs + ys)) + " 1 2 2 3")
    if bad_line:
        lines[1] = lines[1].replace(" 90 ", " ninety ")
    (root / "training.txt").write_text("\n".join(lines) + "\n")
    (root / "testing.txt").write_text(lines[0] + "\n")


def test_mtfl_text_format(tmp_path):
    _write_mtfl(tmp_path)
    src = sources.load_mtfl(tmp_path)
    assert src.train_x.shape == (3, 1, 60, 60)
    expected = torch.tensor(
        [30 / 2, 40 * 0.6, 90 / 2, 40 * 0.6, 60 / 2, 60 * 0.6, 40 / 2, 80 * 0.6, 80 / 2, 80 * 0.6]
    )  # W 120→60, H 100→60
    assert torch.allclose(src.train_y[0], expected)


def test_mtfl_bad_line_names_file_and_line(tmp_path):
    _write_mtfl(tmp_path, bad_line=True)
    with pytest.raises(DataError, match=r"training.txt:2: coordinates must be numbers"):
        sources.load_mtfl(tmp_path)
    with pytest.raises(DataError, match="MTFL not found"):
        sources.load_mtfl(tmp_path / "missing")


def test_digits_and_synthfaces():
    digits = sources.load_digits()
    assert digits.train_x.shape[1:] == (1, 8, 8) and len(digits.test_x) == 500
    assert set(digits.train_y.tolist()) == set(range(10))
    a, b = sources.load_synthfaces(40, 10, seed=0), sources.load_synthfaces(40, 10, seed=0)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    c = sources.load_synthfaces(40, 10, seed=1)
    assert not torch.equal(a.train_x, c.train_x)
    inside = (a.train_y > 0) & (a.train_y < 60)
    assert inside.all()


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; valid: digits"):
        sources.load("imagenet")
