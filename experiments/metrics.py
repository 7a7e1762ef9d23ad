"""Evaluation metrics.

Classification: top-1 error in %.
Landmarks (Learning-to-Impute authors' protocol): per image, the mean Euclidean error of the 5
points divided by the distance between landmarks 0 and 1 (the eye centres); NME is its average
over images in %, the failure rate the share of images whose normalised error exceeds 0.1, in %.
Landmark tensors are interleaved (x1, y1, …, x5, y5) in pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor


def error_percent(logits: Tensor, labels: Tensor) -> float:
    return 100.0 * float((logits.argmax(1) != labels).double().mean())


def normalised_errors(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean point error / inter-ocular distance (landmarks 0 and 1)."""
    p, t = pred.reshape(len(pred), -1, 2), target.reshape(len(target), -1, 2)
    per_point = (p - t).norm(dim=2).mean(dim=1)
    inter_ocular = (t[:, 0] - t[:, 1]).norm(dim=1)
    if (inter_ocular <= 0).any():
        raise ValueError("a target has coincident eye landmarks (inter-ocular distance 0)")
    return per_point / inter_ocular


def landmark_metrics(pred: Tensor, target: Tensor, threshold: float = 0.1) -> dict[str, float]:
    err = normalised_errors(pred.double(), target.double())
    return {
        "nme": 100.0 * float(err.mean()),
        "failure_rate": 100.0 * float((err > threshold).double().mean()),
    }


def summarise(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0
