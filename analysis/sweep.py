"""`make sweep`: many runs as submitit jobs, on this machine (`EXECUTOR=local`, the default) or a
SLURM cluster (`EXECUTOR=slurm`).

    python -m analysis.sweep NAME [--seeds 0,1,2] [--grid "estimator=func,fd num_labels=20,50"]
        [--scale smoke] [--executor local|slurm] [--parallel N] [--no-wait]
        [--partition P] [--gpus 1] [--cpus 10] [--time-min 240] [key=value ...]

The grid is the product of its keys' values; `key=value` arguments apply to every run. Every
config is built before anything is submitted (a bad key stops the sweep with exit 2), finished
runs are skipped, and each job's run directory and log are printed. One job trains one run in
its own process; its run directory's lock keeps a second job on the same run from writing beside
it. On SIGTERM or submitit's preemption / time-out signal (SIGUSR2) a job writes a checkpoint at
the end of the step it is in and requeues itself; the requeued job resumes from that step and
ends with the numbers of an uninterrupted run.

submitit is an optional dependency (`pip install 'bilevel-ssl[cluster]'`), imported when jobs are
submitted: the check commands without EXECUTOR= train in-process and do not need it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bilevel.extras import require
from experiments.cli import run_cli, spelled
from experiments.config import ConfigError, check_repeats
from experiments.errors import Stopped
from experiments.run import Run, run_name, unfinished
from experiments.rundir import runs_root
from experiments.sources import data_root
from experiments.stop import StopRequest

from .seeds import seed_list


def _submitit():
    return require("submitit", "submitting runs as jobs (make sweep, EXECUTOR=)")


def preempt_signal() -> int:
    """The signal submitit requeues a job on (SIGUSR2, or $SUBMITIT_PREEMPT_SIGNAL)."""
    return _submitit().JobEnvironment._usr_sig()


def grid(text: str) -> list[tuple[str, ...]]:
    """ "a=1,2 b=x" → [("a=1", "b=x"), ("a=2", "b=x")]: the product of each key's values."""
    check_repeats(text.split(), "grid")
    axes = []
    for item in text.split():
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"grid: {item!r} is not key=value[,value…]")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return list(itertools.product(*axes))


def expand(
    name: str,
    seeds: list[int],
    grid_text: str = "",
    args: tuple[str, ...] = (),
    scale: str = "full",
) -> list[Run]:
    """The runs of a sweep: each grid point (with `args`) at each seed."""
    points = grid(grid_text)
    for point in points:  # a key both in ARGS and in the grid
        check_repeats((*args, *point), "sweep (ARGS and GRID)")
    return [Run(name, seed, scale, (*args, *point)) for point in points for seed in seeds]


def title(run: Run) -> str:
    """How tables and messages name a run: the experiment and its changes, and the seed."""
    return f"{run_name(run.experiment, run.overrides)} seed {run.seed}"


@dataclass(frozen=True)
class Settings:
    """Where and how jobs run."""

    executor: str = "local"  # "local" (processes here) or "slurm"
    parallel: int = 2  # jobs at a time (local: by this process; slurm: the array's limit)
    partition: str | None = None
    gpus: int = 0  # per job
    cpus: int | None = None  # per job
    time_min: int = 24 * 60  # per job, before it is stopped and requeued
    folder: Path | None = None  # submitit's files (default: RUNS_ROOT/.submitit)

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ConfigError(f"PARALLEL: must be >= 1, got {self.parallel}")


class TrainJob:
    """One run as a submitit job; submitit's `checkpoint` resubmits it as it is, and the
    requeued job resumes the run from its checkpoint."""

    def __init__(self, run: Run, data: Path) -> None:
        self.run, self.data = run, data

    def checkpoint(self, *args, **kwargs):
        """submitit's requeue hook (`submitit.helpers.Checkpointable`'s): resubmit this job as
        it is; submitit finds it by name, so submitit is imported only when jobs run."""
        return _submitit().helpers.DelayedSubmission(self, *args, **kwargs)

    def __call__(self) -> dict:
        os.environ["DATA_ROOT"] = str(self.data)  # as on the submitting machine
        preempt = preempt_signal()
        with StopRequest.on(signal.SIGTERM, preempt) as stop:
            try:
                return self.run.ensure(progress=False, stop=stop)
            except Stopped as err:
                print(f"{err}; requeueing", flush=True)
                stopped, requeue = err, stop.previous.get(preempt)
        if callable(requeue):  # submitit's handler: checkpoint() and requeue; it exits
            requeue(preempt, None)
        raise stopped  # not under submitit: nothing requeues the run


def make_executor(settings: Settings):
    """A submitit executor for `settings` (`submitit.Executor`)."""
    submitit = _submitit()
    folder = settings.folder or runs_root() / ".submitit"
    if settings.executor == "local":
        executor = submitit.LocalExecutor(folder=folder / "%j")
        executor.update_parameters(timeout_min=settings.time_min, gpus_per_node=settings.gpus)
        return executor
    if settings.executor == "slurm":
        if submitit.SlurmExecutor.affinity() <= 0:
            raise ConfigError(
                "EXECUTOR=slurm: srun is not on this machine; run the command on the cluster's "
                "login node (EXECUTOR=local runs the jobs here)"
            )
        executor = submitit.SlurmExecutor(folder=folder / "%j")
        params = {"time": settings.time_min, "gpus_per_node": settings.gpus}
        params["array_parallelism"] = settings.parallel
        if settings.partition:
            params["partition"] = settings.partition
        if settings.cpus:
            params["cpus_per_task"] = settings.cpus
        executor.update_parameters(signal_delay_s=120, **params)
        return executor
    raise ConfigError(f"executor: {settings.executor!r} is not local or slurm")


def _describe(job, run: Run) -> str:
    return f"  job {job.job_id}: {title(run)}\n    run {run.path}\n    log {job.paths.stdout}"


def _last_error(text: str) -> str:
    """The first line of the exception a job's traceback ends with, e.g. "DataError: …"."""
    found = re.findall(
        r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Stopped|Diverged|Locked)\b.*$", text, re.M
    )
    return re.sub(r"^[\w.]*\.(\w+)", r"\1", found[-1]) if found else text.strip().split("\n")[0]


def dispatch(
    runs: list[Run],
    settings: Settings = Settings(),
    wait: bool = True,
) -> list[tuple[Run, str]]:
    """Submit every unfinished run of `runs` (configs checked first); with `wait`, return
    when all have ended, as (run, "done" | "failed: <why> (log …)"). A run without a root
    is placed under RUNS_ROOT as this process sees it (jobs may start elsewhere)."""
    runs = [replace(r, root=(r.root or runs_root()).resolve()) for r in runs]
    for run in runs:
        run.config  # noqa: B018 - a bad setting stops the sweep before any job
    todo = unfinished(runs)  # so does a finished run of another config
    print(f"{len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to submit", flush=True)
    if not todo:
        return [(r, "done") for r in runs]
    executor = make_executor(settings)
    data = data_root().resolve()
    jobs = [TrainJob(run, data) for run in todo]
    started: list[tuple[Any, Run]] = []  # (submitit.Job, its run)
    if settings.executor == "slurm" or not wait:
        if settings.executor == "local" and len(todo) > settings.parallel:
            print(f"(without waiting, all {len(todo)} local jobs start now)", flush=True)
        with executor.batch():
            futures = [executor.submit(job) for job in jobs]
        started = list(zip(futures, todo, strict=True))
        for job, run in started:
            print(_describe(job, run), flush=True)
    else:  # local: `parallel` jobs at a time
        queue = list(zip(jobs, todo, strict=True))
        while queue or any(not job.done() for job, _ in started):
            running = sum(not job.done() for job, _ in started)
            while queue and running < settings.parallel:
                job_fn, run = queue.pop(0)
                job = executor.submit(job_fn)
                started.append((job, run))
                print(_describe(job, run), flush=True)
                running += 1
            time.sleep(0.5)
    if not wait:
        return [(r, "submitted") for _, r in started]
    outcome = {r: "done" for r in runs}
    utils = _submitit().core.utils
    for job, r in started:
        try:
            job.result()
        except (utils.FailedJobError, utils.UncompletedJobError) as err:
            outcome[r] = f"failed: {_last_error(str(err))} (log {job.paths.stderr})"
    return [(r, outcome[r]) for r in runs]


def report(outcomes: list[tuple[Run, str]]) -> pd.DataFrame:
    """One row per run: its status and, when finished, its final primary metric."""
    rows = []
    for run, status in outcomes:
        name = run_name(run.experiment, run.overrides)
        row = {"run": name, "seed": run.seed, "status": status}
        if status == "done":
            s = run.summary()
            row |= {"metric": s["primary"], "value": s["final"][s["primary"]]}
        rows.append(row)
    return pd.DataFrame(rows)


def run_missing(runs: list[Run], executor: str | None, parallel: int = 2) -> None:
    """For the check commands (`EXECUTOR=…`): train the unfinished `runs` as jobs and wait;
    exit 1 naming the jobs that failed. `executor=None`: only check, before any training, that
    no finished run is stale (they then train in-process)."""
    if executor is None:
        unfinished(runs)
        return
    outcomes = dispatch(runs, Settings(executor, parallel))
    failed = [f"{title(run)}: {why}" for run, why in outcomes if why != "done"]
    if failed:
        raise SystemExit(f"error: {len(failed)} jobs failed:\n  " + "\n  ".join(failed))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=spelled("sweep"), description=__doc__.split("\n")[0])
    p.add_argument("name", help="experiment name (make list shows them)")
    p.add_argument("overrides", nargs="*", help="key=value settings for every run")
    p.add_argument("--seeds", type=seed_list, default=[0])
    p.add_argument("--grid", default="", help='"key=v1,v2 key2=w1,w2": every combination')
    p.add_argument("--scale", choices=("full", "smoke"), default="full")
    p.add_argument("--executor", choices=("local", "slurm"), default="local")
    p.add_argument("--parallel", type=int, default=2, help="jobs at a time")
    p.add_argument("--no-wait", action="store_true", help="return once submitted")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per job")
    p.add_argument("--cpus", type=int, default=None, help="CPUs per job (SLURM)")
    p.add_argument("--time-min", type=int, default=24 * 60, help="time limit per job")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        args.executor, args.parallel, args.partition, args.gpus, args.cpus, args.time_min
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    runs = expand(args.name, args.seeds, args.grid, tuple(args.overrides), args.scale)
    outcomes = dispatch(runs, settings_from(args), not args.no_wait)
    if args.no_wait:
        return 0
    frame = report(outcomes)
    print(frame.to_markdown(index=False))
    return int((frame.status != "done").any())


if __name__ == "__main__":
    sys.exit(run_cli(main))
