"""The one training loop shared by every method.

Each step reseeds the global generator from (seed, step) and builds its batch from (seed, step)
alone, so a run resumed from `ckpt.pt` ends with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from bilevel import NonFiniteError, Shard
from methods import Method

from . import checkpoint, distributed
from .build import Parts, build
from .config import Config, config_defaults
from .data import batches, default_workers, mix_seed
from .errors import Diverged, Interrupted, Stopped
from .evaluate import evaluate, primary_metric
from .events import Events
from .rundir import RunDir, stored_config
from .stop import StopRequest

# steps between reads of the device's logs: the divergence check and the progress bar (also at
# every evaluation, before its checkpoint is written)
CHECK_EVERY = 50


def _evaluate_all(run: Parts, cfg: Config) -> dict[str, float]:
    out = {}
    models = [("", run.model)] + ([("ema_", run.ema.module)] if run.ema is not None else [])
    for prefix, model in models:
        for split in ("val", "test"):
            part = getattr(run.data, split)
            for metric, value in evaluate(model, part, run.batches, cfg.eval_limit).items():
                out[f"{split}/{prefix}{metric}"] = value
    return out


def _checkpoint_step(rows: list) -> int:
    """The step of the checkpoint on disk: the last evaluated step (0: none yet)."""
    return rows[-1][0] if rows else 0


class _Watch:
    """Finiteness of the training losses without a host synchronisation per step: a flag and
    the first bad step stay on the device, with the logs of the last `CHECK_EVERY` steps, and
    are read every `CHECK_EVERY` steps and at each evaluation."""

    def __init__(self, device: torch.device) -> None:
        self.bad_step = torch.tensor(-1, device=device)
        self.recent: dict[int, dict[str, Any]] = {}

    def add(self, step: int, logs: dict[str, Any]) -> None:
        device = self.bad_step.device
        losses = [
            torch.as_tensor(v, device=device) for k, v in logs.items() if k.startswith("loss")
        ]
        finite = torch.stack([t.float() for t in losses]).isfinite().all()
        self.bad_step = torch.where(finite | (self.bad_step >= 0), self.bad_step, step)
        self.recent[step] = logs
        self.recent.pop(step - CHECK_EVERY, None)

    def first_bad(self, shard: Shard, method: Method) -> str | None:
        """None, or what went wrong: the first step whose meta step met a non-finite value
        (`method.non_finite()`), or whose loss was not finite, with its logs (data parallel: on
        every rank when on any, the first bad step of all)."""
        meta = method.non_finite()
        meta_step = torch.tensor(meta[0] if meta else -1, device=self.bad_step.device)
        steps = shard.gather(torch.stack([self.bad_step, meta_step]))
        seen = steps[steps >= 0]
        if len(seen) == 0:
            return None
        first = int(seen.min())
        if meta is not None and meta[0] == first:
            return f"a meta step met non-finite values at step {first + 1} ({meta[1]})"
        if int(self.bad_step) != first:  # another rank's meta step or loss
            return f"a non-finite value was met at step {first + 1} on another process"
        bad = first
        logs = self.recent.get(bad, {})
        terms = ", ".join(f"{k}={float(v):.4g}" for k, v in sorted(logs.items()))
        return f"the training loss is not finite at step {bad + 1} ({terms})"


def _progress(rows: list, best: dict | None, elapsed: float, resumes: int) -> dict[str, Any]:
    """The training loop's part of a checkpoint: the metrics so far, the best evaluation, the
    time that reached a checkpoint, and how often the run resumed."""
    return {"metrics": rows, "best": best, "elapsed": elapsed, "resumes": resumes}


def _reason(stop: StopRequest | None) -> str:
    return (stop.reason if stop else None) or "stopped by a signal to another process"


def _diverged(cfg: Config, seed: int, rundir: RunDir, what: str, kept: int):
    """Raise `Diverged` saying `what` went wrong; `kept` is the checkpoint's step (0: none)."""
    kept_at = f"its last checkpoint (step {kept})" if kept else "no checkpoint (none was due yet)"
    raise Diverged(
        f"{cfg.name} seed {seed}: {what}. "
        f"Stopped; {rundir.path} keeps its config and {kept_at}. The same command "
        "starts from there and diverges again unless a setting changes: try a lower lr, or for "
        "a meta method a smaller method.meta_lr or method.inner_lr_scale."
    )


def train(
    cfg: Config,
    seed: int,
    scale: str = "full",
    root: Path | None = None,
    progress: bool = True,
    run_id: str | None = None,
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Train `cfg` with `seed` into `root/<run_id or cfg.name>/seed<seed>/` (resuming if there).
    When `stop` becomes true, a checkpoint is written at the end of the current step and
    `Stopped` is raised; the same call resumes from that step."""
    run = build(cfg, seed, scale)  # bad settings or data stop here, before any file is written
    rundir = RunDir.for_run(run_id or cfg.name, seed, root)
    stored = stored_config(cfg, seed, scale)
    shard = run.method.shard
    if shard.rank > 0:  # rank 0 holds the lock and writes; the others read its checkpoint
        distributed.barrier(shard)
        return _train(cfg, seed, scale, run, rundir, stored, progress, run_id, stop)
    with rundir.lock():
        rundir.start(stored, config_defaults())
        distributed.barrier(shard)
        return _train(cfg, seed, scale, run, rundir, stored, progress, run_id, stop)


def _train(cfg, seed, scale, run, rundir, stored, progress, run_id, stop) -> dict[str, Any]:
    shard = run.method.shard
    lead = shard.rank == 0  # writes files, evaluates, shows progress
    state = checkpoint.load(rundir, stored)
    start, rows, best, elapsed, resumes = 0, [], None, 0.0, 0
    running: dict[str, Any] = {}  # sums of the logs since the last evaluation (on the device)
    counts: dict[str, int] = defaultdict(int)
    if state is not None:
        checkpoint.resume(run, state)
        start, rows, best, elapsed = (
            state["step"],
            state["metrics"],
            state["best"],
            state["elapsed"],
        )
        # the steps after this checkpoint were trained and lost: their time is not counted
        resumes = state.get("resumes", 0) + (start < cfg.steps)
        # a checkpoint written on a stop request, between evaluations, carries the log sums
        running.update(distributed.restore_logs(state.get("running", {}), shard))
        counts.update(state.get("counts", {}))
        if lead:
            rundir.write_metrics(rows)  # metrics.csv as of the checkpoint, never ahead of it
    key = ("ema_" if cfg.eval_ema and run.ema is not None else "") + primary_metric(run.data.task)
    watch = _Watch(run.device)
    bar = tqdm(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        desc=cfg.name,
        disable=not (progress and lead),
        unit="step",
    )
    events = Events(rundir.path, start, cfg.tensorboard and lead)
    workers = cfg.workers if cfg.workers >= 0 else default_workers(run.device)
    stream = batches(run.batches, start, cfg.steps, workers)
    tick, step = time.perf_counter(), start
    try:
        for step, batch in zip(bar, stream, strict=True):
            torch.manual_seed(mix_seed(seed, step, 0))
            try:
                logs = run.method.train_step(batch)
            except NonFiniteError as err:  # the model diverged inside the iteration
                what = f"a meta step met non-finite values at step {step + 1} ({err})"
                _diverged(cfg, seed, rundir, what, _checkpoint_step(rows))
            watch.add(step, logs)
            distributed.sync_buffers(run.model, shard)
            run.scheduler.step()
            if run.ema is not None:
                run.ema.update_parameters(run.model)
            for k, v in logs.items():
                running[k] = running.get(k, 0.0) + v
                counts[k] += 1
            done = step + 1
            evaluate_now = done % cfg.eval_every == 0 or done == cfg.steps
            # a stop request is seen by all ranks together: at each check (every step alone)
            check = evaluate_now or done % CHECK_EVERY == 0
            stopping = (check or not shard.parallel) and distributed.any_rank(
                bool(stop), shard, run.device
            )
            if check or stopping:
                bad = watch.first_bad(shard, run.method)
                if bad is not None:
                    _diverged(cfg, seed, rundir, bad, _checkpoint_step(rows))
                loss = distributed.sum_logs({"loss": logs["loss"]}, shard, run.device)["loss"]
                bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)  # the global loss
            if stopping and not evaluate_now:  # checkpoint this step, with the log sums
                partial = elapsed + time.perf_counter() - tick
                every = distributed.gather_logs(running, shard)
                extra = {"running": every, "counts": dict(counts)}
                if lead:
                    progress = _progress(rows, best, partial, resumes) | extra
                    checkpoint.save(rundir, checkpoint.state(run, done, progress, stored))
                raise Stopped(_reason(stop), done, rundir.path)
            if not evaluate_now:
                continue
            elapsed += time.perf_counter() - tick
            running = distributed.sum_logs(running, shard, run.device)
            if lead:  # rank 0 evaluates and writes
                rows += [
                    (done, "train", k, float(v) / counts[k]) for k, v in sorted(running.items())
                ]
                rows.append((done, "train", "lr", run.optimizer.param_groups[0]["lr"]))
                rows.append((done, "time", "wall_time_s", elapsed))
                results = _evaluate_all(run, cfg)
                rows += [(done, *name.split("/"), value) for name, value in results.items()]
                if best is None or results[f"val/{key}"] < best[f"val/{key}"]:
                    best = {"step": done, **results}
                if cfg.snapshots:
                    checkpoint.save_snapshot(rundir, done, run)
                events.write([r for r in rows if r[0] == done])  # purged on resume if ahead
                progress = _progress(rows, best, elapsed, resumes)
                checkpoint.save(rundir, checkpoint.state(run, done, progress, stored))
                rundir.write_metrics(rows)  # after the checkpoint: never ahead of it
            running.clear()
            counts.clear()
            tick = time.perf_counter()
            if stopping:
                raise Stopped(_reason(stop), done, rundir.path)
    except KeyboardInterrupt:
        raise Interrupted(step, _checkpoint_step(rows), rundir.path) from None
    finally:
        events.close()
    if not lead:
        return {"rank": shard.rank}
    final = {n: v for s, split, n, v in rows if s == cfg.steps and split == "test"}
    summary = {
        "name": cfg.name,
        "run": run_id or cfg.name,
        "seed": seed,
        "scale": scale,
        "method": cfg.method,
        "dataset": cfg.dataset,
        "estimator": cfg.estimator,
        # what the meta step ran (`auto` names its pick); empty for a base method
        "estimators_run": sorted(getattr(run.method, "estimators_run", ())),
        "steps": cfg.steps,
        "primary": f"test/{key}",
        "final": {f"test/{k}": v for k, v in final.items()},
        "best": best,
        "wall_time_s": elapsed,
        "steps_per_s": cfg.steps / max(elapsed, 1e-9),
        # each resume lost the time of the steps after the last checkpoint: wall_time_s counts
        # only intervals that reached a checkpoint, so it understates a resumed run's time
        "resumes": resumes,
        "nproc": shard.world,
        # CPU threads per process: the order of float sums, hence the numbers, depends on it
        "threads": torch.get_num_threads(),
    }
    rundir.write_json("summary.json", summary)
    return summary
