"""Tasks: classification (cross-entropy, error %) and landmark regression (MSE on standardised
coordinates, NME %). Methods write their losses against a task, so one method file serves both."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bilevel import Shard
from bilevel.parallel import LOCAL


class Task:
    kind: str = "classification"

    def supervised(self, out: Tensor, y: Tensor, shard: Shard = LOCAL) -> Tensor:
        """Mean cross-entropy with class indices (data parallel: this rank's part of the mean
        over the global batch, `bilevel.parallel`)."""
        if shard.parallel:
            return shard.mean(F.cross_entropy(out, y, reduction="none"))
        return F.cross_entropy(out, y)

    def prediction(self, out: Tensor) -> Tensor:
        """What consistency compares: class probabilities."""
        return out.softmax(1)

    def consistency_per_sample(self, out: Tensor, target: Tensor) -> Tensor:
        """‖softmax(out) − target‖² per sample (Mean Teacher / Meta-Gradient)."""
        return (out.softmax(1) - target).pow(2).sum(1)

    def consistency(self, out: Tensor, target: Tensor, shard: Shard = LOCAL) -> Tensor:
        """Mean over samples of `consistency_per_sample`."""
        return shard.mean(self.consistency_per_sample(out, target))

    def transfer(
        self, pred: Tensor, src_offsets: Tensor | None, dst_offsets: Tensor | None
    ) -> Tensor:
        """A prediction on one view expressed in another view's frame (identity for classes)."""
        return pred


class LandmarkTask(Task):
    """Targets are landmarks standardised per coordinate with the labeled set's mean and std."""

    kind = "landmarks"

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        self.mean, self.std = mean, std

    def supervised(self, out: Tensor, y: Tensor, shard: Shard = LOCAL) -> Tensor:
        """Mean squared error over samples and coordinates."""
        if shard.parallel:
            return shard.mean(F.mse_loss(out, y, reduction="none"))
        return F.mse_loss(out, y)

    def prediction(self, out: Tensor) -> Tensor:
        return out

    def consistency_per_sample(self, out: Tensor, target: Tensor) -> Tensor:
        """Mean squared error over the coordinates of each sample."""
        return (out - target).pow(2).mean(1)

    def standardise(self, pixels: Tensor) -> Tensor:
        return (pixels - self.mean.to(pixels)) / self.std.to(pixels)

    def to_pixels(self, standard: Tensor) -> Tensor:
        return standard * self.std.to(standard) + self.mean.to(standard)

    def transfer(
        self, pred: Tensor, src_offsets: Tensor | None, dst_offsets: Tensor | None
    ) -> Tensor:
        """Move standardised landmarks predicted on view `src` into view `dst`'s frame."""
        if src_offsets is None or dst_offsets is None:
            return pred
        shift = (dst_offsets - src_offsets).to(pred.dtype).repeat(1, pred.shape[1] // 2)
        return pred + shift / self.std.to(pred)


def one_hot(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    return F.one_hot(y, num_classes).to(like.dtype)


def soft_cross_entropy(out: Tensor, target: Tensor) -> Tensor:
    """Per-sample −Σ_c t_c log softmax(out)_c."""
    return -(target * torch.log_softmax(out, 1)).sum(1)
