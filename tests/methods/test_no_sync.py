"""A meta method's training step reads no value back from the device: the hypergradient's
finiteness is recorded on the device (`MetaMethod.non_finite`, read by the loop at its checks),
fd's ε stays a device scalar. Reads of tensors that live on the CPU by design are allowed: the
Beta draws of the mixups, and the step counter torch's Adam keeps on the CPU (for the
hyperparameter networks)."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch

from experiments import configs
from experiments.build import build
from experiments.config import apply_overrides, smoke

ROOT = str(Path(__file__).resolve().parents[2])
READS = ("__int__", "__bool__", "__float__", "__index__", "item", "tolist", "cpu", "numpy")
CPU_BY_DESIGN = {"methods/ema_mixup.py", "methods/pl_mixup.py"}  # Beta(γ, γ) on the CPU
CASES = [
    ("metagrad_digits", "fd"),
    ("metagrad_digits", "func"),
    ("metasemi_digits", "func"),
    ("metathreshold_digits", "func"),
    ("metaweight_digits", "forward"),
    ("impute_v1_digits", "func"),
    ("impute_v2_mt_digits", "higher"),
]


def _repository_frame() -> str | None:
    """The innermost frame of the repository's own packages in the current stack (None inside
    torch's optimizers, whose step counters live on the CPU)."""
    stack = traceback.extract_stack()[:-2]
    if any("/torch/optim/" in frame.filename for frame in stack):
        return None
    for frame in reversed(stack):
        path = frame.filename
        if path.startswith(ROOT) and "/.venv/" not in path and "/tests/" not in path:
            return f"{path[len(ROOT) + 1 :]}:{frame.lineno}"
    return None


@pytest.mark.parametrize(("name", "estimator"), CASES)
def test_a_meta_training_step_reads_nothing_back(name, estimator, monkeypatch):
    cfg = apply_overrides(smoke(configs.get(name)), [f"estimator={estimator}"])
    run = build(cfg, 0, "smoke")
    run.method.train_step(run.batches(0))  # first-call setup (the EMA's counter, caches)
    batch = run.batches(1)  # built on the host, before the spy
    reads: list[str] = []
    for attr in READS:
        original = getattr(torch.Tensor, attr)

        def spy(self, *args, _original=original, _attr=attr, **kwargs):
            where = _repository_frame()
            if where and where.split(":")[0] not in CPU_BY_DESIGN:
                reads.append(f"{_attr} at {where}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attr, spy)
    run.method.train_step(batch)
    monkeypatch.undo()
    assert reads == []
    assert run.method.non_finite() is None
