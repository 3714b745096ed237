"""The crash-safe results store: one transaction per boot, raw artifacts on disk beside
it; SQLite (one file per lab, WAL: the embedded default) or PostgreSQL (one database for
several labs and controllers), the same schema and rules. Details: docs/results.md.

    from harness.store import Store, make_run_id, resolve_db, artifact_dir

    db = resolve_db(cli_db, lab.name, lab.spec.results)     # --db, $VMBH_DB, results:, default
    with Store(db) as store:                     # a file or postgresql://...; creates/migrates
        run = store.create_run(make_run_id(matrix.name), matrix.name, matrix.cells,
                               matrix_file=str(matrix.file), config={...versions...},
                               artifacts_dir="reports/<run-id>")
        # ... or, to continue: store.resume_run(run_id, matrix.cells)
        # ... or, from several processes at once: store.join_run(run_id, matrix.name, cells)
        #     (creates it once, else joins; store.add_cells adds cells, status untouched)
        done = store.recorded(run.id, cell.id)      # boot indices already done (resume)
        store.record(boot_result)                   # ResultSink: atomic and idempotent
        store.counts(run.id)                        # {cell_id: CellCounts} (progress)
        store.record_decision(run.id, decision)     # adaptive stop: verdict, boot, interval
        store.mark_finished(run.id)                 # or status="interrupted"
        data = store.load_run(run.id)               # RunData for reports (frozen)
        store.previous_run(matrix.name, before=run.id)  # RunInfo | None, for trends
        store.list_runs(matrix.name)                # oldest first

Rules: a boot index holds at most one guest outcome (a second ``record`` of it is
ignored, so nothing counts twice); an infrastructure error is kept in ``infra_events`` and
the index stays "not done" for ``recorded`` (a resume re-does it), a later guest outcome
replaces it. A boot cut in the middle was never recorded and is re-done on resume.
Thread-safe and multi-process safe: SQLite with one connection per thread (WAL + busy
timeout + ``BEGIN IMMEDIATE``), PostgreSQL with a small pool of connections shared by the
threads (writers of one boot index meet on its unique key). Several controllers share one
run through the work queue in ``harness.store.queue`` (``harness run --join``).
User-facing problems (missing/foreign/newer database, unknown or duplicate run id) are
``ConfigError``; ``StoreError`` is anything else the database refuses.
"""

from harness.store.db import (
    CellData,
    InfraEvent,
    RunData,
    RunInfo,
    Store,
    StoredDecision,
    StoreError,
    artifact_dir,
    default_db_path,
    is_url,
    make_run_id,
)
from harness.store.schema import LATEST as SCHEMA_VERSION
from harness.store.target import ENV as DB_ENV
from harness.store.target import DbTarget, describe, env_target, parse_target, resolve_db

__all__ = [
    "DB_ENV",
    "SCHEMA_VERSION",
    "CellData",
    "DbTarget",
    "InfraEvent",
    "RunData",
    "RunInfo",
    "Store",
    "StoreError",
    "StoredDecision",
    "artifact_dir",
    "default_db_path",
    "describe",
    "env_target",
    "is_url",
    "make_run_id",
    "parse_target",
    "resolve_db",
]
