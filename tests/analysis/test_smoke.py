"""`make smoke` (analysis.smoke): the rows are derived from the registry and the experiment
files, a refusal by design is told apart from a failure, and a failure sets the exit status."""

from __future__ import annotations

import pandas as pd

from analysis import bench, smoke
from experiments import configs
from methods import METHODS


def test_rows_cover_every_method_on_each_cpu_dataset_and_every_estimator_of_meta_methods():
    names = smoke.experiments()
    pairs = {(configs.get(n).method, configs.get(n).dataset) for n in names}
    assert {m for m, _ in pairs} == set(METHODS)  # every registered method has a row
    assert len(pairs) == len(names)  # one experiment per (method, dataset)
    assert {"impute_mt", "mean_teacher"} <= {m for m, d in pairs if d == "synthfaces"}
    assert smoke.selected(None, False) == names and smoke.selected(["x"], True) == ["x"]
    assert smoke.selected(None, True) == names + list(bench.EXPERIMENTS)
    rows = smoke.runs(["metasemi_digits", "supervised_digits"], ["func", "fd"], ["amp=bf16"])
    assert rows == [
        ("metasemi_digits", "estimator=func"),
        ("metasemi_digits", "estimator=func amp=bf16"),
        ("metasemi_digits", "estimator=fd"),
        ("metasemi_digits", "estimator=fd amp=bf16"),
        ("supervised_digits", ""),
        ("supervised_digits", "amp=bf16"),
    ]


def test_smoke_table_ok_refused_and_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    args = ["--only", "metathreshold_digits", "--estimators", "forward,analytic", "--steps", "2"]
    args += ["--settings", "channels_last=true", "--out", str(tmp_path)]
    assert smoke.main(args) == 0
    frame = pd.read_csv(tmp_path / "smoke.csv")
    forward, analytic = "estimator=forward", "estimator=analytic"
    nhwc = " channels_last=true"
    assert list(frame.setting) == [forward, forward + nhwc, analytic, analytic + nhwc]
    assert list(frame.status) == ["ok", "ok", "refused", "refused"]
    assert frame.message[0] == "ran forward" and "one-layer models only" in frame.message[2]
    assert (frame.ms_per_step[[0, 1]] > 0).all() and not (tmp_path / "runs").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(METHODS["meta_threshold"], "meta_step", broken)  # fails while training
    assert smoke.main(args) == 1
    frame = pd.read_csv(tmp_path / "smoke.csv")
    assert list(frame.status) == ["FAILED", "FAILED", "refused", "refused"]
    assert frame.message[0].startswith("RuntimeError: boom (test_smoke.py:")


def test_paper_size_experiments_run_on_stand_in_data(tmp_path, monkeypatch):
    """`--paper` (the default on CUDA) adds `make bench`'s experiments; without the datasets
    they run on stand-ins in the real formats (here CNN-13 on random CIFAR-10 files)."""
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "none"))
    args = ["--only", "metagrad_cifar10", "--estimators", "fd", "--settings", "--steps", "2"]
    assert smoke.main([*args, "--out", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "smoke.csv")
    assert list(frame.status) == ["ok"] and frame.message[0] == "ran fd"
