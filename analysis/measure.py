"""Timing and peak memory of one call, on CPU or CUDA, and how close two gradients are.

CPU peak memory is the rise of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs) over the resident set before the call. For that to follow tensor
allocations, freed blocks must go back to the OS at once, so during that one measured call
glibc's allocator is switched (`mallopt`) to mmap every block of 64 KiB or more. That mode is
slow (a page fault per new page), so timings run in `fast_allocator()` mode: blocks below
32 MiB are reused from the heap, as glibc's adaptive default ends up doing.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time
from collections.abc import Callable

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: leave the allocator alone
        return None


def _allocator(mmap_threshold: int, trim_threshold: int) -> None:
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        libc.malloc_trim(0)


def fast_allocator() -> None:
    """Heap reuse for blocks below 32 MiB (for timings)."""
    _allocator(32 * 2**20, 64 * 2**20)


def machine_load() -> str:
    """The machine's load average over the last minute against its cores; it counts this
    process's own threads too, so a load above the core count (by more than half a core) means
    other work shared the cores and the timings include it."""
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    busy = " (busy: other work shared the cores)" if load > cores + 0.5 else ""
    threads = torch.get_num_threads()
    return f"load average {load:.2f} over 1 min on {cores} cores, {threads} torch threads{busy}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(
    fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1
) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak extra memory of one call of `fn`, in MiB (NaN where it cannot be measured)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    _allocator(64 * 2**10, 0)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current resident set
        base = _status_kb("VmRSS")
        fn()
        return max(0, _status_kb("VmHWM") - base) / 1024
    except OSError:
        return float("nan")
    finally:
        fast_allocator()


def agreement(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(relative error ‖got − ref‖/‖ref‖, cosine) of two gradient dicts, flattened, in float64."""

    def flat(grads: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([g.reshape(-1) for g in grads.values()]).double()

    a, b = flat(got), flat(ref)
    rel = float((a - b).norm() / b.norm())
    return rel, float(torch.nn.functional.cosine_similarity(a, b, dim=0))
