"""`make smoke`: every method × every estimator × the speed settings, a few training steps each
on the device, as a table, so that a new machine (a GPU node) is checked in minutes.

Rows are derived, never listed by hand: for each method and each CPU-scale dataset it has an
experiment on (digits, synthetic faces), the first such experiment, and with `--paper` (the
default on CUDA) the paper-size experiments of `make bench` (CNN-13, WRN-28-2, TCDCN; stand-in
data in the real formats when the datasets are absent, as `make bench` writes them); a meta
method runs once per estimator in `bilevel.ESTIMATORS`, a base method once, each also under
each of `--settings` (default `amp=bf16`, `channels_last=true`, `compile=true`). Every run is
the experiment at `SCALE=smoke` cut to `--steps` steps and trained by the training loop
(`experiments.train`, evaluation and checkpoint included) into a temporary folder. Status:

    ok        trained; `ms_per_step` from the run's steps per second (evaluation included)
    refused   the configuration is refused before any work, by design (e.g. `analytic` on a deep
              model, `higher` with Adam); the message says why
    FAILED    anything else: an exception while training (with the innermost file:line of the
              toolkit it passed through), a diverged run

Writes `results/smoke.{csv,md}` and exits with status 1 if a row FAILED.

    python -m analysis.smoke [--device cuda] [--steps 6] [--paper] [--only metasemi_digits ...]
        [--estimators func,forward] [--settings amp=bf16 compile=true]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

import pandas as pd
import torch

from analysis.bench import EXPERIMENTS, ensure_data
from bilevel import ESTIMATORS
from experiments import configs
from experiments.cli import run_cli
from experiments.config import ConfigError
from experiments.run import Run
from methods import METHODS

DATASETS = ("digits", "synthfaces")  # what runs without downloads (generated here)
SETTINGS = ("amp=bf16", "channels_last=true", "compile=true")


def experiments() -> list[str]:
    """The first experiment of each (method, dataset) pair on the CPU-scale datasets."""
    seen: dict[tuple[str, str], str] = {}
    for name in configs.names():
        cfg = configs.get(name)
        if cfg.dataset in DATASETS:
            seen.setdefault((cfg.method, cfg.dataset), name)
    return list(seen.values())


def selected(only: list[str] | None, paper: bool) -> list[str]:
    """`only`, or the derived CPU-scale experiments and, with `paper`, `make bench`'s."""
    if only is not None:
        return only
    return experiments() + (list(EXPERIMENTS) if paper else [])


def is_meta(name: str) -> bool:
    return METHODS.base_of(configs.get(name).method) is not None


def runs(names: list[str], estimators: list[str], settings: list[str]) -> list[tuple[str, str]]:
    """(experiment, overrides) for every row: each estimator (a meta method) or the default run
    (a base method), alone and with each setting."""
    rows = []
    for name in names:
        variants = [f"estimator={e}" for e in estimators] if is_meta(name) else [""]
        for v in variants:
            rows += [(name, v)] + [(name, f"{v} {s}".strip()) for s in settings]
    return rows


def origin(err: BaseException) -> str:
    """file:line of the innermost frame of the toolkit (not of an installed package) that
    `err` passed through; of the innermost frame when none."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "site-packages" not in f.filename] or frames
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno}"


def one(name: str, override: str, device: str, steps: int, root: Path) -> dict:
    cfg = configs.get(name)
    row = {"experiment": name, "method": cfg.method, "setting": override or "-", "device": device}
    items = [f"device={device}", f"steps={steps}", f"eval_every={steps}", "tensorboard=false"]
    items += override.split()
    try:
        summary = Run(name, 0, "smoke", tuple(items), root).train(progress=False)
    except ConfigError as err:
        return row | {"status": "refused", "ms_per_step": float("nan"), "message": str(err)}
    except Exception as err:  # a smoke check reports every failure, with its origin, and goes on
        first = str(err).splitlines()[0] if str(err) else ""
        message = f"{type(err).__name__}: {first} ({origin(err)})"
        return row | {"status": "FAILED", "ms_per_step": float("nan"), "message": message}
    ran = ",".join(summary.get("estimators_run", []))
    message = f"ran {ran}" if ran else ""
    return row | {"status": "ok", "ms_per_step": 1e3 / summary["steps_per_s"], "message": message}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--only", nargs="*", default=None, help="experiments (default: derived)")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    parser.add_argument("--paper", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    paper = args.device.startswith("cuda") if args.paper is None else args.paper
    names = selected(args.only, paper)
    needs_data = tuple(n for n in names if configs.get(n).dataset not in DATASETS)
    try:  # also: an unknown name stops here, before any run
        ensure_data(needs_data)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    estimators = [e for e in args.estimators.split(",") if e]
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise ConfigError(f"--estimators: unknown {unknown}; valid: {', '.join(ESTIMATORS)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="smoke-") as root:
        for name, override in runs(names, estimators, args.settings):
            rows.append(one(name, override, args.device, args.steps, Path(root)))
            r = rows[-1]
            print(f"  {r['status']:8} {name} {override}  {r['message'][:100]}", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "smoke.csv", index=False)
    text = frame.to_markdown(index=False, floatfmt=".1f")
    (args.out / "smoke.md").write_text(f"{args.steps} steps per run\n\n{text}\n")
    counts = frame.status.value_counts().to_dict()
    print(", ".join(f"{n} {s}" for s, n in counts.items()) + f"; wrote {args.out}/smoke.{{csv,md}}")
    return 1 if counts.get("FAILED") else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
