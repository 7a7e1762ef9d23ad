"""`make sweep` (analysis.sweep): grids, the local submitit executor, skipping finished runs,
and a job stopped by SIGTERM that requeues itself and ends with an uninterrupted run's numbers."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import replace

import pytest
import submitit
import torch

from analysis.sweep import (
    Settings,
    TrainJob,
    dispatch,
    expand,
    grid,
    main,
    make_executor,
    run_missing,
)
from experiments.config import ConfigError
from experiments.run import Run
from tests.experiments.test_train import _comparable


def test_grid_is_the_product_of_its_keys():
    assert grid("estimator=func,fd num_labels=20,50") == [
        ("estimator=func", "num_labels=20"),
        ("estimator=func", "num_labels=50"),
        ("estimator=fd", "num_labels=20"),
        ("estimator=fd", "num_labels=50"),
    ]
    assert grid("") == [()]
    runs = expand("supervised_digits", [0, 1], "lr=0.1,0.2", ("steps=5",))
    assert [(r.overrides, r.seed) for r in runs] == [
        (("steps=5", "lr=0.1"), 0),
        (("steps=5", "lr=0.1"), 1),
        (("steps=5", "lr=0.2"), 0),
        (("steps=5", "lr=0.2"), 1),
    ]
    with pytest.raises(ConfigError, match="grid: 'lr' is not key=value"):
        grid("lr")


def test_a_bad_setting_stops_the_sweep_before_any_job(tmp_path):
    runs = [replace(r, root=tmp_path) for r in expand("supervised_digits", [0], "lr=0.1,-1")]
    with pytest.raises(ConfigError, match="lr"):
        dispatch(runs, Settings(folder=tmp_path / "jobs"))
    assert not (tmp_path / "jobs").exists()


def test_local_executor_runs_the_grid_and_skips_finished_runs(tmp_path, capsys, monkeypatch):
    args = ["supervised_digits", "--scale", "smoke", "--grid", "lr=0.1,0.05", "steps=30"]
    root = tmp_path / "runs"
    monkeypatch.setenv("RUNS_ROOT", str(root))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 runs, 0 finished, 2 to submit" in out and out.count("    log ") == 2
    for lr in ("0.1", "0.05"):
        run = Run("supervised_digits", 0, "smoke", ("steps=30", f"lr={lr}"), root)
        summary = json.loads((run.path / "summary.json").read_text())
        row = rf"supervised_digits\+lr={lr}\+steps=30 +\| +0 \| done +\| test/error \| +"
        assert re.search(row + f"{summary['final']['test/error']:g}", out), out
    assert main(args) == 0
    assert "2 runs, 2 finished, 0 to submit" in capsys.readouterr().out


def test_a_job_stopped_by_sigterm_requeues_and_resumes_to_identical_numbers(tmp_path):
    run = Run("supervised_digits", 0, "smoke", ("steps=1500", "eval_every=100"), tmp_path / "runs")
    executor = make_executor(Settings(folder=tmp_path / "jobs"))
    job = executor.submit(TrainJob(run, tmp_path / "data"))
    ckpt = run.path / "ckpt.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and not job.done():
        time.sleep(0.05)
    assert not job.done(), "the run ended before it could be stopped"
    job._process.send_signal(signal.SIGTERM)  # the controller forwards it to the job
    summary = job.result()
    log = job.paths.stdout.read_text()
    assert re.search(r"stopped by SIGTERM: checkpoint written at step \d+ .*; requeueing", log)
    assert summary["resumes"] == 1
    whole = replace(run, root=tmp_path / "whole")
    whole.ensure(progress=False)
    assert _comparable(ckpt.parent) == _comparable(whole.path)
    assert torch.load(ckpt, weights_only=False)["step"] == 1500


def test_a_failed_job_is_named_with_its_error_and_log(tmp_path, monkeypatch):
    """The check commands' EXECUTOR path: a job that fails (no CIFAR-10 under DATA_ROOT) ends
    the command with exit 1 naming the run, the job's last error line and its log."""
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "nodata"))
    runs = [Run("fixmatch_cifar10", 0, "smoke", ("steps=2",))]
    with pytest.raises(SystemExit) as info:
        run_missing(runs, "local", 1)
    message = str(info.value.code)
    assert message.startswith("error: 1 jobs failed:\n  fixmatch_cifar10+steps=2 seed 0: failed:")
    assert "failed: DataError: cifar10 not found at " in message and "_log.err)" in message
    run_missing(runs, None)  # no executor: nothing is dispatched


def test_slurm_settings_reach_the_batch_script(tmp_path, monkeypatch):
    """Partition, GPUs, CPUs, time limit and the array's parallelism go into the sbatch script;
    without srun, EXECUTOR=slurm is a one-line error."""
    settings = Settings("slurm", 3, "gpu", 2, 10, 90, tmp_path)
    with pytest.raises(ConfigError, match="EXECUTOR=slurm: srun is not on this machine"):
        make_executor(settings)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = make_executor(settings)
    script = executor._make_submission_file_text("CMD", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=2", "--cpus-per-task=10", "--time=90"):
        assert f"#SBATCH {line}" in script, script
    assert "--signal=USR2@120" in script and executor.parameters["array_parallelism"] == 3


def test_a_job_whose_run_another_process_holds_says_so(tmp_path, monkeypatch):
    """Two sweeps over one grid: the job that finds its run locked fails with the reason (the
    run is in use by that process, which finishes it), not submitit's generic line."""
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    run = Run("supervised_digits", 0, "smoke", ("steps=2",), tmp_path / "runs")
    path = run.path
    with run.dir.lock(), pytest.raises(SystemExit) as info:
        run_missing([run], "local", 1)
    message = str(info.value.code)
    assert f"failed: RunLocked: {path} is in use by pid {os.getpid()}" in message
