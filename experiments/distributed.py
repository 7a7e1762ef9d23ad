"""The collectives of one run on N processes (`make exp NPROC=N`, or `torchrun
--nproc_per_node=N -m experiments`; `experiments/launch.py` starts the processes).

Each process (rank) trains the same model on its slice of every step's global batch
(`bilevel.parallel.Shard`, `BatchMaker`); the methods' losses are the ranks' parts of the global
ones and gradients are summed over ranks, so a run on N processes is the run on one (up to float
rounding, and BatchNorm: see docs/experiments.md). Rank 0 alone writes the run directory,
evaluates, logs and shows the progress bar; every decision that ends the loop (divergence, a
stop request) is taken by all ranks together.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from bilevel import Shard


def in_group() -> bool:
    """This process is one of several (`launch` or torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> Shard:
    """Join the process group `torchrun` describes (WORLD_SIZE > 1): NCCL with GPUs, else
    gloo. One process: nothing to join."""
    if in_group() and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return Shard.current()


def barrier(shard: Shard) -> None:
    if shard.parallel:
        dist.barrier(group=shard.group)


def any_rank(flag: bool, shard: Shard, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (one all-reduce; one process: `flag`)."""
    if not shard.parallel:
        return bool(flag)
    return bool(shard.total(torch.tensor(int(bool(flag)), device=device)) > 0)


def sum_logs(running: dict[str, Any], shard: Shard, device: torch.device) -> dict[str, Any]:
    """The global sums of the logs: each rank logs its share, so the sum over ranks."""
    if not shard.parallel or not running:
        return running
    keys = sorted(running)
    values = torch.stack([torch.as_tensor(running[k], device=device).double() for k in keys])
    return dict(zip(keys, shard.total(values), strict=True))


def gather_logs(running: dict[str, Any], shard: Shard) -> dict | list[dict]:
    """Every rank's running log sums, for a checkpoint between evaluations (exact values and
    types, so a resumed run adds up as an uninterrupted one); one process: its own dict."""
    if not shard.parallel:
        return running
    mine = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in running.items()}
    every: list[Any] = [None] * shard.world
    dist.all_gather_object(every, mine, group=shard.group)
    return every


def restore_logs(saved: dict | list[dict], shard: Shard) -> dict[str, Any]:
    """This rank's running sums from `gather_logs`' record (from a run on another number of
    processes: rank 0 takes them all)."""
    if isinstance(saved, dict):
        return dict(saved) if shard.rank == 0 else {}
    if len(saved) == shard.world:
        return dict(saved[shard.rank])
    if shard.rank > 0:
        return {}
    total: dict[str, Any] = {}
    for part in saved:
        for k, v in part.items():
            total[k] = total.get(k, 0.0) + v
    return total


def sync_buffers(model: torch.nn.Module, shard: Shard) -> None:
    """Rank 0's buffers (BatchNorm running statistics, computed per rank from its slice) on
    every rank, as DistributedDataParallel's `broadcast_buffers` does."""
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    if not shard.parallel or not buffers:
        return
    flat = torch.cat([b.flatten() for b in buffers])
    dist.broadcast(flat, src=0, group=shard.group)
    for b, new in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
        b.copy_(new.view_as(b))
