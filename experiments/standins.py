"""Stand-in data in the real on-disk formats, for benchmarks and tests where the datasets are not
available: random images written as torchvision's CIFAR-10 batches (the AFLW format's stand-in is
`experiments.synthfaces.write_aflw`). They go through the real loaders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar10(root: str | Path, n: int, n_test: int | None = None, seed: int = 0) -> dict:
    """`n` random 32×32 images per training batch file (5 files) and `n_test` (default `n`) in
    `test_batch`, labels uniform over 10 classes, under `root/cifar10/cifar-10-batches-py/`.
    Returns {file name: (data, labels)}."""
    base = Path(root) / "cifar10" / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        count = n if name != "test_batch" or n_test is None else n_test
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, count).tolist()
        written[name] = (data, labels)
        with open(base / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    return written
