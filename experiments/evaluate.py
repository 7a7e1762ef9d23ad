"""Evaluation of a model on a data part: error % (classes), NME % and failure rate (landmarks)."""

from __future__ import annotations

import torch

from methods.base import training_mode
from methods.task import Task

from .data import BatchMaker, Part
from .imagefolder import as_tensor
from .metrics import error_percent, landmark_metrics


def primary_metric(task: Task) -> str:
    return "error" if task.kind == "classification" else "nme"


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, part: Part, batches: BatchMaker, limit: int = 0, chunk: int = 500
) -> dict[str, float]:
    """Metrics of `model` in eval mode on (the first `limit` samples of) `part`."""
    n = len(part) if limit <= 0 else min(limit, len(part))
    x = part.x[:n]  # image files are decoded chunk by chunk (`as_tensor`: resize, centre crop)
    with training_mode(model, False):
        outs = [
            model(batches.normalise(as_tensor(x[i : i + chunk]))).cpu() for i in range(0, n, chunk)
        ]
    out, y = torch.cat(outs), part.y[:n]
    task = batches.data.task
    if task.kind == "classification":
        return {"error": error_percent(out, y)}
    return landmark_metrics(task.to_pixels(out.double()), y.double())
