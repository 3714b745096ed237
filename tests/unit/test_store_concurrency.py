"""Several threads write the same run, on SQLite and PostgreSQL: every boot exactly once
(several processes: tests/integration/test_store_kill9.py)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from harness.model import BootResult, Cell, Finding, Outcome, Signature
from harness.store import Store

CELLS = [Cell(id=f"h{h}/g/vcpu4", matrix="m", host=f"h{h}", guest="g", vcpus=4, boots=30)
         for h in range(4)]


def outcome_of(cell: int, index: int) -> Outcome:
    return (Outcome.VCPU_OFFLINE if (cell * 31 + index) % 7 == 0 else
            Outcome.BOOT_FAILURE if (cell + index) % 11 == 0 else Outcome.OK)


def result(cell: int, index: int) -> BootResult:
    o = outcome_of(cell, index)
    sigs = (Signature("cpu_failed_online", "CPU# failed to come online"),) \
        if o is Outcome.VCPU_OFFLINE else ()
    return BootResult("r", CELLS[cell].id, index, o, signatures=sigs,
                      findings=tuple(Finding("x", i, f"line {i}") for i in range(5)))


def check(store: Store) -> None:
    counts = store.counts("r")
    for c, cell in enumerate(CELLS):
        want = [outcome_of(c, i) for i in range(30)]
        got = counts[cell.id]
        assert (got.ok, got.vcpu_offline, got.boot_failure, got.infra_error) == (
            want.count(Outcome.OK), want.count(Outcome.VCPU_OFFLINE),
            want.count(Outcome.BOOT_FAILURE), 0)
        assert store.recorded("r", cell.id) == set(range(30))
    assert store._conn().execute("SELECT COUNT(*) FROM findings").fetchone()[0] == 4 * 30 * 5
    if isinstance(store.location, str) and not store.location.startswith("postgres"):
        conn = sqlite3.connect(store.location)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


def test_threads_writing_overlapping_boots(db_target: Path | str) -> None:
    with Store(db_target) as store:
        store.create_run("r", "m", CELLS)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                # each thread writes its own cell and the next one's: every boot twice
                for c in (t % 4, (t + 1) % 4):
                    for i in range(30):
                        store.record(result(c, i))
                store.load_run("r")  # readers run alongside the writers
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        check(store)


def test_connections_of_ended_threads_are_closed(db_target: Path | str) -> None:
    with Store(db_target) as store:
        store.create_run("r", "m", CELLS)
        for i in range(30):  # a thread per boot: connections must not pile up
            t = threading.Thread(target=store.record, args=(result(0, i),))
            t.start()
            t.join()
        # SQLite: one per live thread; PostgreSQL: a pool shared by the threads
        assert len(getattr(store, "_all", None) or store._conns) <= 2
        assert store.recorded("r", CELLS[0].id) == set(range(30))


def test_postgresql_connections_are_a_bounded_pool(pg_url: str) -> None:
    """A lab of many host slots (a thread each) must not open a connection per slot."""
    with Store(pg_url, pool_size=3) as store:  # type: ignore[call-arg]
        store.create_run("r", "m", CELLS)
        barrier = threading.Barrier(16)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                barrier.wait()
                for i in range(t, 30, 16):
                    store.record(result(1, i))
                    store.counts("r")
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert 1 <= len(store._all) <= 3  # type: ignore[attr-defined]
        assert store.recorded("r", CELLS[1].id) == set(range(30))
