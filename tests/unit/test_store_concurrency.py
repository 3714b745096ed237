"""Several threads write the same run: every boot exactly once (several processes:
tests/integration/test_store_kill9.py)."""

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
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM findings").fetchone()[0] == 4 * 30 * 5
    conn.close()


def test_threads_writing_overlapping_boots(tmp_path: Path) -> None:
    with Store(tmp_path / "lab.db") as store:
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


def test_connections_of_ended_threads_are_closed(tmp_path: Path) -> None:
    with Store(tmp_path / "lab.db") as store:
        store.create_run("r", "m", CELLS)
        for i in range(30):  # a thread per boot: connections must not pile up
            t = threading.Thread(target=store.record, args=(result(0, i),))
            t.start()
            t.join()
        assert len(store._conns) <= 2
        assert store.recorded("r", CELLS[0].id) == set(range(30))
