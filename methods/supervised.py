"""Supervised baseline: the labeled loss only."""

from __future__ import annotations

from .base import Batch, Method


class Supervised(Method):
    name = "supervised"
    views = ()  # no unlabeled data

    def loss(self, batch: Batch):
        return self.task.supervised(self.model(batch.x), batch.y, self.shard), {}
