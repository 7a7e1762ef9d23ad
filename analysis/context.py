"""Where a figure finds its runs: the scale, the runs root and the seeds it shows.

Each figure module has `needs(ctx) -> [(Spec, seed)]` (the runs it reads) and
`build(ctx) -> [paths]` (the files it writes under `ctx.out`); `analysis.figures` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from experiments import checkpoint
from experiments.run import Run
from experiments.rundir import RunDir

from .seeds import Spec

Need = tuple[Spec, int]


def snapshots(path: Path) -> list[tuple[int, Path]]:
    """(step, file) of the run's snapshots; an error naming the run when it kept none."""
    found = checkpoint.snapshots(RunDir(Path(path)))
    if not found:
        raise FileNotFoundError(f"{path} has no snapshots/ (train it with snapshots=true)")
    return found


@dataclass(frozen=True)
class Context:
    out: Path = Path("figures")
    scale: str = "full"  # "smoke": read (and make) the `+smoke` runs
    root: Path | None = None  # runs root (default: $RUNS_ROOT or runs/)
    seeds: tuple[int, ...] = (0, 1)  # seeds of figures that show spread
    docs: Path | None = None  # where the documentation's copies of the tables go (`--docs`)

    @property
    def smoke(self) -> bool:
        return self.scale == "smoke"

    def run(self, spec: Spec, seed: int) -> Run:
        return spec.run(seed, self.scale, self.root)

    def runs(self, needs: list[Need]) -> list[Run]:
        return [self.run(spec, seed) for spec, seed in needs]

    def path(self, spec: Spec, seed: int) -> Path:
        return self.run(spec, seed).path

    def done(self, spec: Spec, seed: int) -> bool:
        return self.run(spec, seed).is_done()

    def metrics(self, spec: Spec, seed: int) -> pd.DataFrame:
        return self.run(spec, seed).metrics()

    def summary(self, spec: Spec, seed: int) -> dict:
        return self.run(spec, seed).summary()

    def final(self, spec: Spec, seed: int) -> float:
        """The run's primary test metric at the end of training."""
        s = self.summary(spec, seed)
        return float(s["final"][s["primary"]])

    def curve(self, spec: Spec, seed: int, split: str, metric: str) -> pd.DataFrame:
        """(step, value) of one logged metric."""
        frame = self.metrics(spec, seed)
        part = frame[(frame.split == split) & (frame.metric == metric)]
        return part[["step", "value"]].reset_index(drop=True)
