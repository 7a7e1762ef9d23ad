"""The run directory `runs/<name>[+<key=value>…][+smoke]/seed<seed>/` (named by
`experiments.run`), its lock and its atomic files.

    config.json   every resolved setting, written first
    metrics.csv   long format: step,split,metric,value
    summary.json  final and best figures, wall time, steps per second
    ckpt.pt, ckpt.prev.pt, snapshots/   the checkpoints (`experiments.checkpoint`)
    tb/           TensorBoard event files of the metrics.csv rows (config `tensorboard`)
    .lock         held by the one process that writes the run (its pid and host inside)

Every file is written to a temporary name of its own and renamed, so a kill never leaves a torn
file and two writers never share a temporary file.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, as_dict, differing
from .errors import RunLocked


def runs_root() -> Path:
    return Path(os.environ.get("RUNS_ROOT", "runs"))


def stored_config(cfg: Config, seed: int, scale: str) -> dict[str, Any]:
    """What a run's config.json and checkpoints hold: every setting, the seed and the scale."""
    return {**as_dict(cfg), "seed": seed, "scale": scale}


def config_from_json(stored: dict[str, Any]) -> tuple[Config, int, str]:
    """(config, seed, scale) from a run's config.json (settings added later take defaults)."""
    known = {f.name for f in dataclasses.fields(Config)}
    kw = {k: v for k, v in stored.items() if k in known}
    kw["milestones"] = tuple(kw.get("milestones", ()))
    return Config(**kw), int(stored["seed"]), str(stored.get("scale", "full"))


def write_temp(path: Path, data: bytes) -> Path:
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


def atomic_write(path: Path, data: bytes) -> None:
    os.replace(write_temp(path, data), path)


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
        atomic_write(self.file(name), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def write_metrics(self, rows: list[tuple[int, str, str, float]]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["step", "split", "metric", "value"])
        writer.writerows(rows)
        atomic_write(self.file("metrics.csv"), buf.getvalue().encode())
