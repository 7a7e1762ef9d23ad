"""The run directory `runs/<name>[+<key=value>…][+smoke]/seed<seed>/` and its atomic files.

    config.json   every resolved setting, written first
    metrics.csv   long format: step,split,metric,value
    summary.json  final and best figures, wall time, steps per second
    ckpt.pt       model, EMA, optimizer, scheduler, method state, step, RNG states, metrics, config
    ckpt.prev.pt  the checkpoint before it, kept until a new one is written and verified
    snapshots/step<N>.pt   model, EMA and method state at each evaluation (config `snapshots`)
    tb/           TensorBoard event files of the metrics.csv rows (config `tensorboard`)
    .lock         held by the one process that writes the run (its pid and host inside)

Every file is written to a temporary name of its own and renamed, so a kill never leaves a torn
file and two writers never share a temporary file.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import pickle
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .config import RUNTIME, ConfigError, differing

# what every checkpoint holds (`experiments.train`): a file without them is not one
CHECKPOINT_KEYS = ("model", "step", "config")
# what torch.load raises on a truncated, empty or garbage file
UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError)


class RunLocked(ConfigError):
    """Another process writes this run directory."""


class CheckpointError(ConfigError):
    """No usable checkpoint, or one that belongs to another run."""


def runs_root() -> Path:
    return Path(os.environ.get("RUNS_ROOT", "runs"))


def run_name(name: str, overrides: list[str], scale: str = "full") -> str:
    """The directory name of a run: the experiment, then its command-line changes, so that
    `ARGS="estimator=fd"` or `SCALE=smoke` never collide with the default run. Settings that
    do not change a run's numbers (`config.RUNTIME`: `workers`, `tensorboard`) are not part of
    it, so that a run resumed without them is the same run."""
    changes = [o for o in overrides if o.partition("=")[0] not in RUNTIME]
    parts = [name, *sorted(o.replace("/", "_") for o in changes)]
    if len("+".join(parts).encode()) > 200:  # file systems allow 255 bytes a name
        digest = hashlib.sha256("+".join(parts[1:]).encode()).hexdigest()[:16]
        parts = [name, f"changes-{digest}"]  # config.json lists every setting
    if scale != "full":
        parts.append(scale)
    return "+".join(parts)


def _write_temp(path: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `path`, synced to disk and read back to verify;
    nothing is left behind if writing fails (a full disk, a kill leaves at most the temp)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if hashlib.sha256(tmp.read_bytes()).digest() != hashlib.sha256(data).digest():
            raise OSError(f"{tmp}: the file read back differs from what was written")
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None and err.errno is not None:  # a full disk names no file
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _torch_bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    os.replace(_write_temp(path, data), path)


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_run(cls, name: str, seed: int, root: Path | None = None) -> RunDir:
        return cls((root or runs_root()) / name / f"seed{seed}")

    def file(self, name: str) -> Path:
        return self.path / name

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process; another holder stops us with its pid/host.
        The operating system releases the lock when the process ends, however it ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file(".lock"), "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = ""
                for _ in range(20):  # the holder writes its pid just after taking the lock
                    fh.seek(0)
                    holder = fh.read().strip()
                    if holder:
                        break
                    time.sleep(0.05)
                holder = holder or "another process"
                raise RunLocked(
                    f"{self.path} is in use by {holder}; wait for that run to finish, or stop "
                    "it and run the same command again to resume"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
            fh.flush()
            for torn in self.path.glob(".*.tmp"):  # a write cut by a kill (we are the writer)
                torn.unlink(missing_ok=True)
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)

    def start(self, config: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
        """Write config.json first; refuse a directory that holds a run of another config."""
        self.path.mkdir(parents=True, exist_ok=True)
        diff = self.config_diff(config, defaults)
        if diff:
            raise ConfigError(
                f"{self.path} holds a run with a different config (differs in {diff}); "
                "remove that directory, or change NAME or SEED"
            )
        if diff is None:
            self.write_json("config.json", json.loads(json.dumps(config)))

    def config_diff(
        self, config: dict[str, Any], defaults: dict[str, Any] | None = None
    ) -> list[str] | None:
        """The settings in which this directory's config.json differs from `config` (None
        when there is none). Keys missing from config.json (settings added to the toolkit
        after that run started) count as equal when `config` holds their `defaults` value."""
        existing = self.file("config.json")
        if not existing.is_file():
            return None
        try:
            old = json.loads(existing.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"{existing} is not a run's config ({err}); remove {self.path} to start "
                "this run again"
            ) from None
        config = json.loads(json.dumps(config))  # as stored (tuples become lists)
        added = json.loads(json.dumps({k: v for k, v in (defaults or {}).items() if k not in old}))
        return differing({**added, **old}, config)

    def write_json(self, name: str, obj: Any) -> None:
        _atomic_write(self.file(name), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def write_metrics(self, rows: list[tuple[int, str, str, float]]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["step", "split", "metric", "value"])
        writer.writerows(rows)
        _atomic_write(self.file("metrics.csv"), buf.getvalue().encode())

    def _save_torch(self, name: str, state: dict[str, Any]) -> None:
        _atomic_write(self.file(name), _torch_bytes(state))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write and verify the new checkpoint, then keep the old one as ckpt.prev.pt."""
        path = self.file("ckpt.pt")
        tmp = _write_temp(path, _torch_bytes(state))
        if path.is_file():
            os.replace(path, self.file("ckpt.prev.pt"))
        os.replace(tmp, path)

    def save_snapshot(self, step: int, state: dict[str, Any]) -> None:
        (self.path / "snapshots").mkdir(exist_ok=True)
        self._save_torch(f"snapshots/step{step:07d}.pt", state)

    def snapshots(self) -> list[tuple[int, Path]]:
        """(step, path) of the kept snapshots, in step order."""
        found = sorted((self.path / "snapshots").glob("step*.pt"))
        return [(int(p.stem.removeprefix("step")), p) for p in found]

    def load_checkpoint(self, config: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The latest readable checkpoint (ckpt.pt, else ckpt.prev.pt with a message), or None.
        With `config`, a checkpoint of another config or seed is refused."""
        found = [self.file(n) for n in ("ckpt.pt", "ckpt.prev.pt") if self.file(n).is_file()]
        problems = []
        for path in found:
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except UNREADABLE as err:  # try the previous checkpoint
                problems.append(f"{path} is unreadable ({type(err).__name__}: {err})")
                continue
            missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
            if missing:  # e.g. a bare model state_dict saved over it
                problems.append(f"{path} is not a checkpoint of this toolkit (no {missing})")
                continue
            if problems:
                print(
                    f"warning: {problems[-1]}; resuming from {path} (step {state['step']})",
                    file=sys.stderr,
                )
            if config is not None:
                self._check_owner(path, state, config)
            return state
        if problems:
            raise CheckpointError(
                "; ".join(problems) + f". Remove {self.path} to start this run again."
            )
        return None

    def _check_owner(self, path: Path, state: dict[str, Any], config: dict[str, Any]) -> None:
        stored = json.loads(json.dumps(state.get("config", {})))
        config = json.loads(json.dumps(config))
        common = [k for k in config if k in stored]
        differ = differing({k: stored[k] for k in common}, {k: config[k] for k in common})
        if differ:
            shown = ", ".join(f"{k}={stored[k]!r} (this run: {config[k]!r})" for k in differ)
            raise CheckpointError(
                f"{path} belongs to another run: {shown}. Move it away or remove {self.path}."
            )
