"""Run named experiments over seeds (skipping finished runs) and tabulate mean ± std.

Usable from a notebook (`collect`, `table`) and as the engine of the check commands.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments.config import ConfigError, check_seed
from experiments.run import Run, run_name


@dataclass(frozen=True)
class Spec:
    """One row of a table: an experiment with command-line changes, and a label for it."""

    name: str
    overrides: tuple[str, ...] = ()
    label: str = ""
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def title(self) -> str:
        return self.label or run_name(self.name, self.overrides)

    def run(self, seed: int, scale: str = "full", root: Path | None = None) -> Run:
        """This row's run at `seed` (`experiments.run.Run`: directory, config, status)."""
        return Run(self.name, seed, scale, self.overrides, root)


def collect(
    specs: list[Spec], seeds: list[int], scale: str = "full", root: Path | None = None
) -> pd.DataFrame:
    """One row per (spec, seed): the primary test metric of the final model, and costs."""
    rows = []
    for spec in specs:
        for seed in seeds:
            s = spec.run(seed, scale, root).ensure()
            rows.append(
                {
                    "run": spec.title,
                    "experiment": spec.name,
                    "seed": seed,
                    "metric": s["primary"],
                    "value": s["final"][s["primary"]],
                    "wall_time_s": s["wall_time_s"],
                    "steps_per_s": s["steps_per_s"],
                }
            )
    return pd.DataFrame(rows)


def collect_groups(
    groups: list[tuple[list[Spec], list[int]]], scale: str = "full", root: Path | None = None
) -> pd.DataFrame:
    """`collect` for each (specs, seeds) group, in one frame."""
    return pd.concat([collect(s, seeds, scale, root) for s, seeds in groups], ignore_index=True)


def runs_of(
    groups: list[tuple[list[Spec], list[int]]], scale: str = "full", root: Path | None = None
) -> list[Run]:
    """Every run of `collect_groups`' groups."""
    return [
        spec.run(seed, scale, root) for specs, seeds in groups for spec in specs for seed in seeds
    ]


def seed_list(text: str) -> list[int]:
    """ "0,1,2" → [0, 1, 2] (command-line seeds, each in [0, 2^63 − 1])."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds: {text!r} is not a list like 0,1,2") from None
    for seed in seeds:
        try:
            check_seed(seed)
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return seeds


def check_parser(description: str) -> argparse.ArgumentParser:
    """The options of the over-seeds checks (`make baselines`, `make check-meta`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=seed_list, default="0,1,2", help="digits seeds")
    parser.add_argument(
        "--face-seeds",
        type=seed_list,
        default="0,1",
        help="synthetic-faces seeds (about 10 min a run)",
    )
    parser.add_argument("--scale", choices=("full", "smoke"), default="full")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument(
        "--docs", type=Path, default=None, help="also write the docs' table to DOCS/<name>.md"
    )
    job_options(parser)
    return parser


def job_options(parser: argparse.ArgumentParser) -> None:
    """--executor and --parallel: train missing runs as submitit jobs (analysis.sweep)."""
    parser.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default=None,
        help="train missing runs as submitit jobs (default: one after another in-process)",
    )
    parser.add_argument("--parallel", type=int, default=2, help="jobs at a time")


def per_seed(frame: pd.DataFrame, run: str) -> str:
    """`run`'s values by seed, "7.40, 9.40, 9.20"."""
    values = frame[frame.run == run].sort_values("seed").value
    return ", ".join(f"{v:.2f}" for v in values)


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """mean ± std over seeds per run (in the order of first appearance); one seed: its value."""
    order = list(dict.fromkeys(frame.run))
    grouped = frame.groupby("run", sort=False)
    out = pd.DataFrame(
        {
            "metric": grouped.metric.first(),
            "mean": grouped.value.mean(),
            "std": grouped.value.std(ddof=1).fillna(0.0),
            "seeds": grouped.seed.count(),
            "steps_per_s": grouped.steps_per_s.mean(),
        }
    ).loc[order]
    out["result"] = [
        f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f}"
        for m, s, n in zip(out["mean"], out["std"], out["seeds"], strict=True)
    ]
    return out.reset_index()
