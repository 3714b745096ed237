"""Hands a run's boots to host slots.

``plan_chunks`` (pure) cuts each cell's missing boot indices into chunks of consecutive
indices and orders each host's chunks so that cells are interleaved over the whole run: a
seeded shuffle of the cells per round, round robin. So the time of night and the state of
a host are not confounded with the axis under study (a cell's boots are spread over the
run, not bunched at its start or end).

``Scheduler`` runs one thread per host slot (``slots`` from the lab, capped by a per-host
limit); each slot takes the next chunk of its host and feeds it to ``run_chunk`` (the boot
loop), which yields the recorded results. A host whose health check fails is set aside
(its remaining chunks are not handed out); a cell that adaptive stopping has decided is
skipped; ``stop()`` (Ctrl-C) stops handing out boots after the current ones.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from harness.model import BootResult, Cell


@dataclass(frozen=True)
class Chunk:
    """Consecutive boot indices of one cell, booted in order on one host slot."""

    cell: Cell
    indices: tuple[int, ...]


class Stopper(Protocol):
    """Adaptive stopping (``harness.adaptive``): has a cell been decided?"""

    def observe(self, result: BootResult) -> None: ...

    def decided(self, cell_id: str) -> bool: ...


def _runs(indices: Sequence[int], size: int) -> list[tuple[int, ...]]:
    """Cut sorted indices into runs of consecutive numbers, at most ``size`` long."""
    out: list[tuple[int, ...]] = []
    cur: list[int] = []
    for i in indices:
        if cur and (i != cur[-1] + 1 or len(cur) >= size):
            out.append(tuple(cur))
            cur = []
        cur.append(i)
    if cur:
        out.append(tuple(cur))
    return out


def plan_chunks(cells: Iterable[Cell], done: Mapping[str, set[int]] | None = None, *,
                chunk_size: int = 5, seed: int = 0) -> dict[str, list[Chunk]]:
    """Per host, the chunks still to boot in hand-out order (pure, seeded).

    ``done`` maps a cell id to the indices already recorded (resume): they are left out.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    done = done or {}
    per_host: dict[str, list[list[Chunk]]] = {}
    for cell in cells:
        todo = [i for i in range(cell.boots) if i not in done.get(cell.id, set())]
        chunks = [Chunk(cell, run) for run in _runs(todo, chunk_size)]
        if chunks:
            per_host.setdefault(cell.host, []).append(chunks)
    rng = random.Random(seed)
    plan: dict[str, list[Chunk]] = {}
    for host in sorted(per_host):
        queues = per_host[host]
        order: list[Chunk] = []
        rnd = 0
        while True:
            this_round = [q[rnd] for q in queues if rnd < len(q)]
            if not this_round:
                break
            rng.shuffle(this_round)
            order += this_round
            rnd += 1
        plan[host] = order
    return plan


@dataclass
class SlotStats:
    host: str
    slot: int
    busy_s: float = 0.0
    boots: int = 0
    first_idle: float | None = None  # when this slot first found no work (the tail)


@dataclass
class SchedulerStats:
    started: float = 0.0
    finished: float = 0.0
    slots: list[SlotStats] = field(default_factory=list)
    set_aside: dict[str, str] = field(default_factory=dict)  # host -> why
    skipped: int = 0  # boots not run because their cell was decided early
    interrupted: bool = False

    def utilization(self) -> float:
        """Busy share of all slots from the start until the first slot ran dry."""
        if not self.slots:
            return 0.0
        tail = min((s.first_idle or self.finished) for s in self.slots)
        span = (tail - self.started) * len(self.slots)
        if span <= 0:
            return 1.0
        busy = sum(min(s.busy_s, tail - self.started) for s in self.slots)
        return busy / span


RunChunk = Callable[[Chunk], Iterator[BootResult] | Iterable[BootResult]]


class Scheduler:
    """Runs a plan on host slots with threads; callbacks come from the slot threads."""

    def __init__(self, plan: Mapping[str, Sequence[Chunk]], slots: Mapping[str, int],
                 run_chunk: RunChunk, *,
                 on_result: Callable[[BootResult], None] | None = None,
                 on_host: Callable[[str, str], None] | None = None,
                 host_ok: Callable[[str], str | None] | None = None,
                 stopper: Stopper | None = None,
                 max_per_host: int | None = None,
                 on_stop: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 gate: int | None = None) -> None:
        self._queues = {h: list(reversed(chunks)) for h, chunks in plan.items()}
        self._slots = {h: max(1, min(slots.get(h, 1), max_per_host or 1 << 30))
                       for h in self._queues}
        self._run_chunk = run_chunk
        self._on_result = on_result or (lambda r: None)
        self._on_host = on_host or (lambda h, s: None)
        self._host_ok = host_ok or (lambda h: None)
        self._stopper = stopper
        self._on_stop = on_stop or (lambda: None)
        self._clock = clock
        # at most ``gate`` slots run a chunk at once. For boots that never wait for real
        # (a simulated lab at time scale 0) every slot is pure work: more threads only
        # fight over the GIL (measured: 8 slot threads ran a third slower than 2, and 2
        # a third slower than 1).
        # The slots keep their own (virtual) clocks, so the simulated timing is unchanged.
        self._gate = threading.BoundedSemaphore(gate) if gate else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.stats = SchedulerStats()

    @property
    def total_slots(self) -> int:
        return sum(self._slots.values())

    def stop(self) -> None:
        """Stop handing out boots; boots under way finish and are recorded."""
        self.stats.interrupted = True
        self._stop.set()
        self._on_stop()  # e.g. the boot loop abandons the boots under way

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def pending(self) -> dict[str, int]:
        """Boots not handed out yet, per host."""
        with self._lock:
            return {h: sum(len(c.indices) for c in q) for h, q in self._queues.items()}

    def _next(self, host: str) -> Chunk | None:
        with self._lock:
            q = self._queues[host]
            while q and not self._stop.is_set():
                chunk = q.pop()
                if self._stopper and self._stopper.decided(chunk.cell.id):
                    self.stats.skipped += len(chunk.indices)
                    continue
                return chunk
            return None

    def _set_aside(self, host: str, why: str) -> None:
        with self._lock:
            if host in self.stats.set_aside:
                return
            self.stats.set_aside[host] = why
            self._queues[host].clear()
        self._on_host(host, f"set aside: {why}")

    def _slot(self, st: SlotStats) -> None:
        host = st.host
        try:
            while True:
                chunk = self._next(host)
                if chunk is None:
                    break
                with self._gate or contextlib.nullcontext():
                    t0 = self._clock()
                    try:
                        self._boot(chunk, st)
                    finally:
                        st.busy_s += self._clock() - t0
                why = self._host_ok(host)
                if why:
                    self._set_aside(host, why)
        except BaseException as exc:  # a bug in a stage: stop everything, report it
            self._errors.append(exc)
            self._stop.set()
        finally:
            st.first_idle = self._clock()

    def _boot(self, chunk: Chunk, st: SlotStats) -> None:
        it = iter(self._run_chunk(chunk))
        done = 0
        try:
            for result in it:
                st.boots += 1
                done += 1
                if self._stopper:
                    self._stopper.observe(result)
                self._on_result(result)
                if self._stop.is_set():
                    break
                if self._stopper and self._stopper.decided(chunk.cell.id):
                    with self._lock:
                        self.stats.skipped += len(chunk.indices) - done
                    break
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # let the boot loop clean up (its finally blocks run)

    def run(self) -> SchedulerStats:
        """Run until every chunk is done, the run is stopped, or a stage fails."""
        self.stats.started = self._clock()
        threads: list[threading.Thread] = []
        for host in sorted(self._queues):
            self._on_host(host, "running")
            for n in range(self._slots[host]):
                st = SlotStats(host, n)
                self.stats.slots.append(st)
                t = threading.Thread(target=self._slot, args=(st,), name=f"{host}#{n}",
                                     daemon=True)
                threads.append(t)
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            if self.stopping:
                raise  # asked to stop already: do not wait for the slots again
            self.stop()
            for t in threads:
                t.join()
        self.stats.finished = self._clock()
        for host in sorted(self._queues):
            if host not in self.stats.set_aside:
                self._on_host(host, "stopped" if self.stats.interrupted else "done")
        if self._errors:
            raise self._errors[0]
        return self.stats
