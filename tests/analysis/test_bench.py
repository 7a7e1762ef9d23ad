"""`make bench` (analysis.bench): one paper experiment at a tiny batch scale on stand-in data in
CIFAR-10's format, with the columns docs/bench.md quotes and a ratio that is step / base."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from analysis import bench
from experiments import configs


def test_bench_writes_the_table_with_ratios_to_the_base(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "none"))  # no data: stand-ins are written
    args = ["--only", "metagrad_cifar10", "--scale", "0.03", "--repeats", "2", "--warmup", "0"]
    args += ["--estimators", "forward,auto", "--set", "model.width=8", "--out", str(tmp_path)]
    bench.main(args)
    frame = pd.read_csv(tmp_path / "bench.csv")
    columns = ["experiment", "method", "estimator", "device", "batch", "step_ms", "base_step_ms"]
    columns += ["ratio_vs_base", "data_ms", "data_wait_share", "hypergrad_ms"]
    assert set(columns) <= set(frame.columns)
    assert list(frame.method) == ["pl_mixup"] + ["meta_gradient"] * 3
    assert list(frame.estimator) == ["-", "fd (default)", "forward", "auto → forward"]
    assert (frame.batch == "4+4×1").all() and (frame.data == "random images, CIFAR-10 format").all()
    assert frame.ratio_vs_base.tolist() == pytest.approx(frame.step_ms / frame.base_step_ms)
    assert ((frame.data_wait_share >= 0) & (frame.data_wait_share < 1)).all()
    # the base has no hypergradient; a meta step's hypergradient is part of its step
    assert frame.hypergrad_ms[0] == 0 and (frame.hypergrad_ms[1:] > 0).all()
    assert (frame.hypergrad_ms < frame.step_ms).all()
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert (tmp_path / "bench.md").read_text().startswith("batch scale 0.03")


def test_the_base_of_a_meta_experiment_is_its_config_with_the_base_method():
    cfg = configs.get("metathreshold_cifar10")
    base = configs.base_config(cfg)
    assert base.method == "fixmatch" and base.batch_size == 32 and base.model == "wrn28"
    assert set(base.method_kw) <= {"weight", "threshold", "temperature"}


@pytest.mark.parametrize("k, expected", [(1, 1000.0), (2, 3000.0)])
def test_green_meta_t_steps_count_in_their_proportion(k, expected):
    """One meta step every k: the per-step time is the median over k-step cycles of their mean
    (with k = 2 and steps of 1 s and 5 s alternating, 3 s; a plain median would say 1 s)."""
    timer = object.__new__(bench.Timer)
    timer.run = SimpleNamespace(method=SimpleNamespace(cfg=SimpleNamespace(k=k)))
    assert timer.per_step([1.0, 5.0, 1.0, 5.0, 1.0]) == pytest.approx(expected)
    assert "metathreshold_green_cifar10" in bench.EXPERIMENTS
