"""Simulated time: every thread (one per host slot) has its own virtual clock that
``sleep`` advances; the real sleep is the virtual one times ``time_scale`` (0 = no
waiting at all, 1 = real durations). The boot loop takes ``now`` and ``sleep`` as its
clock, so a 300 s boot timeout costs nothing at time scale 0."""

from __future__ import annotations

import threading
import time


class SimClock:
    def __init__(self, time_scale: float = 0.0, start: float | None = None) -> None:
        if time_scale < 0:
            raise ValueError("time scale must be >= 0")
        self.time_scale = time_scale
        self.start = time.time() if start is None else start
        self._local = threading.local()
        self._lock = threading.Lock()
        self.slept = 0.0  # virtual seconds slept by all threads (for benchmarks)

    def now(self) -> float:
        """This thread's virtual time (unix seconds)."""
        t: float | None = getattr(self._local, "t", None)
        if t is None:
            t = self._local.t = self.start
        return t

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._local.t = self.now() + seconds
        with self._lock:
            self.slept += seconds
        if self.time_scale > 0:
            time.sleep(seconds * self.time_scale)

    def sync(self, t: float) -> None:
        """Move this thread's clock forward to ``t`` (a slot that picks up work late)."""
        if t > self.now():
            self._local.t = t
