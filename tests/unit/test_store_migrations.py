"""A v1 database (as the first release wrote it) opens, migrates to v2, and keeps its data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.model import Cell, Outcome
from harness.store import SCHEMA_VERSION, Store, StoreError
from harness.store.codec import cell_to_json
from harness.store.schema import MIGRATIONS

CELL = Cell(id="h/g/vcpu2", matrix="m", host="h", guest="g", vcpus=2, boots=3)


def make_v1(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                 "applied REAL NOT NULL)")
    for stmt in MIGRATIONS[0]:
        conn.execute(stmt)
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.execute("INSERT INTO runs (id, matrix, started) VALUES ('old', 'm', 10)")
    conn.execute("INSERT INTO cells VALUES ('old', ?, 0, ?)", (CELL.id, cell_to_json(CELL)))
    for idx, outcome, reason in [(0, "ok", ""), (1, "infra_error", "host down"),
                                 (2, "vcpu_offline", "CPU1 offline")]:
        conn.execute("INSERT INTO boots (run_id, cell_id, idx, outcome, reason, recorded) "
                     "VALUES ('old', ?, ?, ?, ?, 20)", (CELL.id, idx, outcome, reason))
    conn.execute("COMMIT")
    conn.close()


def test_v1_database_is_migrated_to_v2_without_losing_anything(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    make_v1(db)
    with Store(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert store.get_run("old").artifacts_dir is None  # the column v2 added
        counts = store.counts("old")[CELL.id]
        assert (counts.ok, counts.vcpu_offline, counts.infra_error) == (1, 1, 1)
        # v2 copied the v1 infrastructure errors into their history table
        (event,) = store.infra_events("old")
        assert (event.index, event.reason) == (1, "host down")
        assert store.recorded("old", CELL.id) == {0, 2}
        assert [b.outcome for b in store.load_run("old").cells[0].boots] == \
            [Outcome.OK, Outcome.INFRA_ERROR, Outcome.VCPU_OFFLINE]
    conn = sqlite3.connect(db)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [1, 2]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Store(db) as again:  # migrating is done once
        assert again.schema_version == 2


def test_a_database_from_a_newer_harness_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match=r"newer harness \(schema v99; this one knows up to v2"):
        Store(db)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 99
    conn.close()


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "lab.db"
    make_v1(db)
    import harness.store.db as dbmod

    broken = (MIGRATIONS[0], (*MIGRATIONS[1], "THIS IS NOT SQL"))
    monkeypatch.setattr(dbmod, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match=r"migrating to schema v2 failed.*unchanged"):
        Store(db)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "infra_events" not in tables  # the whole migration was rolled back
    conn.close()
