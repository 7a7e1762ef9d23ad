"""`make reproduce`: train every CPU-scale run the figures read (finished runs are skipped),
then build the figures. One line per run with its position, the time so far and the run's own
progress bar.

    python -m analysis.reproduce [--scale smoke] [--seeds 0,1] [--only NAME ...]
        [--executor local|slurm] [--parallel N]     (train the missing runs as submitit jobs)
"""

from __future__ import annotations

import sys
import time

from experiments.cli import run_cli
from experiments.run import unfinished

from .figures import all_needs, build_all, parse, report_missing
from .sweep import run_missing


def main(argv: list[str] | None = None) -> int:
    ctx, figures, args = parse(argv, __doc__.split("\n")[0])
    needs = ctx.runs(all_needs(ctx, figures))
    todo = unfinished(needs)  # stale runs stop it before any training
    print(f"{len(needs)} runs needed, {len(needs) - len(todo)} already finished", flush=True)
    start = time.perf_counter()
    if args.executor is not None:  # EXECUTOR=local|slurm: as submitit jobs
        run_missing(todo, args.executor, args.parallel)
    for i, run in enumerate([] if args.executor else todo, 1):
        minutes = (time.perf_counter() - start) / 60
        print(f"[{i}/{len(todo)}, {minutes:.1f} min] {run.name} seed {run.seed}", flush=True)
        run.ensure()
    missing = build_all(ctx, figures)
    print(f"reproduce took {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    if missing:  # only if a run did not finish, which ensure_run would have raised
        report_missing(ctx, missing)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
