"""The shared loop: smoke runs of every embedded experiment, run directory, determinism, resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from experiments import checkpoint, configs
from experiments.__main__ import main as exp_main
from experiments.build import build
from experiments.config import ConfigError, apply_overrides, smoke
from experiments.errors import Diverged, Stopped
from experiments.rundir import RunDir
from experiments.standins import write_cifar10
from experiments.stop import StopRequest
from experiments.train import train
from methods.mixup import Mixup

EMBEDDED = [n for n in configs.names() if n.endswith(("_digits", "_synthfaces"))]
TIMING = {"wall_time_s", "steps_per_s", "resumes"}  # how a run went, not what it computed


def _rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _comparable(run: Path):
    rows = [r for r in _rows(run / "metrics.csv") if r["split"] != "time"]
    summary = json.loads((run / "summary.json").read_text())
    return rows, {k: v for k, v in summary.items() if k not in TIMING}


@pytest.mark.parametrize("name", EMBEDDED)
def test_smoke_run(name, tmp_path):
    cfg = smoke(configs.get(name))
    summary = train(cfg, seed=0, scale="smoke", root=tmp_path, progress=False)
    run = tmp_path / name / "seed0"
    expected = [".lock", "ckpt.prev.pt", "ckpt.pt", "config.json", "metrics.csv", "summary.json"]
    expected.append("tb")  # TensorBoard event files
    if cfg.snapshots:
        expected.insert(5, "snapshots")
        assert [p.name for p in sorted((run / "snapshots").iterdir())] == [
            "step0000015.pt",
            "step0000030.pt",
        ]
    assert sorted(p.name for p in run.iterdir()) == expected
    config = json.loads((run / "config.json").read_text())
    assert config["name"] == name and config["steps"] == cfg.steps and config["seed"] == 0
    rows = _rows(run / "metrics.csv")
    assert list(rows[0]) == ["step", "split", "metric", "value"]
    assert {r["split"] for r in rows} >= {"train", "val", "test", "time"}
    assert summary["primary"] in summary["final"] and summary["steps_per_s"] > 0
    assert summary["best"]["step"] in (15, 30)


def test_same_seed_same_numbers_and_config_conflict(tmp_path):
    cfg = smoke(configs.get("mixup_digits"))
    train(cfg, 0, "smoke", root=tmp_path / "a", progress=False)
    train(cfg, 0, "smoke", root=tmp_path / "b", progress=False)
    assert _comparable(tmp_path / "a/mixup_digits/seed0") == _comparable(
        tmp_path / "b/mixup_digits/seed0"
    )
    train(cfg, 1, "smoke", root=tmp_path / "a", progress=False)
    assert _comparable(tmp_path / "a/mixup_digits/seed1") != _comparable(
        tmp_path / "a/mixup_digits/seed0"
    )
    other = apply_overrides(cfg, ["lr=0.5"])
    with pytest.raises(
        ConfigError, match=r"holds a run with a different config \(differs in \['lr'\]\)"
    ):
        train(other, 0, "smoke", root=tmp_path / "a", progress=False)


def test_interrupted_run_resumes_to_identical_numbers(tmp_path, monkeypatch):
    """Interrupted between checkpoints (step 25 of 40, checkpoints every 10), the rerun resumes
    from step 20 and ends with the numbers of an uninterrupted run."""
    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=40", "eval_every=10"])
    train(cfg, 0, "smoke", root=tmp_path / "whole", progress=False)

    original = Mixup.train_step

    def dies_at_25(self, batch):
        if batch.step == 25:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Mixup, "train_step", dies_at_25)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    run = tmp_path / "cut/mixup_digits/seed0"
    assert not (run / "summary.json").exists()
    assert max(int(r["step"]) for r in _rows(run / "metrics.csv")) == 20
    monkeypatch.setattr(Mixup, "train_step", original)
    summary = train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    assert summary["resumes"] == 1  # its wall time lacks the lost steps 21-25, and says so
    assert summary["threads"] == torch.get_num_threads()  # the numbers depend on it on CPU
    assert _comparable(run) == _comparable(tmp_path / "whole/mixup_digits/seed0")
    assert _events(run) == _events(tmp_path / "whole/mixup_digits/seed0") == _csv_scalars(run)


def _events(run: Path) -> dict[str, list[tuple[int, float]]]:
    """The TensorBoard scalars of a run, by tag: (step, value) (time rows left out)."""
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return {
        tag: [(e.step, pytest.approx(e.value, rel=1e-6)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
        if not tag.startswith("time/")
    }


def _csv_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list] = {}
    for r in _rows(run / "metrics.csv"):
        if r["split"] != "time":
            out.setdefault(f"{r['split']}/{r['metric']}", []).append(
                (int(r["step"]), float(r["value"]))
            )
    return out


def test_events_written_before_a_lost_checkpoint_are_purged_on_resume(tmp_path, monkeypatch):
    """Killed after step 30's events but before its checkpoint: the rerun resumes from step 20
    and TensorBoard shows step 30 once, with the resumed run's values."""
    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=40", "eval_every=10"])
    train(cfg, 0, "smoke", root=tmp_path / "whole", progress=False)
    original = checkpoint.save

    def dies_at_30(rundir, state):
        if state["step"] == 30:
            raise KeyboardInterrupt
        return original(rundir, state)

    monkeypatch.setattr(checkpoint, "save", dies_at_30)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    monkeypatch.setattr(checkpoint, "save", original)
    train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    assert _events(tmp_path / "cut/mixup_digits/seed0") == _events(
        tmp_path / "whole/mixup_digits/seed0"
    )


def test_tensorboard_false_writes_no_event_files(tmp_path):
    cfg = apply_overrides(
        smoke(configs.get("supervised_digits")), ["steps=10", "tensorboard=false"]
    )
    train(cfg, 0, "smoke", root=tmp_path, progress=False)
    run = tmp_path / "supervised_digits/seed0"
    assert (run / "summary.json").is_file() and not (run / "tb").exists()


def test_a_stop_request_checkpoints_the_step_and_the_rerun_resumes_there(tmp_path, monkeypatch):
    """A stop requested during step 25 (checkpoints every 10): a checkpoint at step 25 with the
    log sums since step 20, and the rerun trains steps 26-40 only, ending with the numbers of an
    uninterrupted run (metrics rows included)."""
    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=40", "eval_every=10"])
    train(cfg, 0, "smoke", root=tmp_path / "whole", progress=False)
    original, stop, trained = Mixup.train_step, StopRequest(), []

    def stop_at_25(self, batch):
        trained.append(batch.step)
        if batch.step == 24:
            stop.request(signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(Mixup, "train_step", stop_at_25)
    with pytest.raises(Stopped, match="stopped by SIGTERM: checkpoint written at step 25") as info:
        train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False, stop=stop)
    run = tmp_path / "cut/mixup_digits/seed0"
    assert info.value.step == 25 and torch.load(run / "ckpt.pt", weights_only=False)["step"] == 25
    trained.clear()
    summary = train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    assert trained == list(range(25, 40)) and summary["resumes"] == 1
    assert _comparable(run) == _comparable(tmp_path / "whole/mixup_digits/seed0")


def test_a_run_whose_loss_turns_nan_stops_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=40", "eval_every=10"])
    original = Mixup.train_step

    def nan_from_25(self, batch):  # a second optimizer step's loss counts too
        logs = original(self, batch)
        return {**logs, "loss_2": float("nan")} if batch.step >= 25 else logs

    monkeypatch.setattr(Mixup, "train_step", nan_from_25)
    run = tmp_path / "mixup_digits/seed0"
    pattern = r"not finite at step 26 \(.*loss_2=nan.*\)\. .*last checkpoint \(step 20\)"
    with pytest.raises(Diverged, match=pattern):
        train(cfg, 0, "smoke", root=tmp_path, progress=False)
    assert not (run / "summary.json").exists()
    assert max(int(r["step"]) for r in _rows(run / "metrics.csv")) == 20


def test_make_exp_reports_a_diverged_run_without_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    rc = exp_main(["pseudo_label_digits", "--scale", "smoke", "--quiet", "lr=1e30"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "error: pseudo_label_digits seed 0: the training loss is" in err
    assert "no checkpoint" in err and "try a lower lr" in err and "Traceback" not in err


def test_a_meta_step_on_a_diverged_model_stops_the_run(tmp_path, monkeypatch, capsys):
    """Non-finite imputed targets (the model diverged in the iteration's first step) stop the
    run with the divergence message, not a traceback from the hypergradient."""
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    args = ["impute_v1_digits", "method.protocol=authors", "lr=1e30"]
    rc = exp_main([*args, "--scale", "smoke", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "a meta step met non-finite values at step 1 (hparams['p'] has non-finite" in err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_process_resumes(tmp_path, sig):
    """Kill `python -m experiments` after its first checkpoint, then run the same command.
    SIGKILL loses the steps after that checkpoint; SIGTERM writes one at the step it is in,
    says so and exits 143."""
    env = {**os.environ, "RUNS_ROOT": str(tmp_path / "runs")}
    cmd = [
        sys.executable,
        "-m",
        "experiments",
        "supervised_digits",
        "--scale",
        "smoke",
        "--quiet",
        "steps=1500",
        "eval_every=100",
    ]
    run = "supervised_digits+eval_every=100+steps=1500+smoke"
    ckpt = tmp_path / "runs" / run / "seed0/ckpt.pt"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    err = proc.communicate()[1].decode()
    assert proc.returncode == (-sig if sig == signal.SIGKILL else 143), err
    assert not (ckpt.parent / "summary.json").exists()
    if sig == signal.SIGTERM:
        step = torch.load(ckpt, weights_only=False)["step"]
        assert f"stopped by SIGTERM: checkpoint written at step {step} in " in err
        assert f"resumes from step {step}." in err
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    env["RUNS_ROOT"] = str(tmp_path / "whole")
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert _comparable(ckpt.parent) == _comparable(tmp_path / "whole" / run / "seed0")


def test_run_dir_accepts_settings_added_later_at_their_default(tmp_path):
    from experiments.config import as_dict, config_defaults

    cfg = {**as_dict(configs.get("metasemi_digits")), "seed": 0, "scale": "full"}
    old = {k: v for k, v in cfg.items() if k != "estimator_options"}  # written by an older version
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "config.json").write_text(json.dumps(old))
    run.start(cfg, config_defaults())  # the new key holds its default: the same run
    changed = {**cfg, "estimator_options": {"fd": {"r": 0.1}}}
    with pytest.raises(ConfigError, match="differs in \\['estimator_options'\\]"):
        run.start(changed, config_defaults())


def test_restore_from_a_snapshot_gives_the_logged_numbers(tmp_path):
    """A snapshot rebuilt by `restore` evaluates to the metrics logged at its step."""
    from experiments.checkpoint import restore, snapshots
    from experiments.evaluate import evaluate

    cfg = smoke(configs.get("metathreshold_digits"))
    train(cfg, 0, "smoke", root=tmp_path, progress=False)
    path = tmp_path / cfg.name / "seed0"
    (step, first), _ = snapshots(RunDir(path))
    _, run = restore(path, first)
    logged = {
        r["metric"]: float(r["value"])
        for r in _rows(path / "metrics.csv")
        if int(r["step"]) == step and r["split"] == "test"
    }
    error = evaluate(run.model, run.data.test, run.batches, cfg.eval_limit)["error"]
    assert error == logged["error"]
    with pytest.raises(FileNotFoundError, match="is not a run directory"):
        restore(tmp_path)


def _cut_at(monkeypatch, step):
    """Make Mixup's training stop at `step` (as a kill would); returns the undo."""
    original = Mixup.train_step

    def dies(self, batch):
        if batch.step == step:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Mixup, "train_step", dies)
    return lambda: monkeypatch.setattr(Mixup, "train_step", original)


def _whole_and_cut(tmp_path, monkeypatch):
    """A 40-step mixup run trained whole under tmp_path/whole, and the same run cut at step 25
    under tmp_path/cut (checkpoints at steps 10 and 20): (config, the cut run's directory)."""
    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=40", "eval_every=10"])
    train(cfg, 0, "smoke", root=tmp_path / "whole", progress=False)
    undo = _cut_at(monkeypatch, 25)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    undo()
    return cfg, tmp_path / "cut/mixup_digits/seed0"


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch, capsys):
    cfg, run = _whole_and_cut(tmp_path, monkeypatch)
    ckpt = run / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # torn latest checkpoint
    train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    err = capsys.readouterr().err
    assert f"{ckpt} is unreadable" in err and "ckpt.prev.pt (step 10)" in err
    assert _comparable(run) == _comparable(tmp_path / "whole/mixup_digits/seed0")
    assert not list(run.glob(".*.tmp"))


def test_unreadable_checkpoints_stop_with_the_paths(tmp_path):
    cfg = smoke(configs.get("mixup_digits"))
    run = tmp_path / "mixup_digits/seed0"
    train(cfg, 0, "smoke", root=tmp_path, progress=False)
    for name in ("ckpt.pt", "ckpt.prev.pt"):
        (run / name).write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"ckpt.pt is unreadable .*ckpt.prev.pt is unreadable"):
        train(cfg, 0, "smoke", root=tmp_path, progress=False)


def test_another_seeds_checkpoint_is_refused(tmp_path):
    cfg = smoke(configs.get("mixup_digits"))
    train(cfg, 1, "smoke", root=tmp_path, progress=False)
    seed0 = tmp_path / "mixup_digits/seed0"
    seed0.mkdir()
    (seed0 / "ckpt.pt").write_bytes((tmp_path / "mixup_digits/seed1/ckpt.pt").read_bytes())
    with pytest.raises(ConfigError, match=r"belongs to another run: seed=1 \(this run: 0\)"):
        train(cfg, 0, "smoke", root=tmp_path, progress=False)
    assert not (seed0 / "summary.json").exists()


def test_a_second_writer_is_stopped_with_the_holders_pid(tmp_path):
    from experiments.rundir import RunLocked

    cfg = smoke(configs.get("mixup_digits"))
    holder = RunDir.for_run("mixup_digits", 0, tmp_path).lock()
    with holder, pytest.raises(RunLocked, match=rf"is in use by pid {os.getpid()} on host"):
        train(cfg, 0, "smoke", root=tmp_path, progress=False)
    train(cfg, 0, "smoke", root=tmp_path, progress=False)  # free again


def test_two_processes_on_one_run_directory(tmp_path):
    """Started together, one trains and the other stops with a message; no torn files."""
    env = {**os.environ, "RUNS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "experiments", "mixup_digits", "--scale", "smoke", "--quiet"]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) in ([0, 0], [0, 2])  # 0, 0: one finished first
    for rc, err in results:
        if rc == 2:
            assert "is in use by pid" in err and "Traceback" not in err
    run = tmp_path / "mixup_digits+smoke/seed0"
    assert json.loads((run / "summary.json").read_text())["steps"] == 30
    assert not list(run.glob(".*.tmp"))


def test_a_full_disk_stops_the_run_with_the_error_and_leaves_it_resumable(
    tmp_path, monkeypatch, capsys
):
    """ENOSPC while the step-20 checkpoint is written: exit 2 naming the error, no temp file,
    metrics.csv not ahead of the checkpoint on disk, and the rerun ends as an uninterrupted run."""
    import errno

    from experiments import rundir

    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=40", "eval_every=10"])
    train(cfg, 0, "smoke", root=tmp_path / "whole", progress=False)
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "full"))
    original, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 4:  # config.json, ckpt 10, metrics 10, then the checkpoint of step 20
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd)

    monkeypatch.setattr(rundir.os, "fsync", fsync)
    args = ["mixup_digits", "--scale", "smoke", "--quiet", "steps=40", "eval_every=10"]
    assert exp_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [Errno 28] No space left on device") and "Traceback" not in err
    run = tmp_path / "full/mixup_digits+eval_every=10+steps=40+smoke/seed0"
    assert not list(run.glob(".*.tmp"))
    assert max(int(r["step"]) for r in _rows(run / "metrics.csv")) == 10  # the checkpoint's
    monkeypatch.setattr(rundir.os, "fsync", original)
    assert exp_main(args) == 0
    rows, summary = _comparable(run)
    whole_rows, whole = _comparable(tmp_path / "whole/mixup_digits/seed0")
    assert rows == whole_rows and {**summary, "run": whole["run"]} == whole


def test_worker_processes_change_no_number_and_a_run_resumes_with_other_workers(
    tmp_path, monkeypatch
):
    """Batches built ahead by 2 workers train to the numbers of in-process batches; a run cut at
    step 25 with workers resumes without them (workers is a runtime setting) to the same end."""
    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=40", "eval_every=10"])
    train(cfg, 0, "smoke", root=tmp_path / "here", progress=False)
    ahead = apply_overrides(cfg, ["workers=2"])
    train(ahead, 0, "smoke", root=tmp_path / "ahead", progress=False)
    assert _comparable(tmp_path / "ahead/mixup_digits/seed0") == _comparable(
        tmp_path / "here/mixup_digits/seed0"
    )
    undo = _cut_at(monkeypatch, 25)
    with pytest.raises(KeyboardInterrupt):
        train(ahead, 0, "smoke", root=tmp_path / "cut", progress=False)
    undo()
    train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    assert _comparable(tmp_path / "cut/mixup_digits/seed0") == _comparable(
        tmp_path / "here/mixup_digits/seed0"
    )


def test_divergence_is_read_at_a_bounded_interval_and_names_the_first_bad_step(
    tmp_path, monkeypatch
):
    """Logs stay on the device; with evaluations far apart the loss is still checked every
    CHECK_EVERY steps, and the message names the step it first went non-finite."""
    from experiments.train import CHECK_EVERY

    cfg = apply_overrides(smoke(configs.get("mixup_digits")), ["steps=200", "eval_every=200"])
    original, seen = Mixup.train_step, []

    def nan_from_61(self, batch):
        seen.append(batch.step)
        logs = original(self, batch)
        return {**logs, "loss": logs["loss"] * float("nan")} if batch.step >= 60 else logs

    monkeypatch.setattr(Mixup, "train_step", nan_from_61)
    with pytest.raises(Diverged, match=r"not finite at step 61 \(.*loss=nan.*no checkpoint"):
        train(cfg, 0, "smoke", root=tmp_path, progress=False)
    assert max(seen) + 1 == 2 * CHECK_EVERY  # read at step 100, not at every step


def _exp(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNS_ROOT": str(tmp)}
    cmd = [sys.executable, "-m", "experiments", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_two_processes_train_one_run_and_resume_after_sigterm(tmp_path):
    """`--nproc 2` (make exp NPROC=2): rank 0 alone writes, the numbers are those of one
    process up to float32 rounding, and a run stopped by SIGTERM resumes to the numbers of an
    uninterrupted 2-process run."""
    args = ["metathreshold_digits", "--scale", "smoke", "--quiet", "--nproc", "2"]
    args += ["steps=300", "eval_every=100", "batch_size=8", "unlabeled_batch=16"]
    whole = _exp(tmp_path / "whole", *args)
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["nproc"] == 2
    run = "metathreshold_digits+batch_size=8+eval_every=100+steps=300+unlabeled_batch=16+smoke"
    ref = tmp_path / "whole" / run / "seed0"
    rows = _rows(ref / "metrics.csv")
    assert len(rows) == len({(r["step"], r["split"], r["metric"]) for r in rows})  # one writer
    one = _exp(tmp_path / "one", *args[:-6], *args[-4:])
    assert one.returncode == 0, one.stderr
    for a, b in zip(
        _rows(ref / "metrics.csv"),
        _rows(tmp_path / "one" / run / "seed0" / "metrics.csv"),
        strict=True,
    ):
        assert (a["step"], a["metric"]) == (b["step"], b["metric"])
        if a["split"] != "time":
            assert float(a["value"]) == pytest.approx(float(b["value"]), rel=1e-4, abs=1e-5), a

    env = {**os.environ, "RUNS_ROOT": str(tmp_path / "cut")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments", *args], env=env, stderr=subprocess.PIPE, text=True
    )
    ckpt = tmp_path / "cut" / run / "seed0" / "ckpt.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate()[1]
    assert proc.returncode == 143, err
    assert err.count("stopped by SIGTERM") == 1, err  # rank 0 alone speaks
    resumed = _exp(tmp_path / "cut", *args)
    assert resumed.returncode == 0, resumed.stderr
    assert _comparable(ckpt.parent) == _comparable(ref)


def test_batches_that_do_not_split_over_the_processes_are_refused(tmp_path):
    out = _exp(tmp_path, "fixmatch_digits", "--scale", "smoke", "--nproc", "2", "batch_size=33")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: batch_size: 33 does not split over 2 processes; the batch sizes are the global "
        "ones, so each must be a multiple of the number of processes"
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "name, extra",
    [
        ("metathreshold_digits", []),
        ("metathreshold_digits", ["estimator=fd"]),  # fd leaves autocast for its evaluations
        ("impute_v2_mt_digits", []),
        ("metagrad_digits", []),
    ],
)
def test_amp_bf16_trains_with_the_losses_in_bfloat16(tmp_path, name, extra):
    """amp=bf16: the same run with the losses and the meta step under bfloat16 autocast; its
    logged losses are close to float32's and not equal to them (autocast is on)."""
    cfg = apply_overrides(smoke(configs.get(name)), ["steps=10", "eval_every=10", *extra])
    train(cfg, 0, "smoke", root=tmp_path / "fp32", progress=False)
    amp = apply_overrides(cfg, ["amp=bf16"])
    train(amp, 0, "smoke", root=tmp_path / "bf16", progress=False)

    def loss(root):
        rows = _rows(root / name / "seed0" / "metrics.csv")
        return next(float(r["value"]) for r in rows if r["metric"] == "loss")

    a, b = loss(tmp_path / "bf16"), loss(tmp_path / "fp32")
    assert a != b and abs(a - b) <= 0.05 * abs(b), (a, b)


def test_channels_last_changes_the_memory_order_not_the_run(tmp_path, monkeypatch):
    """channels_last=true: NHWC weights and images (3-channel CIFAR-shaped stand-in data, CNN-13
    at width 8), the numbers of the default order to float rounding."""
    write_cifar10(tmp_path / "data", 300, 100)
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "data"))
    overrides = ["steps=4", "eval_every=4", "num_labels=100", "val_size=50", "model.width=8"]
    cfg = apply_overrides(smoke(configs.get("pl_mixup_cifar10")), overrides)
    run = build(apply_overrides(cfg, ["channels_last=true"]), 0, "smoke")
    conv = next(m for m in run.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    x = run.batches(0).x
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    a = train(cfg, 0, "smoke", root=tmp_path / "a", progress=False)
    nhwc = apply_overrides(cfg, ["channels_last=true"])
    b = train(nhwc, 0, "smoke", root=tmp_path / "b", progress=False)
    assert a["final"] == pytest.approx(b["final"], rel=1e-3)


def test_compile_compiles_the_real_step_and_the_estimators_take_the_eager_module(tmp_path):
    """compile=true: torch.compile'd forward for the real step; the meta step's estimators
    (func, higher, forward here) evaluate the uncompiled module (the same parameters), and the
    run gives the eager run's numbers to float rounding."""
    base = apply_overrides(smoke(configs.get("metathreshold_digits")), ["steps=3", "eval_every=3"])
    eager = train(base, 0, "smoke", root=tmp_path / "eager", progress=False)
    for estimator in ("func", "higher", "forward"):
        cfg = apply_overrides(base, ["compile=true", f"estimator={estimator}"])
        run = build(cfg, 0, "smoke")
        assert hasattr(run.method.model, "_orig_mod") and run.method.eager_model() is run.model
        out = train(cfg, 0, "smoke", root=tmp_path / estimator, progress=False)
        assert out["final"] == pytest.approx(eager["final"], rel=1e-3), estimator


@pytest.mark.parametrize("name", ["metasemi_digits", "impute_v2_synthfaces"])
def test_meta_experiments_default_to_auto_which_runs_forward_here(name, tmp_path):
    """The experiments' default estimator is `auto`; on these one-step problems on deep models
    it runs `forward`, so a default run equals the `estimator=forward` run bit for bit (the
    Meta-Gradient experiments keep their paper's `fd`)."""
    cfg = apply_overrides(smoke(configs.get(name)), ["steps=6", "eval_every=3"])
    assert cfg.estimator == "auto" and configs.get("metagrad_digits").estimator == "fd"
    train(cfg, 0, "smoke", root=tmp_path / "auto", progress=False)
    forward = apply_overrides(cfg, ["estimator=forward"])
    train(forward, 0, "smoke", root=tmp_path / "forward", progress=False)
    a, b = (_comparable(tmp_path / d / name / "seed0") for d in ("auto", "forward"))
    assert a[0] == b[0] and a[1]["final"] == b[1]["final"]  # every logged row, the results
    assert (a[1]["estimator"], b[1]["estimator"]) == ("auto", "forward")
    assert a[1]["estimators_run"] == b[1]["estimators_run"] == ["forward"]


def test_a_bare_state_dict_over_the_checkpoint_and_torn_temp_files(tmp_path, monkeypatch, capsys):
    """A ckpt.pt overwritten with a model's state_dict is not read as a checkpoint (it raised
    KeyError: 'model'): the run resumes from ckpt.prev.pt and ends equal to the uninterrupted
    run; temp files that a kill left in the run directory are removed on resume."""
    cfg, run = _whole_and_cut(tmp_path, monkeypatch)
    state = torch.load(run / "ckpt.pt", weights_only=False)
    torch.save(state["model"], run / "ckpt.pt")
    (run / ".ckpt.pt.abc123.tmp").write_bytes(b"torn" * 1000)
    train(cfg, 0, "smoke", root=tmp_path / "cut", progress=False)
    err = capsys.readouterr().err
    assert "ckpt.pt is not a checkpoint of this toolkit (no ['model', 'step', 'config'])" in err
    assert _comparable(run) == _comparable(tmp_path / "whole/mixup_digits/seed0")
    assert not list(run.glob(".*.tmp"))


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_run_directory_removed_mid_run_stops_with_its_path_and_no_thread_traceback(
    tmp_path, monkeypatch, capsys
):
    """Through `python -m experiments`: exit 2 naming the run directory; TensorBoard's writer
    thread prints no "Exception in thread" traceback."""
    import shutil

    from experiments.__main__ import main
    from methods.mixup import Mixup

    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    original = Mixup.train_step

    def remove_the_run(self, batch):
        if batch.step == 12:
            shutil.rmtree(tmp_path / "mixup_digits+smoke")
        return original(self, batch)

    monkeypatch.setattr(Mixup, "train_step", remove_the_run)
    assert main(["mixup_digits", "--scale", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "mixup_digits+smoke" in err and "Traceback" not in err and "Exception in" not in err


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch, capsys):
    """ENOSPC from a write carries no file name: the error names the run's file, with the
    file-system advice, and no temp file is left."""
    import errno

    from experiments import rundir
    from experiments.cli import run_cli

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir.os, "fsync", lambda fd: full(fd, b""))
    target = tmp_path / "run" / "config.json"
    target.parent.mkdir()
    status = run_cli(lambda: rundir.atomic_write(target, b"{}"))
    err = capsys.readouterr().err
    assert status == 2
    assert f"[Errno 28] No space left on device: '{target}'" in err and "free space" in err
    assert list(target.parent.iterdir()) == []
