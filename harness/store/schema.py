"""The results database schema as numbered migrations (applied in order, each once).

Add a migration by appending to ``MIGRATIONS``; never edit a released one. Each is a
tuple of single SQL statements run inside the transaction that records its version.
They are written in SQLite's words and serve PostgreSQL too (``harness.store.dialect``
translates types and ``INSERT OR IGNORE``); a statement the translation cannot carry is a
``PerDialect`` pair.
"""

from __future__ import annotations

from harness.store.dialect import PerDialect, Statement

V1: tuple[str, ...] = (
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        matrix TEXT NOT NULL,
        matrix_file TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        started REAL NOT NULL,
        finished REAL,
        status TEXT NOT NULL DEFAULT 'running'
    )""",
    "CREATE INDEX runs_by_matrix ON runs (matrix, started)",
    """CREATE TABLE cells (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        id TEXT NOT NULL,
        position INTEGER NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (run_id, id)
    )""",
    """CREATE TABLE boots (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        cell_id TEXT NOT NULL,
        idx INTEGER NOT NULL CHECK (idx >= 0),
        outcome TEXT NOT NULL
            CHECK (outcome IN ('ok', 'vcpu_offline', 'boot_failure', 'infra_error')),
        reason TEXT NOT NULL DEFAULT '',
        host TEXT NOT NULL DEFAULT '',
        guest TEXT NOT NULL DEFAULT '',
        vcpus INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 1,
        offline_cpus TEXT NOT NULL DEFAULT '[]',
        online_cpus TEXT,
        cpus_brought_up INTEGER,
        kernel_release TEXT,
        bringup_latency_s REAL,
        slowest_cpu INTEGER,
        timings TEXT NOT NULL DEFAULT '[]',
        artifacts TEXT NOT NULL DEFAULT '[]',
        extra TEXT NOT NULL DEFAULT '[]',
        recorded REAL NOT NULL,
        UNIQUE (run_id, cell_id, idx),
        FOREIGN KEY (run_id, cell_id) REFERENCES cells (run_id, id) ON DELETE CASCADE
    )""",
    """CREATE TABLE findings (
        boot_id INTEGER NOT NULL REFERENCES boots (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        line INTEGER NOT NULL,
        text TEXT NOT NULL,
        cpu INTEGER,
        errno INTEGER,
        PRIMARY KEY (boot_id, seq)
    )""",
    """CREATE TABLE signatures (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        UNIQUE (kind, title)
    )""",
    """CREATE TABLE boot_signatures (
        boot_id INTEGER NOT NULL REFERENCES boots (id) ON DELETE CASCADE,
        signature_id INTEGER NOT NULL REFERENCES signatures (id),
        PRIMARY KEY (boot_id, signature_id)
    )""",
)

# v2: every infrastructure error is kept (a later guest outcome of the same boot replaces
# the boot row, not its history), and a run knows where its artifacts are.
V2: tuple[str, ...] = (
    """CREATE TABLE infra_events (
        run_id TEXT NOT NULL,
        cell_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        recorded REAL NOT NULL,
        PRIMARY KEY (run_id, cell_id, idx, attempt),
        FOREIGN KEY (run_id, cell_id) REFERENCES cells (run_id, id) ON DELETE CASCADE
    )""",
    "ALTER TABLE runs ADD COLUMN artifacts_dir TEXT",
    """INSERT OR IGNORE INTO infra_events (run_id, cell_id, idx, attempt, reason, recorded)
       SELECT run_id, cell_id, idx, attempt, reason, recorded FROM boots
       WHERE outcome = 'infra_error'""",
)

# v3: an infrastructure error re-done on resume (same index, attempt 1 again) is a new
# event; only the very same result recorded twice is one. Events get an id and a digest
# of the whole result instead of the (index, attempt) key.
V3: tuple[str, ...] = (
    """CREATE TABLE infra_events_v3 (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        cell_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        recorded REAL NOT NULL,
        digest TEXT NOT NULL,
        UNIQUE (run_id, cell_id, idx, digest),
        FOREIGN KEY (run_id, cell_id) REFERENCES cells (run_id, id) ON DELETE CASCADE
    )""",
    """INSERT INTO infra_events_v3 (run_id, cell_id, idx, attempt, reason, recorded, digest)
       SELECT run_id, cell_id, idx, attempt, reason, recorded, 'v2:' || attempt
       FROM infra_events ORDER BY recorded""",
    "DROP TABLE infra_events",
    "ALTER TABLE infra_events_v3 RENAME TO infra_events",
)

# v4: what a run's completeness and the nightly baseline need beyond the boots: hosts a
# run set aside (and why), and the baseline run a team pinned for a matrix.
V4: tuple[str, ...] = (
    """CREATE TABLE run_hosts (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        recorded REAL NOT NULL,
        PRIMARY KEY (run_id, host)
    )""",
    """CREATE TABLE baseline_pins (
        matrix TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        pinned REAL NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    )""",
)

# v5: adaptive stopping's decision per cell, with the guest boot it was made at and the
# interval it was made on (reports show the cell as stopped early, with that interval's
# method: the confidence sequence).
V5: tuple[str, ...] = (
    """CREATE TABLE decisions (
        run_id TEXT NOT NULL,
        cell_id TEXT NOT NULL,
        decision TEXT NOT NULL,
        at_boot INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        low REAL NOT NULL,
        high REAL NOT NULL,
        confidence REAL NOT NULL,
        method TEXT NOT NULL,
        recorded REAL NOT NULL,
        PRIMARY KEY (run_id, cell_id),
        FOREIGN KEY (run_id, cell_id) REFERENCES cells (run_id, id) ON DELETE CASCADE
    )""",
)

# v6: one database may hold the history of several labs: a run knows its lab (copied from
# the config snapshot of the runs before), so runs and trends can be filtered by it.
V6: tuple[Statement, ...] = (
    "ALTER TABLE runs ADD COLUMN lab TEXT NOT NULL DEFAULT ''",
    PerDialect(
        sqlite="UPDATE runs SET lab = COALESCE(json_extract(config, '$.lab'), '') "
               "WHERE json_valid(config) AND json_type(config, '$.lab') = 'text'",
        postgresql="UPDATE runs SET lab = COALESCE(config::jsonb ->> 'lab', '') "
                   "WHERE jsonb_typeof(config::jsonb -> 'lab') = 'string'"),
    "CREATE INDEX runs_by_lab ON runs (lab, matrix, started)",
)

# v7: several controllers share one run through the database (harness/store/queue.py):
# the plan as a work queue, host slots as leases, controllers with heartbeats, and the
# log of who ran which chunk under which slot when.
V7: tuple[Statement, ...] = (
    """CREATE TABLE controllers (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        started REAL NOT NULL,
        heartbeat REAL NOT NULL,
        expires REAL NOT NULL,
        left_at REAL
    )""",
    "CREATE INDEX controllers_by_run ON controllers (run_id, expires)",
    """CREATE TABLE slot_leases (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        slot INTEGER NOT NULL,
        controller TEXT,
        PRIMARY KEY (run_id, host, slot)
    )""",
    """CREATE TABLE work (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        host TEXT NOT NULL,
        cell_id TEXT NOT NULL,
        indices TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'todo' CHECK (state IN ('todo', 'taken', 'done')),
        controller TEXT,
        slot INTEGER,
        taken REAL,
        done REAL,
        PRIMARY KEY (run_id, seq)
    )""",
    "CREATE INDEX work_by_host ON work (run_id, host, state, seq)",
    """CREATE TABLE work_log (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        host TEXT NOT NULL,
        slot INTEGER NOT NULL,
        controller TEXT NOT NULL,
        indices TEXT NOT NULL,
        started REAL NOT NULL,
        ended REAL
    )""",
)

MIGRATIONS: tuple[tuple[Statement, ...], ...] = (V1, V2, V3, V4, V5, V6, V7)  # [i]: v(i + 1)
LATEST = len(MIGRATIONS)
