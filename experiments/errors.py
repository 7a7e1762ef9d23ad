"""Every error a run ends with, each carrying the exit status of the command that met it
(`experiments.cli.run_cli` turns one into a message and that status, never a traceback).

    exit 2    ConfigError (a bad setting; RunLocked, CheckpointError), DataError, OSError
              (a file-system problem), bilevel.extras.MissingExtra (an optional dependency
              the command needs, named with its extra): nothing was trained
    exit 1    Diverged: the training loss stopped being finite
    exit 130  Interrupted (Ctrl-C): the run directory keeps its last checkpoint
    exit 143  Stopped (SIGTERM): a checkpoint of the step it was in was written
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar


class ConfigError(ValueError):
    """A bad experiment setting; the message names the key."""

    status: ClassVar[int] = 2


class RunLocked(ConfigError):
    """Another process writes this run directory."""


class CheckpointError(ConfigError):
    """No usable checkpoint, or one that belongs to another run."""


class DataError(RuntimeError):
    """Missing or malformed data, with a message that names the file and says what to do."""

    status: ClassVar[int] = 2


class Diverged(RuntimeError):
    """The training loss stopped being finite; the run directory keeps the last checkpoint."""

    status: ClassVar[int] = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training: where it stopped and which checkpoint a rerun resumes from."""

    status: ClassVar[int] = 130

    def __init__(self, step: int, kept: int, path: Path) -> None:
        super().__init__(step, kept, path)
        self.step, self.kept, self.path = step, kept, path


class Stopped(Exception):
    """Training stopped on request after writing a checkpoint at step `step`."""

    status: ClassVar[int] = 143

    def __init__(self, reason: str, step: int, path: Path) -> None:
        super().__init__(f"{reason}: checkpoint written at step {step} in {path}")
        self.reason, self.step, self.path = reason, step, path
