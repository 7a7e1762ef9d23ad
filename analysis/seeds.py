"""Run named experiments over seeds (skipping finished runs) and tabulate mean ± std.

Usable from a notebook (`collect`, `table`) and as the engine of the check commands.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments import configs
from experiments.config import (
    Config,
    ConfigError,
    apply_overrides,
    check_seed,
    config_defaults,
    smoke,
)
from experiments.rundir import RunDir, run_name
from experiments.stop import StopRequest
from experiments.train import stored_config, train


@dataclass(frozen=True)
class Spec:
    """One row of a table: an experiment with command-line changes, and a label for it."""

    name: str
    overrides: tuple[str, ...] = ()
    label: str = ""
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def title(self) -> str:
        return self.label or run_name(self.name, list(self.overrides))


def config_of(spec: Spec, scale: str = "full") -> Config:
    """The resolved config of `spec` (a bad key or value is a ConfigError here)."""
    cfg = configs.get(spec.name)
    return apply_overrides(smoke(cfg) if scale == "smoke" else cfg, list(spec.overrides))


def ensure_run(
    spec: Spec,
    seed: int,
    scale: str = "full",
    root: Path | None = None,
    progress: bool = True,
    stop: StopRequest | None = None,
) -> dict:
    """The summary of `spec` at `seed`, training it first unless it already finished."""
    if is_done(spec, seed, scale, root):
        return summary(spec, seed, scale, root)
    run_id = run_name(spec.name, list(spec.overrides), scale)
    cfg = config_of(spec, scale)
    return train(cfg, seed, scale, root=root, run_id=run_id, progress=progress, stop=stop)


def collect(
    specs: list[Spec], seeds: list[int], scale: str = "full", root: Path | None = None
) -> pd.DataFrame:
    """One row per (spec, seed): the primary test metric of the final model, and costs."""
    rows = []
    for spec in specs:
        for seed in seeds:
            s = ensure_run(spec, seed, scale, root)
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


def runs_of(groups: list[tuple[list[Spec], list[int]]]) -> list[tuple[Spec, int]]:
    """Every (spec, seed) of `collect_groups`' groups."""
    return [(spec, seed) for specs, seeds in groups for spec in specs for seed in seeds]


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
    job_options(parser)
    return parser


def job_options(parser: argparse.ArgumentParser) -> None:
    """--executor and --parallel: train missing runs as submitit jobs (analysis.cluster)."""
    parser.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default=None,
        help="train missing runs as submitit jobs (default: one after another in-process)",
    )
    parser.add_argument("--parallel", type=int, default=2, help="jobs at a time")


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


def run_path(spec: Spec, seed: int, scale: str = "full", root: Path | None = None) -> Path:
    """The run directory of `spec` at `seed`."""
    return RunDir.for_run(run_name(spec.name, list(spec.overrides), scale), seed, root).path


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


def is_done(spec: Spec, seed: int, scale: str = "full", root: Path | None = None) -> bool:
    """Whether `spec` at `seed` has finished under its current config. A finished run of
    another config (the experiment or a default changed since) is StaleRun, never read."""
    path = run_path(spec, seed, scale, root)
    if not (path / "summary.json").is_file():
        return False
    stored = stored_config(config_of(spec, scale), seed, scale)
    diff = RunDir(path).config_diff(stored, config_defaults())
    if diff:
        raise StaleRun([(path, diff)])
    return True


def unfinished(
    runs: list[tuple[Spec, int]], scale: str = "full", root: Path | None = None
) -> list[tuple[Spec, int]]:
    """The runs of `runs` still to train. A finished run whose config is not what its
    experiment resolves to now is StaleRun, every such run named in one error (the check and
    figure commands call this before any work)."""
    todo, stale = [], []
    for spec, seed in dict.fromkeys(runs):
        try:
            if not is_done(spec, seed, scale, root):
                todo.append((spec, seed))
        except StaleRun as err:
            stale += err.stale
    if stale:
        raise StaleRun(stale)
    return todo


def command(spec: Spec, seed: int, scale: str = "full") -> str:
    """The `make exp` command that trains `spec` at `seed`."""
    parts = [f"make exp NAME={spec.name} SEED={seed}"]
    if scale != "full":
        parts.append(f"SCALE={scale}")
    if spec.overrides:
        parts.append(f'ARGS="{" ".join(spec.overrides)}"')
    return " ".join(parts)


def metrics(spec: Spec, seed: int, scale: str = "full", root: Path | None = None) -> pd.DataFrame:
    """metrics.csv of a run (columns step, split, metric, value)."""
    return pd.read_csv(run_path(spec, seed, scale, root) / "metrics.csv")


def summary(spec: Spec, seed: int, scale: str = "full", root: Path | None = None) -> dict:
    return json.loads((run_path(spec, seed, scale, root) / "summary.json").read_text())
