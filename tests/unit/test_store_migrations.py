"""Databases written by earlier schema versions open, migrate to the latest, and keep their
data; a failed migration changes nothing; a newer database is refused. SQLite files and
PostgreSQL schemas alike (the same migrations, translated by ``harness.store.dialect``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.model import BootResult, Cell, Outcome
from harness.store import SCHEMA_VERSION, Store, StoreError, is_url
from harness.store.codec import cell_to_json
from harness.store.dialect import POSTGRESQL, SQLITE, Dialect
from harness.store.schema import MIGRATIONS

CELL = Cell(id="h/g/vcpu2", matrix="m", host="h", guest="g", vcpus=2, boots=3)


@contextmanager
def raw(target: Path | str) -> Iterator[tuple[Any, Dialect]]:
    """A plain driver connection (autocommit) and its dialect, without the store."""
    if is_url(target):
        import psycopg

        pg = psycopg.connect(str(target), autocommit=True)
        try:
            yield pg, POSTGRESQL
        finally:
            pg.close()
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        lite = sqlite3.connect(target, isolation_level=None)
        try:
            yield lite, SQLITE
        finally:
            lite.close()


def make_db(target: Path | str, version: int) -> None:
    """A database exactly as the harness of schema ``version`` left it, with a run."""
    with raw(target) as (conn, d):
        def ex(sql: str, args: tuple[Any, ...] = ()) -> None:
            conn.execute(d.sql(sql), args)

        ex("BEGIN")
        ex(d.migration("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                       "applied REAL NOT NULL)"))
        for v in range(1, version + 1):
            for stmt in MIGRATIONS[v - 1]:
                ex(d.migration(stmt))
            ex("INSERT INTO schema_version VALUES (?, 0)", (v,))
        ex("INSERT INTO runs (id, matrix, started) VALUES ('old', 'm', 10)")
        ex("INSERT INTO cells VALUES ('old', ?, 0, ?)", (CELL.id, cell_to_json(CELL)))
        for idx, outcome, reason in [(0, "ok", ""), (1, "infra_error", "host down"),
                                     (2, "vcpu_offline", "CPU1 offline")]:
            ex("INSERT INTO boots (run_id, cell_id, idx, outcome, reason, recorded) "
               "VALUES ('old', ?, ?, ?, ?, 20)", (CELL.id, idx, outcome, reason))
        if version == 2:  # v2 wrote infrastructure errors to their history itself
            ex("INSERT INTO infra_events VALUES ('old', ?, 1, 1, 'host down', 20)", (CELL.id,))
            ex("INSERT INTO infra_events VALUES ('old', ?, 1, 2, 'host down', 21)", (CELL.id,))
        ex("COMMIT")


def versions(db: Path | str) -> list[int]:
    with raw(db) as (conn, _):
        if not is_url(db):
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]


def tables(db: Path | str) -> set[str]:
    with raw(db) as (conn, d):
        q = ("SELECT name FROM sqlite_master" if d is SQLITE else
             "SELECT table_name FROM information_schema.tables "
             "WHERE table_schema = current_schema()")
        return {r[0] for r in conn.execute(q)}


def test_v1_database_is_migrated_without_losing_anything(db_target: Path | str) -> None:
    db = db_target
    make_db(db, 1)
    with Store(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 7
        assert store.get_run("old").artifacts_dir is None  # the column v2 added
        counts = store.counts("old")[CELL.id]
        assert (counts.ok, counts.vcpu_offline, counts.infra_error) == (1, 1, 1)
        # v2 copied the v1 infrastructure errors into their history table
        (event,) = store.infra_events("old")
        assert (event.index, event.attempt, event.reason) == (1, 1, "host down")
        assert store.recorded("old", CELL.id) == {0, 2}
        assert [b.outcome for b in store.load_run("old").cells[0].boots] == \
            [Outcome.OK, Outcome.INFRA_ERROR, Outcome.VCPU_OFFLINE]
    assert versions(db) == [1, 2, 3, 4, 5, 6, 7]
    with Store(db) as again:  # migrating is done once
        assert again.schema_version == 7
    assert versions(db) == [1, 2, 3, 4, 5, 6, 7]


def test_v2_infrastructure_history_survives_v3(db_target: Path | str) -> None:
    db = db_target
    make_db(db, 2)
    with Store(db) as store:
        assert [(e.index, e.attempt, e.recorded) for e in store.infra_events("old")] == \
            [(1, 1, 20.0), (1, 2, 21.0)]
        # v3: the same boot re-done after a resume (attempt 1 again) is a new event
        store.record(BootResult("old", CELL.id, 1, Outcome.INFRA_ERROR, reason="host down",
                                timings=(("start", 99.0),)))
        assert len(store.infra_events("old")) == 3
    assert versions(db) == [1, 2, 3, 4, 5, 6, 7]


def test_a_database_from_a_newer_harness_is_refused_untouched(db_target: Path | str) -> None:
    db = db_target
    Store(db).close()
    with raw(db) as (conn, _):
        conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(ConfigError, match=r"newer harness \(schema v99; this one knows up to v7"):
        Store(db)
    assert versions(db)[-1] == 99


def test_a_failed_migration_leaves_the_database_as_it_was(db_target: Path | str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = db_target
    make_db(db, 1)
    import harness.store.db as dbmod

    broken = (*MIGRATIONS[:-1], (*MIGRATIONS[-1], "THIS IS NOT SQL"))
    monkeypatch.setattr(dbmod, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match=r"migrating to schema v7 failed.*unchanged"):
        Store(db)
    assert versions(db) == [1]
    assert "infra_events" not in tables(db)  # v2 to v7 were rolled back together


def test_v6_gives_old_runs_their_lab_from_the_config(db_target: Path | str) -> None:
    make_db(db_target, 5)
    with raw(db_target) as (conn, d):
        conn.execute(d.sql("INSERT INTO runs (id, matrix, config, started) VALUES "
                           "('labbed', 'm', ?, 11)"), ('{"lab":"eas-66611","boots":3}',))
        conn.execute(d.sql("INSERT INTO runs (id, matrix, config, started) VALUES "
                           "('odd', 'm', ?, 12)"), ('{"lab":7}',))
    with Store(db_target) as store:
        assert [(r.id, r.lab) for r in store.list_runs()] == \
            [("old", ""), ("labbed", "eas-66611"), ("odd", "")]
        assert [r.id for r in store.list_runs("m", lab="eas-66611")] == ["labbed"]
