"""One run: a named experiment at a seed and scale with command-line changes; its directory name,
resolved config, directory, the `make exp` command that trains it, and whether it is done.

    run = Run("metasemi_digits", seed=1, scale="smoke", overrides=("estimator=fd",))
    run.name      # 'metasemi_digits+estimator=fd+smoke' (the directory runs/<name>/seed1/)
    run.command() # 'make exp NAME=metasemi_digits SEED=1 SCALE=smoke ARGS="estimator=fd"'
    run.status()  # 'absent' | 'started' | 'done' | 'stale'
    run.ensure()  # its summary, training it first unless it is done

`make exp` (`experiments.command`), the over-seeds tables (`analysis.seeds`), `make sweep`,
`make smoke` and `make bench` all name, configure and find runs through this class.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import configs
from .cli import PROG, installed
from .config import RUNTIME, Config, apply_overrides, config_defaults, smoke
from .errors import ConfigError
from .rundir import RunDir, stored_config
from .stop import StopRequest
from .train import train


def run_name(name: str, overrides: list[str] | tuple[str, ...], scale: str = "full") -> str:
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


class StaleRun(ConfigError):
    """Finished runs trained under settings that their experiment no longer resolves to."""

    def __init__(self, stale: list[tuple[Path, list[str]]]) -> None:
        self.stale = stale
        shown = "; ".join(f"{path} (differs in {diff})" for path, diff in stale[:5])
        more = f"; and {len(stale) - 5} more" if len(stale) > 5 else ""
        super().__init__(
            f"{len(stale)} finished run(s) of another config than their experiment resolves to "
            f"now (a default or the experiment changed since): {shown}{more}; move them away "
            "to retrain them under the current settings"
        )


@dataclass(frozen=True)
class Run:
    """A run as a command names it; `root` defaults to `RUNS_ROOT` (else `runs/`)."""

    experiment: str
    seed: int = 0
    scale: str = "full"
    overrides: tuple[str, ...] = ()
    root: Path | None = None

    @property
    def name(self) -> str:
        """The run's directory name under the runs root."""
        return run_name(self.experiment, self.overrides, self.scale)

    @functools.cached_property
    def config(self) -> Config:
        """The resolved config (an unknown experiment, key or bad value: ConfigError)."""
        cfg = configs.get(self.experiment)
        return apply_overrides(smoke(cfg) if self.scale == "smoke" else cfg, list(self.overrides))

    @property
    def dir(self) -> RunDir:
        return RunDir.for_run(self.name, self.seed, self.root)

    @property
    def path(self) -> Path:
        return self.dir.path

    def command(self, nproc: int = 1) -> str:
        """The `make exp` command that trains (or resumes) this run (`bilevel-ssl exp …` when
        this process is the installed command)."""
        if installed():
            args = [PROG, "exp", self.experiment, "--seed", str(self.seed)]
            args += ["--scale", self.scale] if self.scale != "full" else []
            args += ["--nproc", str(nproc)] if nproc != 1 else []
            return shlex.join([*args, *self.overrides])
        parts = [f"make exp NAME={self.experiment} SEED={self.seed}"]
        if self.scale != "full":
            parts.append(f"SCALE={self.scale}")
        if self.overrides:
            parts.append(f'ARGS="{" ".join(self.overrides)}"')
        if nproc != 1:
            parts.append(f"NPROC={nproc}")
        return " ".join(parts)

    def status(self) -> str:
        """'absent' (no directory), 'started' (not finished), 'done' (finished under the
        config its experiment resolves to now) or 'stale' (finished under another)."""
        if not (self.path / "config.json").is_file():
            return "absent"
        if not (self.path / "summary.json").is_file():
            return "started"
        return "stale" if self.stale_in() else "done"

    def stale_in(self) -> list[str] | None:
        """The settings in which the stored config differs from the current one (None: none)."""
        stored = stored_config(self.config, self.seed, self.scale)
        return self.dir.config_diff(stored, config_defaults()) or None

    def is_done(self) -> bool:
        """Whether it finished under its current config; a finished run of another config is
        StaleRun (its numbers are never read as this run's)."""
        status = self.status()
        if status == "stale":
            raise StaleRun([(self.path, self.stale_in() or [])])
        return status == "done"

    def train(self, progress: bool = True, stop: StopRequest | None = None) -> dict[str, Any]:
        """Train (or resume) this run; its summary (on rank 0)."""
        return train(
            self.config,
            self.seed,
            self.scale,
            root=self.root,
            progress=progress,
            run_id=self.name,
            stop=stop,
        )

    def ensure(self, progress: bool = True, stop: StopRequest | None = None) -> dict[str, Any]:
        """Its summary, training it first unless it is done."""
        return self.summary() if self.is_done() else self.train(progress, stop)

    def summary(self) -> dict[str, Any]:
        return json.loads((self.path / "summary.json").read_text())

    def metrics(self) -> Any:
        """metrics.csv as a pandas DataFrame (columns step, split, metric, value)."""
        import pandas as pd  # for analysis only: `make exp` does not load pandas

        return pd.read_csv(self.path / "metrics.csv")


def unfinished(runs: list[Run]) -> list[Run]:
    """The runs still to train. Every finished run whose config is not what its experiment
    resolves to now is named in one StaleRun (the check and figure commands call this before
    any work)."""
    todo, stale = [], []
    for run in dict.fromkeys(runs):
        try:
            if not run.is_done():
                todo.append(run)
        except StaleRun as err:
            stale += err.stale
    if stale:
        raise StaleRun(stale)
    return todo
