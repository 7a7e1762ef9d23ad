"""Loaders on small data written in each real on-disk format, and their errors."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat, savemat

from experiments import sources, synthfaces
from experiments.sources import DataError
from experiments.standins import write_cifar10


def _write_cifar10(root, n=6):
    return write_cifar10(root, n)


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
    with pytest.raises(DataError, match=r"training.txt:2: coordinates must be finite numbers"):
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
    with pytest.raises(ValueError, match="unknown dataset 'tinyimagenet'; valid: digits"):
        sources.load("tinyimagenet")


@pytest.mark.parametrize(
    ("split", "change", "message"),
    [
        ("train", lambda gt, hw: gt.__setitem__((1, 2, 0), np.nan), "non-finite landmarks"),
        ("test", lambda gt, hw: gt.__setitem__((1, 0, 1), np.inf), "non-finite landmarks"),
        ("train", lambda gt, hw: hw.__setitem__((1, 0), 0.0), "image size 'hw' must be positive"),
        ("test", lambda gt, hw: hw.__setitem__((1, 1), np.nan), "non-finite landmarks or size"),
    ],
)
def test_aflw_bad_values_name_the_file_and_row(tmp_path, split, change, message):
    synthfaces.write_aflw(tmp_path, n_train=3, n_test=2)
    mat = tmp_path / f"aflw_{split}_keypoints.mat"
    content = loadmat(str(mat))
    gt, hw = content["gt"], content["hw"]
    change(gt, hw)
    savemat(mat, {"gt": gt, "hw": hw})
    with pytest.raises(DataError) as err:
        sources.load_aflw(tmp_path)
    assert f"{mat}: row 2 ({split}_00001.png): {message}" in str(err.value)


def test_unreadable_annotation_lists_are_named(tmp_path):
    synthfaces.write_aflw(tmp_path, n_train=3, n_test=2)
    listing = tmp_path / "aflw_train_images.txt"
    listing.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match=rf"{listing}: cannot read the annotation list"):
        sources.load_aflw(tmp_path)
    listing.unlink()
    listing.mkdir()  # a directory where the file should be: is_file() says missing
    with pytest.raises(DataError, match="AFLW not found"):
        sources.load_aflw(tmp_path)
    _write_mtfl(tmp_path / "mtfl")
    (tmp_path / "mtfl" / "testing.txt").write_bytes(b"\x80\x81")
    with pytest.raises(DataError, match=r"testing.txt: cannot read the annotation list"):
        sources.load_mtfl(tmp_path / "mtfl")


def test_mtfl_non_finite_coordinates_name_file_and_line(tmp_path):
    _write_mtfl(tmp_path)
    lines = (tmp_path / "training.txt").read_text().splitlines()
    lines[2] = lines[2].replace(" 60 ", " nan ")
    (tmp_path / "training.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"training.txt:3: coordinates must be finite numbers"):
        sources.load_mtfl(tmp_path)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _garbage(path):
    path.write_bytes(b"not a pickle")


def _no_labels(path):
    with open(path, "wb") as fh:
        pickle.dump({"data": np.zeros((6, 3072), np.uint8)}, fh)


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("data_batch_3", _truncate, "not a readable CIFAR10 file"),
        ("test_batch", _garbage, "not a readable CIFAR10 file"),
        ("batches.meta", _garbage, "not a readable CIFAR10 file"),
        ("data_batch_2", _no_labels, "CIFAR10 file without the key(s) ['labels']"),
    ],
)
def test_corrupt_cifar_files_are_named(tmp_path, name, damage, message):
    _write_cifar10(tmp_path)
    path = tmp_path / "cifar10" / "cifar-10-batches-py" / name
    damage(path)
    with pytest.raises(DataError) as err:
        sources.load_torchvision("cifar10", root=tmp_path)
    assert f"{path}: {message}" in str(err.value)


def test_corrupt_svhn_file_is_named(tmp_path):
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "train_32x32.mat").write_bytes(b"garbage" * 20)
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"garbage" * 20)
    with pytest.raises(DataError, match=r"train_32x32.mat: not a readable SVHN file"):
        sources.load_torchvision("svhn", root=tmp_path)


def test_download_without_internet_says_where_to_put_the_files(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        sources.load_torchvision("cifar10", root=tmp_path, download=True)
    text = str(err.value)
    assert "download=true could not fetch it into" in text and "no route to host" in text
    assert str(tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1") in text


def test_bad_data_stops_make_exp_before_the_run_directory(tmp_path, monkeypatch, capsys):
    from experiments.__main__ import main

    synthfaces.write_aflw(tmp_path / "data" / "aflw", n_train=40, n_test=4)
    mat = tmp_path / "data" / "aflw" / "aflw_test_keypoints.mat"
    content = loadmat(str(mat))
    content["gt"][3, 1, 1] = np.nan
    savemat(mat, {"gt": content["gt"], "hw": content["hw"]})
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    assert main(["impute_v2_aflw", "--scale", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {mat}: row 4 (test_00003.png): non-finite")
        and "Traceback" not in err
    )
    assert not (tmp_path / "runs").exists()


def _a_list(path):
    with open(path, "wb") as fh:
        pickle.dump([1, 2, 3], fh)


def test_a_cifar_file_that_pickles_a_list_is_named(tmp_path):
    _write_cifar10(tmp_path)
    path = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    _a_list(path)
    with pytest.raises(DataError, match=r"data_batch_3: CIFAR10 file without the key\(s\)"):
        sources.load_torchvision("cifar10", root=tmp_path)


def _rewrite(path, change):
    with open(path, "rb") as fh:
        content = pickle.load(fh, encoding="latin1")
    change(content)
    with open(path, "wb") as fh:
        pickle.dump(content, fh)


def test_a_cifar_label_out_of_range_names_the_sample_and_label(tmp_path):
    _write_cifar10(tmp_path)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    _rewrite(folder / "data_batch_1", lambda c: c["labels"].__setitem__(2, 37))
    with pytest.raises(DataError, match=r"train sample 2 has label 37, not a class in \[0, 10\)"):
        sources.load_torchvision("cifar10", root=tmp_path)


def test_fewer_cifar_labels_than_images_is_named(tmp_path):
    _write_cifar10(tmp_path)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    _rewrite(folder / "data_batch_1", lambda c: c.__setitem__("labels", c["labels"][:3]))
    with pytest.raises(DataError, match=r"the train files hold 30 images but 27 labels"):
        sources.load_torchvision("cifar10", root=tmp_path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(b""), "MatReadError"),
        (lambda p: savemat(p, {"gt": {"a": np.ones(3)}, "hw": np.ones((3, 2))}), "'gt' (N×5×2)"),
    ],
)
def test_unreadable_aflw_keypoints_name_the_file(tmp_path, write, message):
    synthfaces.write_aflw(tmp_path, n_train=3, n_test=2)
    mat = tmp_path / "aflw_train_keypoints.mat"
    write(mat)
    with pytest.raises(DataError) as err:
        sources.load_aflw(tmp_path)
    assert str(err.value).startswith(f"{mat}: expected variables") and message in str(err.value)


def _truncated_jpeg(path):
    Image.new("RGB", (40, 40), (200, 10, 10)).save(path, "JPEG")
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "write",
    [
        _truncated_jpeg,
        lambda p: p.write_text("not an image"),
        lambda p: Image.new("RGB", (9, 9)).save(p, "PNG"),
    ],
    ids=["truncated", "text", "bomb"],
)
def test_an_unreadable_image_is_named(tmp_path, monkeypatch, write):
    from experiments.imagefolder import ImageFiles

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 9×9 = 81 > 2×20: a "decompression bomb"
    path = tmp_path / "n01_0001.JPEG"
    write(path)
    with pytest.raises(DataError, match=rf"^{path}: not a readable image \("):
        ImageFiles((str(path),), 32).centre()
