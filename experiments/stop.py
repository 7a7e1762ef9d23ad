"""Stopping a run cleanly on a signal: SIGTERM (a `kill`, a cluster's preemption) or SIGUSR2
(submitit's preemption / time-out warning) asks the training loop to write a checkpoint at the end
of the step it is in and stop; the same command, or the requeued job, resumes from that step with
the numbers of an uninterrupted run.

    with StopRequest.on(signal.SIGTERM) as stop:
        train(cfg, seed, stop=stop)          # raises Stopped after its checkpoint
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import Stopped  # noqa: F401 - raised by the training loop, re-exported


class StopRequest:
    """Set by a signal handler, read by the training loop once per step (no system call)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.previous: dict[int, Any] = {}  # the handlers `on` replaced, by signal number

    def __bool__(self) -> bool:
        return self.reason is not None

    def request(self, signum: int, frame: Any = None) -> None:
        self.reason = f"stopped by {signal.Signals(signum).name}"

    @classmethod
    @contextmanager
    def on(cls, *signals: int) -> Iterator[StopRequest]:
        """A request set by any of `signals` while the block runs; old handlers restored after."""
        stop = cls()
        for s in signals:
            stop.previous[s] = signal.signal(s, stop.request)
        try:
            yield stop
        finally:
            for s, handler in stop.previous.items():
                signal.signal(s, handler)
