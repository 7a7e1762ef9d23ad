"""The run directory `runs/<name>[+<key=value>…][+smoke]/seed<seed>/` and its atomic files.

    config.json   every resolved setting, written first
    metrics.csv   long format: step,split,metric,value
    summary.json  final and best figures, wall time, steps per second
    ckpt.pt       model, EMA, optimizer, scheduler, method state, step, RNG states, metrics, config
    snapshots/step<N>.pt   model, EMA and method state at each evaluation (config `snapshots`)

Every file is written to a temporary name and renamed, so a kill never leaves a torn file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError


def runs_root() -> Path:
    return Path(os.environ.get("RUNS_ROOT", "runs"))


def run_name(name: str, overrides: list[str], scale: str = "full") -> str:
    """The directory name of a run: the experiment, then its command-line changes, so that
    `ARGS="estimator=fd"` or `SCALE=smoke` never collide with the default run."""
    parts = [name, *sorted(o.replace("/", "_") for o in overrides)]
    if scale != "full":
        parts.append(scale)
    return "+".join(parts)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_run(cls, name: str, seed: int, root: Path | None = None) -> RunDir:
        return cls((root or runs_root()) / name / f"seed{seed}")

    def file(self, name: str) -> Path:
        return self.path / name

    def start(self, config: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
        """Write config.json first; refuse a directory that holds a run of another config.

        Keys missing from an existing config.json (settings added to the toolkit after that run
        started) count as equal when the new config holds their `defaults` value."""
        self.path.mkdir(parents=True, exist_ok=True)
        config = json.loads(json.dumps(config))  # as stored (tuples become lists)
        existing = self.file("config.json")
        if existing.is_file():
            old = json.loads(existing.read_text())
            added = json.loads(
                json.dumps({k: v for k, v in (defaults or {}).items() if k not in old})
            )
            old = {**added, **old}
            if old != config:
                diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                raise ConfigError(
                    f"{self.path} holds a run with a different config (differs in {diff}); "
                    "remove that directory, or change NAME or SEED"
                )
            return
        self.write_json("config.json", config)

    def write_json(self, name: str, obj: Any) -> None:
        _atomic_write(self.file(name), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def write_metrics(self, rows: list[tuple[int, str, str, float]]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["step", "split", "metric", "value"])
        writer.writerows(rows)
        _atomic_write(self.file("metrics.csv"), buf.getvalue().encode())

    def _save_torch(self, name: str, state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        _atomic_write(self.file(name), buf.getvalue())

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self._save_torch("ckpt.pt", state)

    def save_snapshot(self, step: int, state: dict[str, Any]) -> None:
        (self.path / "snapshots").mkdir(exist_ok=True)
        self._save_torch(f"snapshots/step{step:07d}.pt", state)

    def snapshots(self) -> list[tuple[int, Path]]:
        """(step, path) of the kept snapshots, in step order."""
        found = sorted((self.path / "snapshots").glob("step*.pt"))
        return [(int(p.stem.removeprefix("step")), p) for p in found]

    def load_checkpoint(self) -> dict[str, Any] | None:
        path = self.file("ckpt.pt")
        if not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=False)
