"""Running a function on N CPU processes joined by gloo, as `torchrun` would, for tests.

`run_ranks(fn, world, tmp, *args)` spawns `world` processes; each joins a gloo group (a file
store under `tmp`), calls `fn(*args)` and saves its return value; the list of return values,
by rank, comes back. `fn` must be importable (a module-level function)."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, tmp: str, fn, args) -> None:
    torch.set_num_threads(1)
    store = Path(tmp) / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        out = fn(*args)
    except BaseException:
        (Path(tmp) / f"error{rank}.txt").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()
    torch.save(out, Path(tmp) / f"rank{rank}.pt")


def run_ranks(fn, world: int, tmp: Path, *args) -> list:
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    try:
        mp.start_processes(_worker, (world, str(tmp), fn, args), nprocs=world, start_method="spawn")
    except mp.ProcessRaisedException as err:
        errors = sorted(tmp.glob("error*.txt"))
        raise AssertionError(errors[0].read_text() if errors else str(err)) from None
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(world)]
