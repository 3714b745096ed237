"""The results store on a real SQLite file and a real PostgreSQL server (``store`` runs
every test on both): runs, boots, idempotence, errors, several labs in one database."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.model import (
    BootResult,
    Cell,
    Expectation,
    Finding,
    Outcome,
    RebootMode,
    Signature,
    Timeouts,
)
from harness.store import (
    SCHEMA_VERSION,
    Store,
    StoreError,
    artifact_dir,
    default_db_path,
    make_run_id,
)
from harness.store.codec import cell_from_json, cell_to_json

OFFLINE = Signature("cpu_failed_online", "CPU# failed to come online")
PSCI = Signature("psci_failed_boot", "psci: failed to boot CPU# (-22)")


def cells() -> list[Cell]:
    return [
        Cell(id="node-1/es11/vcpu16", matrix="nightly", host="node-1", guest="es11", vcpus=16,
             boots=5, reboot=RebootMode.WARM, memory_mib=4096,
             params=(("firmware", "edk2"), ("hugepages", True)),
             host_attrs=(("numa_patch", False), ("cpu", "FT-2500")),
             expect=Expectation(vcpu_offline=0.01, boot_failure=None, confidence=0.99),
             timeouts=Timeouts(boot=120.0)),
        Cell(id="node-3/es10/vcpu4", matrix="nightly", host="node-3", guest="es10", vcpus=4,
             boots=5),
    ]


@pytest.fixture
def store(db_target: Path | str) -> Iterator[Store]:
    s = Store(db_target)
    yield s
    s.close()


@pytest.fixture
def run_id(store: Store) -> str:
    return store.create_run("r1", "nightly", cells(), matrix_file="m.yaml",
                            config={"versions": {"harness": "0.1.0"}}, started=100.0).id


def full_result(index: int = 0) -> BootResult:
    return BootResult(
        run_id="r1", cell_id="node-1/es11/vcpu16", index=index, outcome=Outcome.VCPU_OFFLINE,
        reason="CPU3 offline", host="node-1", guest="es11", vcpus=16, attempt=2,
        offline_cpus=(3, 7), online_cpus=(0, 1, 2, 4, 5, 6), cpus_brought_up=14,
        kernel_release="4.19.90-es11", signatures=(OFFLINE, PSCI),
        findings=(Finding("cpu_failed_online", 812, "CPU3: failed to come online", cpu=3),
                  Finding("psci_failed_boot", 813, "psci: failed to boot CPU3 (-22)", 3, -22)),
        timings=(("start", 1.5), ("ssh", 31.25)), bringup_latency_s=5.2, slowest_cpu=3,
        artifacts=(("dmesg", "node-1_es11_vcpu16/0/dmesg.txt"),),
        extra=(("note", "x"), ("n", 3)),
    )


def test_a_new_database_has_the_latest_schema(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION == 7
    assert {"runs", "cells", "boots", "findings", "signatures", "boot_signatures",
            "infra_events", "schema_version"} <= store._tables(store._conn())


def test_an_sqlite_database_uses_wal(tmp_path: Path) -> None:
    with Store(tmp_path / "lab.db") as store:
        assert type(store).__name__ == "SQLiteStore"
        conn = sqlite3.connect(store.path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_durable_stores_sync_every_commit_and_simulated_lab_stores_do_not(
        tmp_path: Path) -> None:
    with Store(tmp_path / "real.db") as real, Store(tmp_path / "sim.db", durable=False) as sim:
        # PRAGMA synchronous: 2 = FULL (an fsync per commit), 1 = NORMAL (WAL: kill -9 safe)
        assert real._conn().execute("PRAGMA synchronous").fetchone()[0] == 2
        assert sim._conn().execute("PRAGMA synchronous").fetchone()[0] == 1


def test_the_runner_opens_a_durable_store_unless_every_host_is_simulated(
        tmp_path: Path) -> None:
    from harness.matrix import load_matrix
    from harness.runner import Runner

    repo = Path(__file__).resolve().parents[2] / "matrices"
    sim = Runner(load_matrix(repo / "eas-66611-sim.yaml"))._open_store(tmp_path / "a.db")
    real = Runner(load_matrix(repo / "eas-66611.yaml"))._open_store(tmp_path / "b.db")
    with sim, real:
        assert (sim.durable, real.durable) == (False, True)


def test_a_boot_round_trips_with_every_field(store: Store, run_id: str) -> None:
    r = full_result()
    store.record(r)
    (back,) = store.boots(run_id, r.cell_id)
    assert back == r
    assert store.boots(run_id, r.cell_id, with_findings=False)[0].findings == ()


def test_a_run_round_trips_its_cells_and_config(store: Store, run_id: str) -> None:
    info = store.get_run(run_id)
    assert (info.matrix, info.matrix_file, info.started, info.finished, info.status) == \
        ("nightly", "m.yaml", 100.0, None, "running")
    assert info.config == {"versions": {"harness": "0.1.0"}}
    assert store.cells(run_id) == cells()
    store.mark_finished(run_id, finished=200.0)
    assert (store.get_run(run_id).finished, store.get_run(run_id).status) == (200.0, "finished")


def test_a_boot_recorded_twice_counts_once_and_the_first_wins(store: Store, run_id: str) -> None:
    r = full_result()
    store.record(r)
    store.record(r)
    store.record(replace(r, outcome=Outcome.OK, signatures=(), findings=()))
    assert store.recorded(run_id, r.cell_id) == {0}
    counts = store.counts(run_id)[r.cell_id]
    assert (counts.vcpu_offline, counts.ok, counts.n) == (1, 0, 1)
    assert store.boots(run_id, r.cell_id)[0].outcome is Outcome.VCPU_OFFLINE
    assert store.load_run(run_id).signatures[0].count == 1


def test_an_infrastructure_error_is_redone_and_kept_in_history(store: Store, run_id: str) -> None:
    cell = "node-3/es10/vcpu4"
    infra = BootResult(run_id, cell, 2, Outcome.INFRA_ERROR, reason="libvirt: timeout")
    store.record(BootResult(run_id, cell, 0, Outcome.OK))
    store.record(infra)
    store.record(infra)  # idempotent in the history too
    assert store.recorded(run_id, cell) == {0}
    assert store.recorded(run_id, cell, include_infra=True) == {0, 2}
    assert store.counts(run_id)[cell].infra_error == 1
    store.record(BootResult(run_id, cell, 2, Outcome.BOOT_FAILURE, reason="panic", attempt=2))
    assert store.recorded(run_id, cell) == {0, 2}
    c = store.counts(run_id)[cell]
    assert (c.ok, c.boot_failure, c.infra_error, c.n) == (1, 1, 0, 2)
    (event,) = store.infra_events(run_id)
    assert (event.cell_id, event.index, event.attempt, event.reason) == \
        (cell, 2, 1, "libvirt: timeout")
    # the same boot re-done after a resume failing again is a second event
    store.record(replace(infra, index=3, timings=(("start", 1.0),)))
    store.record(replace(infra, index=3, timings=(("start", 2.0),)))
    assert [e.index for e in store.infra_events(run_id)] == [2, 3, 3]
    # a guest outcome is never replaced by a later infrastructure error
    store.record(BootResult(run_id, cell, 0, Outcome.INFRA_ERROR, attempt=3))
    assert store.counts(run_id)[cell].ok == 1


def test_load_run_gives_cells_in_order_with_counts_and_signatures(store: Store,
                                                                   run_id: str) -> None:
    for i in range(3):
        store.record(full_result(i))
    store.record(replace(full_result(3), outcome=Outcome.OK, signatures=(), findings=()))
    store.record(BootResult(run_id, "node-3/es10/vcpu4", 0, Outcome.OK))
    data = store.load_run(run_id)
    assert [c.cell.id for c in data.cells] == [c.id for c in cells()]
    first = data.cell("node-1/es11/vcpu16")
    assert [b.index for b in first.boots] == [0, 1, 2, 3]
    assert (first.counts.vcpu_offline, first.counts.ok) == (3, 1)
    assert [(s.title, s.count) for s in first.signatures] == [(OFFLINE.title, 3),
                                                              (PSCI.title, 3)]
    assert first.judgement.status == "fail"  # 3/4 against a maximum of 1%
    assert data.cell("node-3/es10/vcpu4").counts.n == 1
    assert store.counts(run_id) == {c.cell.id: c.counts for c in data.cells}
    with pytest.raises(KeyError):
        data.cell("nope")


def test_runs_are_listed_per_matrix_and_the_previous_one_is_found(store: Store) -> None:
    for rid, matrix, t in [("a", "nightly", 1.0), ("b", "other", 2.0), ("c", "nightly", 3.0),
                           ("d", "nightly", 4.0)]:
        store.create_run(rid, matrix, cells(), started=t)
    assert [r.id for r in store.list_runs("nightly")] == ["a", "c", "d"]
    assert [r.id for r in store.list_runs()] == ["a", "b", "c", "d"]
    assert store.previous_run("nightly", before="d").id == "c"  # type: ignore[union-attr]
    assert store.previous_run("nightly", before="a") is None
    assert store.previous_run("nightly").id == "d"  # type: ignore[union-attr]
    assert store.previous_run("unknown") is None


def test_resume_reopens_a_run_and_adds_new_cells(store: Store, run_id: str) -> None:
    store.mark_finished(run_id, status="interrupted")
    extra = replace(cells()[1], id="node-3/es10/vcpu8", vcpus=8)
    info = store.resume_run(run_id, [*cells(), extra])
    assert (info.status, info.finished) == ("running", None)
    assert [c.id for c in store.cells(run_id)] == [*(c.id for c in cells()), extra.id]


def test_user_mistakes_are_config_errors_saying_what(store: Store, run_id: str,
                                                     tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"already exists.*--resume r1"):
        store.create_run("r1", "nightly", cells())
    with pytest.raises(ConfigError, match=r"no run 'r2'.*known runs: r1"):
        store.get_run("r2")
    with pytest.raises(ConfigError, match="no run 'r2'"):
        store.resume_run("r2")
    with pytest.raises(ConfigError, match="may only use"):
        store.create_run("bad id/x", "nightly", cells())
    with pytest.raises(ConfigError, match="listed twice"):
        store.create_run("r3", "nightly", [cells()[0], cells()[0]])
    assert [r.id for r in store.list_runs()] == ["r1"]  # the failed create left nothing
    with pytest.raises(ConfigError, match="no results database"):
        Store(tmp_path / "missing.db", create=False)
    with pytest.raises(ConfigError, match="is a folder"):
        Store(tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all, just text " * 100)
    with pytest.raises(ConfigError, match=r"junk\.db is not a results database"):
        Store(junk)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match=r"not a results database \(tables: photos\)"):
        Store(other)
    conn = sqlite3.connect(other)  # and it was left alone
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["photos"]
    conn.close()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot create the results folder"):
        Store(blocker / "sub" / "lab.db")


def test_a_boot_of_an_unknown_cell_is_refused(store: Store, run_id: str) -> None:
    with pytest.raises(StoreError, match="cell 'nope'"):
        store.record(BootResult(run_id, "nope", 0, Outcome.OK))
    with pytest.raises(StoreError):
        store.record(BootResult("no-run", "node-3/es10/vcpu4", 0, Outcome.OK))
    assert store.counts(run_id)["node-3/es10/vcpu4"].boots == 0


def test_record_many_is_one_transaction(store: Store, run_id: str) -> None:
    good = BootResult(run_id, "node-3/es10/vcpu4", 0, Outcome.OK)
    with pytest.raises(StoreError, match="none was"):
        store.record_many([good, BootResult(run_id, "nope", 1, Outcome.OK)])
    assert store.recorded(run_id, "node-3/es10/vcpu4") == set()
    store.record_many([good, replace(good, index=1)])
    assert store.recorded(run_id, "node-3/es10/vcpu4") == {0, 1}


def test_cells_survive_json(tmp_path: Path) -> None:
    for c in cells():
        assert cell_from_json(cell_to_json(c)) == c


def test_paths_and_ids() -> None:
    rid = make_run_id("nightly", now=0.0)
    assert re.fullmatch(r"nightly-19700101-000000-[0-9a-f]{4}", rid)
    assert default_db_path("lab-a") == Path("reports/lab-a.db")
    assert default_db_path("lab-a", Path("/data/r.db")) == Path("/data/r.db")
    folder = artifact_dir(Path("reports/r1"), cells()[0], 7)
    assert folder.parent.parent == Path("reports/r1") and folder.name == "7"
    assert re.fullmatch(r"node-1\.es11\.vcpu16-[0-9a-f]{8}", folder.parent.name)


def test_add_cells_keeps_the_status_and_known_cells(store: Store, run_id: str) -> None:
    store.mark_finished(run_id, status="incomplete", finished=5.0)
    changed = replace(cells()[0], boots=99)  # known already: kept as first registered
    extra = replace(cells()[1], id="node-3/es10/vcpu2", vcpus=2)
    store.add_cells(run_id, [changed, extra])
    assert store.get_run(run_id).status == "incomplete"
    assert store.cells(run_id) == [*cells(), extra]
    with pytest.raises(ConfigError, match="no run"):
        store.add_cells("nope", [extra])


def test_join_run_creates_once_and_joins_after(store: Store) -> None:
    import threading

    infos = []

    def join() -> None:
        infos.append(store.join_run("shared", "nightly", cells(), config={"w": 1}))

    threads = [threading.Thread(target=join) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({(i.id, i.started) for i in infos}) == 1
    assert [r.id for r in store.list_runs()] == ["shared"]
    assert store.cells("shared") == cells()
    with pytest.raises(ConfigError, match="is a run of matrix 'nightly', not of 'other'"):
        store.join_run("shared", "other", cells())
