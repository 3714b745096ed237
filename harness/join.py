"""Several controllers on one run (``harness run MATRIX --join RUN_ID``): the slots of
this controller take chunks from the run's work queue in the database
(``harness.store.queue``) instead of a plan of their own.

Each host gets as many slot threads here as it has slots; a thread boots only under a
slot it leased in the database, so however many controllers join, a host never has more
boots at once than its ``slots``. A thread that finds no free slot, or no chunk free for
now (all taken by live controllers), waits and looks again until its host's chunks are all
done: a controller that dies leaves its leases and chunks to the others at expiry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from harness.model import BootResult, Cell
from harness.scheduler import Chunk, RunChunk, Scheduler, SlotStats
from harness.store.queue import WorkItem, WorkQueue

POLL_S = 0.25  # an idle slot thread looks for a free slot or chunk this often


class SharedScheduler(Scheduler):
    def __init__(self, queue: WorkQueue, cells: Mapping[str, Cell], slots: Mapping[str, int],
                 run_chunk: RunChunk, *, poll_s: float = POLL_S, **kwargs: Any) -> None:
        super().__init__({h: [] for h in slots}, slots, self._guarded(run_chunk), **kwargs)
        self._wq = queue
        self._cells = dict(cells)
        self._poll = poll_s

    def _guarded(self, run_chunk: RunChunk) -> Callable[[Chunk], Iterator[BootResult]]:
        """Boots of a chunk one after the other while this controller's lease holds."""
        def run(chunk: Chunk) -> Iterator[BootResult]:
            it = iter(run_chunk(chunk))
            try:
                for result in it:
                    yield result
                    if not self._wq.alive():
                        return  # presumed dead by now: the others redo what is left
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        return run

    def pending(self) -> dict[str, int]:
        return {h: self._wq.left(h) for h in self._slots}

    def _slot(self, st: SlotStats) -> None:
        host = st.host
        try:
            while not self._stop.is_set() and host not in self.stats.set_aside:
                if self._wq.lost:  # presumed dead by the others: this controller stops
                    self.stop()
                    break
                # a simulated lab runs one slot at a time in a process (the gate): the
                # others wait here without holding a slot another controller could use
                with self._gate or contextlib.nullcontext():
                    item = self._wq.take(host)
                    if item is not None:
                        self._run_item(item, st)
                        continue
                if self._wq.left(host) == 0:
                    break
                self._stop.wait(self._poll)
        except BaseException as exc:  # a bug in a stage: stop everything, report it
            self._errors.append(exc)
            self._stop.set()
        finally:
            st.first_idle = self._clock()

    def _run_item(self, item: WorkItem, st: SlotStats) -> None:
        """Boot one chunk under its leased slot, then mark it done (or give it back)."""
        finished = False
        try:
            if item.indices:  # empty: all recorded by a controller that died after
                t0 = self._clock()
                try:
                    self._boot(Chunk(self._cells[item.cell_id], item.indices), st)
                finally:
                    st.busy_s += self._clock() - t0
            finished = not self._stop.is_set() and self._wq.alive()
        finally:
            if finished:
                self._wq.finish(item)
            else:  # stopped in the middle: the chunk goes back (or its lease lapses)
                with contextlib.suppress(Exception):
                    self._wq.abandon(item)
        why = self._host_ok(item.host)
        if why:
            self._set_aside(item.host, why)
