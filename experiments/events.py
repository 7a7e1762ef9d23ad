"""TensorBoard event files next to `metrics.csv`: every row of an evaluation as a scalar
`<split>/<metric>` at its step, written when `metrics.csv` is (so never ahead of the checkpoint).

    tensorboard --logdir runs/          # every run, live; a sweep's runs side by side

TensorBoard is an optional dependency (`pip install 'bilevel-ssl[tensorboard]'`), imported only
when a run writes events; `config.validate` refuses `tensorboard=true` without it.
"""

from __future__ import annotations

from pathlib import Path

from bilevel.extras import require


class Events:
    """A writer for `<run>/tb/`; `enabled=False` writes nothing. On resume from step `start`,
    events written after `start` by a process that was lost are discarded (`purge_step`)."""

    def __init__(self, run: Path, start: int, enabled: bool = True) -> None:
        self.writer = None
        self.folder = run / "tb"
        if enabled:
            what = "tensorboard=true (TensorBoard event files; tensorboard=false writes none)"
            writer = require("tensorboard", what, "torch.utils.tensorboard").SummaryWriter
            self.writer = writer(str(self.folder), purge_step=start + 1 if start else None)

    def _gone(self) -> bool:
        """The folder was removed under the run (the loop reports that, naming the run
        directory): the writer is dropped, as its thread could only fail with a traceback."""
        if self.writer is not None and not self.folder.is_dir():
            self.writer = None
        return self.writer is None

    def write(self, rows: list[tuple[int, str, str, float]]) -> None:
        """(step, split, metric, value) rows as scalars; flushed to disk at once."""
        if self._gone():
            return
        for step, split, metric, value in rows:
            self.writer.add_scalar(f"{split}/{metric}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if not self._gone():
            self.writer.close()
