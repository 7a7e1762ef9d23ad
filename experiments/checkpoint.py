"""A run's checkpoint: what it holds, writing it verified, reading it back, restoring a run.

    ckpt.pt        model, EMA, method state, optimizer, scheduler, step, metrics so far, best
                   evaluation, time, RNG state, the full config (and, on a stop request
                   between evaluations, the log sums since the last one)
    ckpt.prev.pt   the checkpoint before it, kept until a new one is written and verified
    snapshots/step<N>.pt   model, EMA and method state at each evaluation (config `snapshots`)

A checkpoint is written to a temporary file, read back and compared byte for byte, and only
then renamed over `ckpt.pt` (the old one becomes `ckpt.prev.pt`). Reading takes `ckpt.pt`, or
`ckpt.prev.pt` with a warning when `ckpt.pt` is unreadable or not a checkpoint of this toolkit,
and refuses a checkpoint of another config or seed (`CheckpointError`).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

from .build import Parts, build
from .config import differing
from .errors import CheckpointError
from .rundir import RunDir, atomic_write, config_from_json, write_temp

# what every checkpoint holds: a file without them is not one
KEYS = ("model", "step", "config")
# what torch.load raises on a truncated, empty or garbage file
UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError)


def weights(parts: Parts) -> dict[str, Any]:
    """What a trained run is: model, EMA and method state (checkpoints and snapshots)."""
    return {
        "model": parts.model.state_dict(),
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "method": parts.method.state_dict(),
    }


def load_weights(parts: Parts, state: dict[str, Any]) -> None:
    """Put a checkpoint's or snapshot's weights into built parts."""
    parts.model.load_state_dict(state["model"])
    if parts.ema is not None:
        parts.ema.load_state_dict(state["ema"])
    parts.method.load_state_dict(state["method"])


def state(parts: Parts, done: int, progress: dict[str, Any], stored: dict[str, Any]) -> dict:
    """What `ckpt.pt` holds after step `done`: the weights, optimizer and schedule, the
    training loop's `progress` (metrics, best, elapsed, resumes, and log sums if any), the
    global RNG state and the full config."""
    return {
        **weights(parts),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "step": done,
        **progress,
        "rng": {"torch": torch.get_rng_state()},
        "config": stored,
    }


def resume(parts: Parts, state: dict[str, Any]) -> None:
    """Put a checkpoint into built parts: weights, optimizer and schedule."""
    load_weights(parts, state)
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])


def _bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save(rundir: RunDir, state: dict[str, Any]) -> None:
    """Write and verify the new checkpoint, then keep the old one as ckpt.prev.pt."""
    path = rundir.file("ckpt.pt")
    tmp = write_temp(path, _bytes(state))
    if path.is_file():
        os.replace(path, rundir.file("ckpt.prev.pt"))
    os.replace(tmp, path)


def save_snapshot(rundir: RunDir, step: int, parts: Parts) -> None:
    (rundir.path / "snapshots").mkdir(exist_ok=True)
    atomic_write(rundir.file(f"snapshots/step{step:07d}.pt"), _bytes(weights(parts)))


def snapshots(rundir: RunDir) -> list[tuple[int, Path]]:
    """(step, path) of the kept snapshots, in step order."""
    found = sorted((rundir.path / "snapshots").glob("step*.pt"))
    return [(int(p.stem.removeprefix("step")), p) for p in found]


def load(rundir: RunDir, config: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The latest readable checkpoint (ckpt.pt, else ckpt.prev.pt with a message), or None.
    With `config`, a checkpoint of another config or seed is refused."""
    found = [rundir.file(n) for n in ("ckpt.pt", "ckpt.prev.pt") if rundir.file(n).is_file()]
    problems = []
    for path in found:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except UNREADABLE as err:  # try the previous checkpoint
            problems.append(f"{path} is unreadable ({type(err).__name__}: {err})")
            continue
        missing = [k for k in KEYS if not isinstance(state, dict) or k not in state]
        if missing:  # e.g. a bare model state_dict saved over it
            problems.append(f"{path} is not a checkpoint of this toolkit (no {missing})")
            continue
        if problems:
            print(
                f"warning: {problems[-1]}; resuming from {path} (step {state['step']})",
                file=sys.stderr,
            )
        if config is not None:
            _check_owner(rundir, path, state, config)
        return state
    if problems:
        raise CheckpointError(
            "; ".join(problems) + f". Remove {rundir.path} to start this run again."
        )
    return None


def _check_owner(rundir: RunDir, path: Path, state: dict, config: dict[str, Any]) -> None:
    stored = json.loads(json.dumps(state.get("config", {})))
    config = json.loads(json.dumps(config))
    common = [k for k in config if k in stored]
    differ = differing({k: stored[k] for k in common}, {k: config[k] for k in common})
    if differ:
        shown = ", ".join(f"{k}={stored[k]!r} (this run: {config[k]!r})" for k in differ)
        raise CheckpointError(
            f"{path} belongs to another run: {shown}. Move it away or remove {rundir.path}."
        )


def restore(path: Path, state_file: Path | None = None) -> tuple[Any, Parts]:
    """(config, parts) of the run in directory `path`, rebuilt with the weights of
    `state_file` (default: its final checkpoint), for analysis."""
    rundir = RunDir(Path(path))
    config = rundir.file("config.json")
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: {path} is not a run directory")
    cfg, seed, scale = config_from_json(json.loads(config.read_text()))
    parts = build(cfg, seed, scale)
    state_file = state_file or rundir.file("ckpt.pt")
    load_weights(parts, torch.load(state_file, map_location=parts.device, weights_only=False))
    return cfg, parts
