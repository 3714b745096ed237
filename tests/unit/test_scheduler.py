"""The scheduler: interleaved plan, host slots and limits, stop, set-aside, adaptive skip."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from harness.model import BootResult, Cell, Outcome
from harness.scheduler import Chunk, Scheduler, plan_chunks


def cells(hosts: tuple[str, ...] = ("h1", "h2"), guests: int = 4, boots: int = 20) -> list[Cell]:
    return [Cell(id=f"{h}/g{g}/vcpu4", matrix="m", host=h, guest=f"g{g}", vcpus=4, boots=boots)
            for h in hosts for g in range(guests)]


def result(cell: Cell, i: int, outcome: Outcome = Outcome.OK) -> BootResult:
    return BootResult(run_id="r", cell_id=cell.id, index=i, outcome=outcome, host=cell.host)


def test_plan_covers_each_missing_boot_once_in_consecutive_chunks() -> None:
    cs = cells()
    done = {cs[0].id: {0, 1, 2, 7}, cs[5].id: set(range(20))}
    plan = plan_chunks(cs, done, chunk_size=3, seed=1)
    assert set(plan) == {"h1", "h2"}
    seen: Counter[tuple[str, int]] = Counter()
    for host, chunks in plan.items():
        for ch in chunks:
            assert ch.cell.host == host
            assert 1 <= len(ch.indices) <= 3
            assert list(ch.indices) == list(range(ch.indices[0], ch.indices[0] + len(ch.indices)))
            seen.update((ch.cell.id, i) for i in ch.indices)
    assert max(seen.values()) == 1
    expected = {(c.id, i) for c in cs for i in range(20) if i not in done.get(c.id, set())}
    assert set(seen) == expected


def test_plan_interleaves_cells_over_time_and_is_seeded() -> None:
    cs = cells(hosts=("h1",), guests=6, boots=50)
    plan = plan_chunks(cs, chunk_size=5, seed=3)["h1"]
    # every window of 6 chunks holds each cell once: no cell bunched at the start or end
    for start in range(0, len(plan), 6):
        assert len({ch.cell.id for ch in plan[start:start + 6]}) == 6
    # each cell's mean position is near the middle of the run
    for c in cs:
        pos = [k for k, ch in enumerate(plan) if ch.cell.id == c.id]
        assert abs(sum(pos) / len(pos) - len(plan) / 2) < len(plan) * 0.1
    assert plan == plan_chunks(cs, chunk_size=5, seed=3)["h1"]
    other = plan_chunks(cs, chunk_size=5, seed=4)["h1"]
    assert [c.cell.id for c in other] != [c.cell.id for c in plan]
    # the round order is reshuffled: the first cell of a round is not always the same
    assert len({plan[k].cell.id for k in range(0, len(plan), 6)}) > 1
    with pytest.raises(ValueError):
        plan_chunks(cs, chunk_size=0)


class Recorder:
    """A tiny stand-in for the boot loop: yields one result per index, sleeps a little,
    counts concurrency per host and closes cleanly."""

    def __init__(self, delay: float = 0.0, fail: dict[str, Outcome] | None = None) -> None:
        self.delay = delay
        self.fail = fail or {}
        self.lock = threading.Lock()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.results: list[BootResult] = []
        self.closed = 0

    def __call__(self, chunk: Chunk) -> Iterator[BootResult]:
        host = chunk.cell.host
        with self.lock:
            self.active[host] += 1
            self.peak[host] = max(self.peak[host], self.active[host])
        try:
            for i in chunk.indices:
                if self.delay:
                    time.sleep(self.delay)
                r = result(chunk.cell, i, self.fail.get(chunk.cell.guest, Outcome.OK))
                with self.lock:
                    self.results.append(r)
                yield r
        finally:
            with self.lock:
                self.active[host] -= 1
                self.closed += 1


def test_runs_everything_within_per_host_slot_limits() -> None:
    cs = cells(guests=4, boots=10)
    rec = Recorder(delay=0.002)
    got: list[BootResult] = []
    lock = threading.Lock()

    def on_result(r: BootResult) -> None:
        with lock:
            got.append(r)

    sched = Scheduler(plan_chunks(cs, chunk_size=2), {"h1": 3, "h2": 8}, rec,
                      on_result=on_result, max_per_host=2)
    stats = sched.run()
    assert len(got) == 80 and len({(r.cell_id, r.index) for r in got}) == 80
    assert rec.peak["h1"] == 2 and rec.peak["h2"] == 2  # capped by max_per_host
    assert len(stats.slots) == 4 and sum(s.boots for s in stats.slots) == 80
    assert rec.closed == 40
    assert 0.5 < stats.utilization() <= 1.0


def test_a_gate_lets_only_that_many_slots_run_at_once_and_every_boot_still_runs() -> None:
    cs = cells(guests=4, boots=10)
    rec = Recorder(delay=0.002)
    sched = Scheduler(plan_chunks(cs, chunk_size=2), {"h1": 4, "h2": 4}, rec, gate=1)
    stats = sched.run()
    assert len({(r.cell_id, r.index) for r in rec.results}) == 80
    assert len(stats.slots) == 8 and sum(s.boots for s in stats.slots) == 80
    # one chunk at a time in the whole scheduler, not one per host
    assert rec.peak["h1"] == 1 and rec.peak["h2"] == 1
    overlap = Recorder(delay=0.002)
    Scheduler(plan_chunks(cs, chunk_size=2), {"h1": 4, "h2": 4}, overlap).run()
    assert overlap.peak["h1"] > 1  # without the gate the slots of a host do overlap


def test_utilization_in_each_slots_own_clock() -> None:
    """With a per-thread clock (a simulated lab at time scale 0) busy time is that clock's:
    every slot busy from the start to its end is 100% whatever the real overlap."""
    local = threading.local()

    def now() -> float:
        return getattr(local, "t", 0.0)

    def run_chunk(chunk: Chunk) -> Iterator[BootResult]:
        for i in chunk.indices:
            local.t = now() + 40.0  # each boot takes 40 simulated seconds
            yield result(chunk.cell, i)

    cs = cells(guests=4, boots=10)
    stats = Scheduler(plan_chunks(cs, chunk_size=10), {"h1": 2, "h2": 2}, run_chunk, gate=1,
                      clock=now).run()
    assert sum(s.boots for s in stats.slots) == 80
    assert all(s.busy_s == 40.0 * s.boots for s in stats.slots)
    assert stats.utilization() == pytest.approx(1.0)


def test_stop_hands_out_nothing_more_and_closes_the_boot_loop() -> None:
    cs = cells(guests=2, boots=100)
    rec = Recorder(delay=0.001)
    sched: Scheduler

    def on_result(r: BootResult) -> None:
        if len(rec.results) >= 30:
            sched.stop()

    sched = Scheduler(plan_chunks(cs, chunk_size=10), {"h1": 2, "h2": 2}, rec,
                      on_result=on_result)
    stats = sched.run()
    assert stats.interrupted
    assert 30 <= len(rec.results) < 60  # each slot stops after its current boot
    assert all(v == 0 for v in rec.active.values())  # every chunk generator was closed
    assert sum(sched.pending().values()) > 0


def test_a_failing_host_is_set_aside_others_continue() -> None:
    cs = cells(guests=2, boots=20)
    rec = Recorder()
    states: list[tuple[str, str]] = []
    sched = Scheduler(plan_chunks(cs, chunk_size=5), {"h1": 1, "h2": 1}, rec,
                      host_ok=lambda h: "3 infrastructure errors in a row" if h == "h1" else None,
                      on_host=lambda h, s: states.append((h, s)))
    stats = sched.run()
    assert stats.set_aside == {"h1": "3 infrastructure errors in a row"}
    by_host = Counter(r.host for r in rec.results)
    assert by_host == {"h1": 5, "h2": 40}
    assert ("h1", "set aside: 3 infrastructure errors in a row") in states
    assert ("h2", "done") in states


class StopAfter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.counts: Counter[str] = Counter()

    def observe(self, r: BootResult) -> None:
        self.counts[r.cell_id] += 1

    def decided(self, cell_id: str) -> bool:
        return self.counts[cell_id] >= self.n


def test_decided_cells_are_skipped() -> None:
    cs = cells(guests=3, boots=40)
    rec = Recorder()
    stats = Scheduler(plan_chunks(cs, chunk_size=4), {"h1": 1, "h2": 1}, rec,
                      stopper=StopAfter(6)).run()
    per_cell = Counter(r.cell_id for r in rec.results)
    assert set(per_cell.values()) == {6}  # stopped mid-chunk at the decision
    assert stats.skipped == 6 * 40 - 6 * 6  # the rest of the chunk and those not handed out


def test_an_error_in_a_stage_stops_the_run_and_is_raised() -> None:
    def broken(chunk: Chunk) -> Iterator[BootResult]:
        raise RuntimeError("boom")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="boom"):
        Scheduler(plan_chunks(cells()), {"h1": 2, "h2": 2}, broken).run()


def test_split_hosts_balances_boots_and_keeps_each_host_whole() -> None:
    from harness.workers import split_hosts

    todo = {"a": 100, "b": 90, "c": 60, "d": 40, "e": 10}
    groups = split_hosts(todo, 2)
    assert sorted(h for g in groups for h in g) == sorted(todo)
    loads = sorted(sum(todo[h] for h in g) for g in groups)
    assert loads == [150, 150]
    assert split_hosts(todo, 9) == [[h] for h in ("a", "b", "c", "d", "e")]
    assert split_hosts({"a": 1}, 1) == [["a"]]
    with pytest.raises(ValueError):
        split_hosts(todo, 0)


def test_split_hosts_keeps_hosts_of_one_embedded_libvirt_together() -> None:
    from harness.workers import split_hosts

    todo = {"clean": 10, "stall": 10, "sim-a": 10, "sim-b": 10}
    embed = "qemu:///embed?root=/x"
    groups = split_hosts(todo, 4, {"clean": embed, "stall": embed})
    assert ["clean", "stall"] in groups
    assert sorted(h for g in groups for h in g) == sorted(todo)
    assert len(groups) == 3
