"""The `make exp` command: `python -m experiments NAME [--seed N] [--scale smoke] [--nproc N]
[key=value ...]`.

`--nproc N` trains the run on N processes (`experiments/launch.py` starts them, each running
this `main`; `experiments/distributed.py` holds the collectives the loop uses); under `torchrun`
(`torchrun --standalone --nproc_per_node=N -m experiments NAME …`) each process joins the group
torchrun describes."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from . import configs, distributed, launch
from .build import check_split
from .cli import run_cli, spelled
from .config import check_run_args
from .run import Run
from .stop import StopRequest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=spelled("exp"), description=__doc__)
    parser.add_argument("name", nargs="?", help="experiment name (--list shows them)")
    parser.add_argument("overrides", nargs="*", help="key=value settings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=("full", "smoke"), default="full")
    parser.add_argument("--list", action="store_true", help="list the named experiments")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--nproc", type=int, default=1, help="processes (data parallel)")
    args = parser.parse_intermixed_args(argv)  # key=value may follow the options
    if args.list or not args.name:
        print("experiments:\n  " + "\n  ".join(configs.names()))
        return 0 if args.list else 2
    run = Run(args.name, args.seed, args.scale, tuple(args.overrides))
    return run_cli(lambda: _run(run, args, argv), f"`{run.command(args.nproc)}`")


def _run(run: Run, args: argparse.Namespace, argv: list[str] | None) -> int:
    check_run_args(args.seed, args.nproc)
    cfg = run.config  # an unknown experiment, key or bad value stops here
    if args.nproc > 1 and not distributed.in_group():  # start the processes, each runs main
        check_split(cfg, args.nproc)
        return launch.launch(args.nproc, sys.argv[1:] if argv is None else argv, main)
    distributed.init()
    with StopRequest.on(signal.SIGTERM) as stop:  # `kill`: checkpoint this step, then stop
        summary = run.train(progress=not args.quiet, stop=stop)
    if "final" in summary:  # rank 0
        keys = ("run", "seed", "final", "wall_time_s", "nproc")
        print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0
