"""Dataset sources: whole train and test sets as in-memory tensors.

Images are uint8 N×C×H×W; classification labels int64; landmarks float32 N×10 interleaved
(x1, y1, …, x5, y5) in pixels of the 60×60 frame. Data lives under `DATA_ROOT` (default
`data/`). Missing or malformed data raises `DataError`, naming the path looked at, the layout
expected, how to get the data and, for a bad annotation line, the file and line number.
"""

from __future__ import annotations

import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image, UnidentifiedImageError
from scipy.io import loadmat
from scipy.io.matlab import MatReadError
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from . import synthfaces
from .errors import DataError
from .imagefolder import ImageFiles

FACE_SIZE = 60


@dataclass
class Source:
    name: str
    task: str  # "classification" | "landmarks"
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_outputs: int  # classes, or 10 landmark coordinates
    max_shift: int  # translation range of the weak augmentation, in pixels
    flip: bool  # horizontal flips allowed
    val_last_fraction: float = 0.0  # AFLW: the last 10% of the train list is validation
    mean: Tensor | None = None  # per-channel input statistics (None: computed from train_x)
    std: Tensor | None = None


def data_root(root: str | Path | None = None) -> Path:
    return Path(root if root is not None else os.environ.get("DATA_ROOT", "data"))


def _missing(what: str, path: Path, layout: str, how: str) -> DataError:
    return DataError(
        f"{what} not found at {path.resolve()}.\nExpected layout:\n{layout}\nHow to get it: {how}"
    )


def _landmark_source(name: str, train_x, train_y, test_x, test_y) -> Source:
    """5-landmark sets: ±4 px translations, no flips, the last 10% of train for validation."""
    return Source(
        name,
        "landmarks",
        train_x,
        train_y,
        test_x,
        test_y,
        10,
        max_shift=4,
        flip=False,
        val_last_fraction=0.1,
    )


# -- embedded ----------------------------------------------------------------------------------
def load_digits(seed: int = 0, test_size: int = 500) -> Source:
    """scikit-learn's bundled 8×8 digits (1797 real images, no download); fixed test split."""
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    images = torch.tensor(data.images * (255.0 / 16.0)).round().to(torch.uint8)[:, None]
    labels = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test, train = order[:test_size], order[test_size:]
    return Source(
        "digits",
        "classification",
        images[train],
        labels[train],
        images[test],
        labels[test],
        10,
        max_shift=1,
        flip=False,
    )


def load_synthfaces(n_train: int = 6000, n_test: int = 1000, seed: int = 0) -> Source:
    """Procedural faces with 5 landmarks (see `experiments.synthfaces`), generated in memory."""
    train_x, train_y = synthfaces.generate(n_train, seed)
    test_x, test_y = synthfaces.generate(n_test, seed + 1)
    return _landmark_source("synthfaces", train_x, train_y, test_x, test_y)


# -- torchvision -------------------------------------------------------------------------------
_TV = {
    "cifar10": (
        torchvision.datasets.CIFAR10,
        "cifar-10-batches-py",
        ["data_batch_1", "…", "data_batch_5", "test_batch", "batches.meta"],
    ),
    "cifar100": (torchvision.datasets.CIFAR100, "cifar-100-python", ["train", "test", "meta"]),
    "svhn": (torchvision.datasets.SVHN, "", ["train_32x32.mat", "test_32x32.mat"]),
}


def _present(cls):
    """torchvision's class with its integrity check reduced to "the files exist": torchvision
    verifies checksums when it downloads; re-hashing on every load is slow, and the tests run
    the real reading code on small files in the same format."""

    class Present(cls):
        def _check_integrity(self) -> bool:
            if hasattr(self, "train_list"):
                base = Path(self.root) / self.base_folder
                return all((base / name).is_file() for name, _ in self.train_list + self.test_list)
            return (Path(self.root) / self.filename).is_file()

        def _load_meta(self) -> None:  # CIFAR: the class names, without the checksum
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            if not path.is_file():
                raise RuntimeError(f"{path} is missing")
            with open(path, "rb") as fh:
                self.classes = pickle.load(fh, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return Present


def load_torchvision(name: str, root: str | Path | None = None, download: bool = False) -> Source:
    """CIFAR-10, CIFAR-100 or SVHN through torchvision, from `DATA_ROOT/<name>/`."""
    cls, folder, files = _TV[name]
    where = data_root(root) / name
    kwargs = (
        [{"split": s} for s in ("train", "test")]
        if name == "svhn"
        else [{"train": True}, {"train": False}]
    )
    sets = []
    listing = "\n".join(f"  {where / folder / f}" for f in files)
    for kw in kwargs:
        try:
            sets.append(
                (_present(cls) if not download else cls)(str(where), download=download, **kw)
            )
        except OSError as err:  # urllib's URLError included: no internet
            if not download:
                raise
            raise DataError(
                f"{name}: download=true could not fetch it into {where} ({err}). Without "
                f"internet, put torchvision's files there:\n{listing}"
            ) from None
        except (
            pickle.UnpicklingError,
            EOFError,
            KeyError,
            IndexError,
            ValueError,
            TypeError,  # a file that pickles another object (a list) than torchvision's dict
            AttributeError,
        ) as err:
            raise DataError(_corrupt(cls, where / folder, err)) from None
        except RuntimeError as err:
            raise _missing(
                name,
                where,
                listing,
                f'add ARGS="download=true" to fetch it with torchvision (needs internet), or '
                f"put torchvision's files there. `make exp NAME=<method>_digits` runs the same "
                f"pipeline on embedded data. ({err})",
            ) from None
    out = []
    classes = 100 if name == "cifar100" else 10
    for ds, split in zip(sets, ("train", "test"), strict=True):
        x = torch.from_numpy(np.asarray(ds.data))
        x = x if name == "svhn" else x.permute(0, 3, 1, 2)  # SVHN is stored N×C×H×W already
        y = torch.as_tensor(
            np.asarray(ds.labels if name == "svhn" else ds.targets), dtype=torch.int64
        )
        _check_labels(where / folder, split, len(x), y, classes)
        out += [x.contiguous(), y]
    return Source(name, "classification", *out, classes, max_shift=4, flip=name != "svhn")


def _check_labels(folder: Path, split: str, images: int, y: Tensor, classes: int) -> None:
    """One label per image, each a class index in [0, classes)."""
    if len(y) != images:
        raise DataError(f"{folder}: the {split} files hold {images} images but {len(y)} labels")
    bad = ((y < 0) | (y >= classes)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{folder}: {split} sample {i} has label {int(y[i])}, not a class in [0, {classes}) "
            f"({len(bad)} such label(s) in the {split} files)"
        )


def _corrupt(cls, folder: Path, err: Exception) -> str:
    """Name the torchvision file that does not read as its format (`err`: what failed)."""
    if cls is torchvision.datasets.SVHN:
        checks = [(folder / f"{s}_32x32.mat", ("X", "y")) for s in ("train", "test")]
    else:
        label = "fine_labels" if cls is torchvision.datasets.CIFAR100 else "labels"
        checks = [(folder / f, ("data", label)) for f, _ in cls.train_list + cls.test_list]
        checks.append((folder / cls.meta["filename"], (cls.meta["key"],)))
    for path, keys in checks:
        try:
            if path.suffix == ".mat":
                content = loadmat(str(path))
            else:
                with open(path, "rb") as fh:
                    content = pickle.load(fh, encoding="latin1")
            missing = [k for k in keys if k not in content]
        except Exception as bad:
            return f"{path}: not a readable {cls.__name__} file ({type(bad).__name__}: {bad})"
        if missing:
            return f"{path}: {cls.__name__} file without the key(s) {missing}"
    return (
        f"{folder}: the {cls.__name__} files do not read as expected ({type(err).__name__}: {err})"
    )


# -- AFLW (release format) and MTFL --------------------------------------------------------------
AFLW_LAYOUT = """\
  <root>/aflw_train_images.txt    one image path per line, relative to <root>/output/
  <root>/aflw_test_images.txt
  <root>/aflw_train_keypoints.mat  'gt': N×5×2 landmarks, (y, x) in image pixels;
                                   'hw': N×2 image (height, width)
  <root>/aflw_test_keypoints.mat
  <root>/output/…                  the images"""


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the annotation list ({err})") from None


def _read_gray(path: Path, where: str) -> Tensor:
    """A grayscale image as uint8 1×H×W."""
    try:
        with Image.open(path) as img:
            return torch.from_numpy(np.array(img.convert("L")))[None]
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{where}: cannot read image {path} ({err})") from None


def _to_frame(img: Tensor, xy: Tensor, h: float, w: float) -> tuple[Tensor, Tensor]:
    """Resize a grayscale image to 60×60 and move (x, y) landmarks into that frame."""
    img = TF.resize(img, [FACE_SIZE, FACE_SIZE], antialias=True)
    scale = torch.tensor([FACE_SIZE / w, FACE_SIZE / h], dtype=torch.float32)
    return img, (xy * scale).reshape(-1)


def _aflw_split(root: Path, split: str) -> tuple[Tensor, Tensor]:
    listing, mat = root / f"aflw_{split}_images.txt", root / f"aflw_{split}_keypoints.mat"
    for path in (listing, mat):
        if not path.is_file():
            raise _missing(
                "AFLW",
                path,
                AFLW_LAYOUT,
                "request AFLW from its authors and convert it to this release format, or write "
                "the synthetic stand-in with `python -m experiments.synthfaces <root>`. "
                "`make exp NAME=impute_v2_synthfaces` runs the same pipeline on embedded data.",
            )
    names = [ln.strip() for ln in _read_text(listing).splitlines()]
    try:
        content = loadmat(str(mat))
        gt, hw = (
            np.asarray(content["gt"], dtype=np.float64),
            np.asarray(content["hw"], dtype=np.float64),
        )
    except (KeyError, ValueError, OSError, TypeError, MatReadError) as err:  # TypeError: a struct
        what = f"{type(err).__name__}: {err}"
        raise DataError(f"{mat}: expected variables 'gt' (N×5×2) and 'hw' (N×2) ({what})") from None
    if gt.shape[1:] != (5, 2) or hw.shape[1:] != (2,) or not (len(gt) == len(hw) == len(names)):
        raise DataError(
            f"{mat}: 'gt' is {gt.shape}, 'hw' is {hw.shape}, {listing.name} has "
            f"{len(names)} lines; expected gt N×5×2, hw N×2 and N lines"
        )
    images, marks = [], []
    for i, name in enumerate(names):
        if not name:
            raise DataError(f"{listing}:{i + 1}: empty line where an image path is expected")
        row = f"{mat}: row {i + 1} ({name})"
        if not (np.isfinite(gt[i]).all() and np.isfinite(hw[i]).all()):
            raise DataError(f"{row}: non-finite landmarks or size: gt {gt[i].tolist()}, hw {hw[i]}")
        if not (hw[i] > 0).all():
            raise DataError(f"{row}: image size 'hw' must be positive, got {hw[i].tolist()}")
        img = _read_gray(root / "output" / name, f"{listing}:{i + 1}")
        xy = torch.tensor(gt[i][:, ::-1].copy(), dtype=torch.float32)  # (y, x) → (x, y)
        img, xy = _to_frame(img, xy, hw[i, 0], hw[i, 1])
        images.append(img)
        marks.append(xy)
    return torch.stack(images), torch.stack(marks)


def load_aflw(root: str | Path | None = None) -> Source:
    """AFLW in the Learning-to-Impute release format, from `DATA_ROOT/aflw/` (or `root`)."""
    where = Path(root) if root is not None else data_root() / "aflw"
    train_x, train_y = _aflw_split(where, "train")
    test_x, test_y = _aflw_split(where, "test")
    return _landmark_source("aflw", train_x, train_y, test_x, test_y)


MTFL_LAYOUT = """  <root>/training.txt   lines: path x1 … x5 y1 … y5 gender smile glasses pose
  <root>/testing.txt    (path relative to <root>; landmarks in image pixels, order: left eye,
  <root>/<images>        right eye, nose, left mouth corner, right mouth corner)"""


def _mtfl_split(root: Path, listing: Path) -> tuple[Tensor, Tensor]:
    if not listing.is_file():
        raise _missing(
            "MTFL",
            listing,
            MTFL_LAYOUT,
            "download MTFL from its authors' page and unpack it there.",
        )
    images, marks = [], []
    for number, line in enumerate(_read_text(listing).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{listing}:{number}"
        if len(fields) < 11:
            raise DataError(
                f"{where}: expected a path and 10 coordinates, got {len(fields)} fields"
            )
        try:
            coords = [float(v) for v in fields[1:11]]
        except ValueError:
            coords = [math.nan]
        if not all(math.isfinite(v) for v in coords):
            raise DataError(
                f"{where}: coordinates must be finite numbers: {' '.join(fields[1:11])}"
            )
        img = _read_gray(root / fields[0].replace("\\", "/"), where)
        xy = torch.tensor([coords[:5], coords[5:]], dtype=torch.float32).T  # 5×(x, y)
        img, xy = _to_frame(img, xy, img.shape[-2], img.shape[-1])
        images.append(img)
        marks.append(xy)
    if not images:
        raise DataError(f"{listing}: no annotation lines")
    return torch.stack(images), torch.stack(marks)


def load_mtfl(root: str | Path | None = None) -> Source:
    """MTFL (`training.txt`, `testing.txt`) from `DATA_ROOT/mtfl/`; whole images → 60×60."""
    where = Path(root) if root is not None else data_root() / "mtfl"
    train_x, train_y = _mtfl_split(where, where / "training.txt")
    test_x, test_y = _mtfl_split(where, where / "testing.txt")
    return _landmark_source("mtfl", train_x, train_y, test_x, test_y)


IMAGENET_LAYOUT = (
    "  {where}/train/<class>/<image>.JPEG   (one folder per class, torchvision's ImageFolder)\n"
    "  {where}/val/<class>/<image>.JPEG     (validation images sorted into the same folders)"
)


def load_imagenet(root: str | Path | None = None, size: int = 224) -> Source:
    """ImageNet from `DATA_ROOT/imagenet/{train,val}/<class>/…` (ImageFolder layout), images
    left on disk (`ImageFiles`, decoded per batch at `size`×`size`); val is the test set."""
    where = Path(root) if root is not None else data_root() / "imagenet"
    layout = IMAGENET_LAYOUT.format(where=where)
    how = (
        "download ILSVRC2012 from image-net.org (registration needed) and sort the validation "
        "images into class folders (e.g. with the valprep.sh script of PyTorch's ImageNet "
        "example); `make exp NAME=<method>_digits` runs the same methods on embedded data."
    )
    splits = []
    for split in ("train", "val"):
        folder = where / split
        if not folder.is_dir():
            raise _missing("imagenet", folder, layout, how)
        try:
            ds = torchvision.datasets.ImageFolder(str(folder))
        except (FileNotFoundError, OSError) as err:
            raise DataError(f"imagenet: {folder}: {err}\nExpected layout:\n{layout}") from None
        splits.append(ds)
    train, val = splits
    if train.classes != val.classes:
        extra = sorted(set(val.classes) ^ set(train.classes))[:3]
        raise DataError(
            f"imagenet: {where / 'val'} and {where / 'train'} have different class folders "
            f"(e.g. {', '.join(extra)})"
        )

    def files(ds) -> tuple[ImageFiles, Tensor]:
        return ImageFiles(tuple(p for p, _ in ds.samples), size), torch.tensor(ds.targets)

    (train_x, train_y), (test_x, test_y) = files(train), files(val)
    return Source(
        "imagenet",
        "classification",
        train_x,
        train_y,
        test_x,
        test_y,
        num_outputs=len(train.classes),
        max_shift=0,
        flip=True,
        mean=torch.tensor([0.485, 0.456, 0.406]),
        std=torch.tensor([0.229, 0.224, 0.225]),
    )


DATASETS = ("digits", "synthfaces", *_TV, "aflw", "mtfl", "imagenet")


def load(
    name: str, seed: int = 0, download: bool = False, size: str = "full", image_size: int = 224
) -> Source:
    """The source named `name` (digits, synthfaces, cifar10, cifar100, svhn, aflw, mtfl,
    imagenet; `image_size`: ImageNet's crop)."""
    if name == "digits":
        return load_digits(seed=0)
    if name == "synthfaces":
        return load_synthfaces(*((1200, 300) if size == "smoke" else (6000, 1000)), seed=0)
    if name in _TV:
        return load_torchvision(name, download=download)
    if name == "aflw":
        return load_aflw()
    if name == "mtfl":
        return load_mtfl()
    if name == "imagenet":
        return load_imagenet(size=image_size)
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
