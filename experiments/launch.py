"""Starting the processes of one run on this machine (`make exp NPROC=N`): spawned workers that
each run the `make exp` entry point with RANK and WORLD_SIZE set. The entry point is passed in
(`launch(n, argv, main)`), so this module imports nothing of the command: the collectives the
training loop uses are in `experiments/distributed.py`."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable

import torch
import torch.multiprocessing as mp

Entry = Callable[[list[str]], int]  # a module-level function (spawn pickles it by name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, entry: Entry, argv: list[str]) -> None:
    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)}
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    if not torch.cuda.is_available():  # the cores shared among the processes
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    code = entry(argv)
    if code:
        sys.exit(code)


def launch(world: int, argv: list[str], entry: Entry) -> int:
    """Run `entry(argv)` (the `make exp` command's `main`, passed in by the command itself) in
    `world` processes on this machine (a rendezvous on localhost) and return rank 0's exit
    status (else the first non-zero one). SIGTERM is passed on to every process (they stop
    together at a checkpoint); a process that fails unexpectedly takes the others down after
    60 s."""
    ctx = mp.start_processes(
        _worker, (world, _free_port(), entry, argv), nprocs=world, join=False, start_method="spawn"
    )
    procs = ctx.processes

    def forward(signum, frame):
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signum)

    previous = signal.signal(signal.SIGTERM, forward)
    failed_at = None
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.2)
            codes = [p.exitcode for p in procs]
            if failed_at is None and any(c not in (None, 0, 1, 2, 130, 143) for c in codes):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > 60:
                for p in procs:
                    if p.is_alive():
                        p.kill()
    finally:
        signal.signal(signal.SIGTERM, previous)
    codes = [p.exitcode for p in procs]
    return codes[0] or next((c for c in codes if c), 0)
