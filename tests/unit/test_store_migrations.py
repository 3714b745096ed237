"""Databases written by earlier schema versions open, migrate to the latest, and keep their
data; a failed migration changes nothing; a newer database is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.model import BootResult, Cell, Outcome
from harness.store import SCHEMA_VERSION, Store, StoreError
from harness.store.codec import cell_to_json
from harness.store.schema import MIGRATIONS

CELL = Cell(id="h/g/vcpu2", matrix="m", host="h", guest="g", vcpus=2, boots=3)


def make_db(path: Path, version: int) -> None:
    """A database exactly as the harness of schema ``version`` left it, with a run."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                 "applied REAL NOT NULL)")
    for v in range(1, version + 1):
        for stmt in MIGRATIONS[v - 1]:
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (v,))
    conn.execute("INSERT INTO runs (id, matrix, started) VALUES ('old', 'm', 10)")
    conn.execute("INSERT INTO cells VALUES ('old', ?, 0, ?)", (CELL.id, cell_to_json(CELL)))
    for idx, outcome, reason in [(0, "ok", ""), (1, "infra_error", "host down"),
                                 (2, "vcpu_offline", "CPU1 offline")]:
        conn.execute("INSERT INTO boots (run_id, cell_id, idx, outcome, reason, recorded) "
                     "VALUES ('old', ?, ?, ?, ?, 20)", (CELL.id, idx, outcome, reason))
    if version == 2:  # v2 wrote infrastructure errors to their history itself
        conn.execute("INSERT INTO infra_events VALUES ('old', ?, 1, 1, 'host down', 20)",
                     (CELL.id,))
        conn.execute("INSERT INTO infra_events VALUES ('old', ?, 1, 2, 'host down', 21)",
                     (CELL.id,))
    conn.execute("COMMIT")
    conn.close()


def versions(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    finally:
        conn.close()


def test_v1_database_is_migrated_without_losing_anything(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    make_db(db, 1)
    with Store(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 5
        assert store.get_run("old").artifacts_dir is None  # the column v2 added
        counts = store.counts("old")[CELL.id]
        assert (counts.ok, counts.vcpu_offline, counts.infra_error) == (1, 1, 1)
        # v2 copied the v1 infrastructure errors into their history table
        (event,) = store.infra_events("old")
        assert (event.index, event.attempt, event.reason) == (1, 1, "host down")
        assert store.recorded("old", CELL.id) == {0, 2}
        assert [b.outcome for b in store.load_run("old").cells[0].boots] == \
            [Outcome.OK, Outcome.INFRA_ERROR, Outcome.VCPU_OFFLINE]
    assert versions(db) == [1, 2, 3, 4, 5]
    with Store(db) as again:  # migrating is done once
        assert again.schema_version == 5
    assert versions(db) == [1, 2, 3, 4, 5]


def test_v2_infrastructure_history_survives_v3(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    make_db(db, 2)
    with Store(db) as store:
        assert [(e.index, e.attempt, e.recorded) for e in store.infra_events("old")] == \
            [(1, 1, 20.0), (1, 2, 21.0)]
        # v3: the same boot re-done after a resume (attempt 1 again) is a new event
        store.record(BootResult("old", CELL.id, 1, Outcome.INFRA_ERROR, reason="host down",
                                timings=(("start", 99.0),)))
        assert len(store.infra_events("old")) == 3
    assert versions(db) == [1, 2, 3, 4, 5]


def test_a_database_from_a_newer_harness_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match=r"newer harness \(schema v99; this one knows up to v5"):
        Store(db)
    assert versions(db)[-1] == 99


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "lab.db"
    make_db(db, 1)
    import harness.store.db as dbmod

    broken = (*MIGRATIONS[:-1], (*MIGRATIONS[-1], "THIS IS NOT SQL"))
    monkeypatch.setattr(dbmod, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match=r"migrating to schema v5 failed.*unchanged"):
        Store(db)
    assert versions(db) == [1]
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "infra_events" not in tables  # v2 to v5 were rolled back together
