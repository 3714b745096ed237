"""The SQLite results store (WAL, one short transaction per boot). API: see the package
docstring (``harness/store/__init__.py``) and docs/results.md."""

from __future__ import annotations

import contextlib
import errno
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.classify.result import SignatureCount
from harness.errors import ConfigError, EnvironmentFault
from harness.model import BootResult, Cell, Finding, Outcome, Signature, safe_name
from harness.stats import CellCounts, Judgement, judge_cell, signature_counts
from harness.store import codec
from harness.store.schema import LATEST, MIGRATIONS

BUSY_TIMEOUT_S = 60.0


class StoreError(EnvironmentFault):
    """The results database refused an operation (not a user mistake: a full disk, a
    read-only or unwritable database; exit status 3)."""


@dataclass(frozen=True)
class RunInfo:
    id: str
    matrix: str
    matrix_file: str
    config: Mapping[str, Any]  # the snapshot given to create_run (versions included)
    started: float  # unix time
    finished: float | None
    status: str  # "running", "finished", "interrupted", ... (free text set by the runner)
    artifacts_dir: str | None = None  # artifacts paths of this run are relative to it


@dataclass(frozen=True)
class InfraEvent:
    cell_id: str
    index: int
    attempt: int
    reason: str
    recorded: float


@dataclass(frozen=True)
class StoredDecision:
    """Adaptive stopping's decision for a cell (``harness.adaptive.CellDecision``)."""

    cell_id: str
    decision: str  # "pass" | "fail"
    at_boot: int  # guest boots of the cell when it was decided
    outcome: str  # the class whose interval decided it
    low: float
    high: float
    confidence: float
    method: str  # "confidence sequence"


@dataclass(frozen=True)
class CellData:
    cell: Cell
    position: int  # order in the matrix
    boots: tuple[BootResult, ...]  # by index; at most one per index
    counts: CellCounts
    signatures: tuple[SignatureCount, ...]  # boots per signature, most first
    decision: StoredDecision | None = None  # stopped early by adaptive stopping

    @property
    def stopped_early(self) -> bool:
        return self.decision is not None

    @property
    def judgement(self) -> Judgement:
        return judge_cell(self.counts, self.cell.expect, self.stopped_early)


@dataclass(frozen=True)
class RunData:
    run: RunInfo
    cells: tuple[CellData, ...]  # in matrix order
    infra_events: tuple[InfraEvent, ...] = ()
    signatures: tuple[SignatureCount, ...] = field(default=())  # over the whole run

    def cell(self, cell_id: str) -> CellData:
        for c in self.cells:
            if c.cell.id == cell_id:
                return c
        raise KeyError(cell_id)


def make_run_id(matrix: str, now: float | None = None) -> str:
    """``<matrix>-<UTC yyyymmdd-HHMMSS>-<4 hex>``: sortable, unique, safe in paths."""
    t = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{safe_name(matrix)}-{t:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def default_db_path(lab_name: str, results: Path | None = None,
                    reports_dir: Path = Path("reports")) -> Path:
    """The lab's database: ``LabSpec.results`` if set, else ``reports/<lab>.db``."""
    return results if results is not None else reports_dir / f"{safe_name(lab_name)}.db"


def artifact_dir(run_dir: Path, cell: Cell, index: int) -> Path:
    """Where one boot's raw files go: ``<run_dir>/<cell folder>/<boot index>/`` (the run
    dir is ``reports/<run-id>/``; ``Cell.folder`` is unique per cell); store paths
    relative to ``run_dir`` in the result."""
    return run_dir / cell.folder / str(index)


class Store:
    """One results database. Safe for several threads (one connection each) and several
    processes (WAL, busy timeout, ``BEGIN IMMEDIATE``). Use as a context manager or call
    ``close()``. Open one ``Store`` per process (do not share it across ``fork``)."""

    def __init__(self, path: str | Path, *, create: bool = True, durable: bool = True) -> None:
        """``durable`` (the default): every committed boot is on disk before ``record``
        returns (``synchronous=FULL``), so not even a power cut loses one. ``False``
        (``synchronous=NORMAL``, for simulated labs): still safe against kill -9 and
        never corrupt, but a power cut or OS crash may lose the last boots, which a
        resume re-does; it saves an fsync per boot."""
        self.path = Path(path)
        self.durable = durable
        if not self.path.exists():
            if not create:
                raise ConfigError(f"no results database at {self.path}")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                msg = f"cannot create the results folder {self.path.parent}: {e.strerror}"
                if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                               errno.EDQUOT):
                    raise StoreError(msg) from None  # this machine's fault, not the input's
                raise ConfigError(msg) from None
        elif self.path.is_dir():
            raise ConfigError(f"{self.path} is a folder, not a results database")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # this process's writers, one at a time
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._migrate()

    # --- connections and transactions -------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL (journal mode {mode})")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        except sqlite3.OperationalError as e:
            raise StoreError(f"cannot open the results database {self.path}: {e} "
                             "(it needs read and write access to it and its folder)") from None
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"{self.path} is not a results database (SQLite): {e}") from None
        with self._lock:  # close the connections of threads that have ended
            dead = [c for t, c in self._conns if not t.is_alive()]
            self._conns = [(t, c) for t, c in self._conns if t.is_alive()]
            self._conns.append((threading.current_thread(), conn))
        for old in dead:
            with contextlib.suppress(sqlite3.Error):
                old.close()
        self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, the write lock taken up front (no upgrade deadlocks).

        Threads of this process queue on a lock of their own first: SQLite's busy
        handler polls with sleeps of 1, 2, 5, 10... ms, so slot threads contending in
        ``BEGIN IMMEDIATE`` spent more time asleep than writing (half of a simulated
        boot's time, measured). Other processes still meet SQLite's lock and its timeout."""
        conn = self._conn()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:  # disk full, read-only, locked too long
                raise StoreError(f"cannot write to {self.path}: {e}") from None

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for _, c in conns:
            with contextlib.suppress(sqlite3.Error):
                c.close()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def hold_run(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """Be the one controller of run ``run_id`` for a ``with`` block (``RunLocked``
        if another live process is; a dead one never holds it). See store/lock.py."""
        from harness.store.lock import hold

        return hold(self.path, run_id)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        conn = self._conn()
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            self.close()
            raise ConfigError(f"{self.path} is not a results database (SQLite): {e}") from None
        if tables and "schema_version" not in tables:
            self.close()
            raise ConfigError(f"{self.path} is an SQLite database but not a results database "
                              f"(tables: {', '.join(sorted(tables)[:5])}); choose another file")
        version = 0
        try:
            with self._write() as c:
                c.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                          "version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
                have = c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
                if have > LATEST:
                    raise ConfigError(
                        f"{self.path} was written by a newer harness (schema v{have}; this "
                        f"one knows up to v{LATEST}): upgrade vm-boot-harness")
                for version in range(have + 1, LATEST + 1):
                    for stmt in MIGRATIONS[version - 1]:
                        c.execute(stmt)
                    c.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(f"{self.path}: migrating to schema v{version} failed: {e} "
                             "(the database is unchanged)") from None
        except ConfigError:
            self.close()
            raise

    @property
    def schema_version(self) -> int:
        return int(self._conn().execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    # --- runs --------------------------------------------------------------------------

    def create_run(self, run_id: str, matrix: str, cells: Sequence[Cell], *,
                   matrix_file: str = "", config: Mapping[str, Any] | None = None,
                   artifacts_dir: str | Path | None = None,
                   started: float | None = None) -> RunInfo:
        """Register a new run and its cells; ConfigError if the id is taken."""
        if not run_id or safe_name(run_id) != run_id:
            raise ConfigError(f"run id {run_id!r} may only use letters, digits, '_', '.', '-'")
        started = time.time() if started is None else started
        try:
            with self._write() as c:
                c.execute("INSERT INTO runs (id, matrix, matrix_file, config, started, status,"
                          " artifacts_dir) VALUES (?, ?, ?, ?, ?, 'running', ?)",
                          (run_id, matrix, str(matrix_file), codec.dumps(dict(config or {})),
                           started, None if artifacts_dir is None else str(artifacts_dir)))
                self._add_cells(c, run_id, cells)
        except sqlite3.IntegrityError:
            raise ConfigError(f"run {run_id!r} already exists in {self.path}; continue it "
                              f"with --resume {run_id} or choose another id") from None
        return self.get_run(run_id)

    @staticmethod
    def _add_cells(c: sqlite3.Connection, run_id: str, cells: Sequence[Cell]) -> None:
        start = c.execute("SELECT COUNT(*) FROM cells WHERE run_id = ?", (run_id,)).fetchone()[0]
        seen: set[str] = set()
        for i, cell in enumerate(cells):
            if cell.id in seen:
                raise ConfigError(f"cell {cell.id!r} is listed twice")
            seen.add(cell.id)
            c.execute("INSERT OR IGNORE INTO cells (run_id, id, position, spec) "
                      "VALUES (?, ?, ?, ?)", (run_id, cell.id, start + i,
                                              codec.cell_to_json(cell)))

    def resume_run(self, run_id: str, cells: Sequence[Cell] = ()) -> RunInfo:
        """Mark a run running again (finished cleared); cells not yet known are added."""
        self.get_run(run_id)
        with self._write() as c:
            c.execute("UPDATE runs SET status = 'running', finished = NULL WHERE id = ?",
                      (run_id,))
            self._add_cells(c, run_id, cells)
        return self.get_run(run_id)

    def add_cells(self, run_id: str, cells: Sequence[Cell]) -> None:
        """Add cells not yet known to a run (several writers may add the same cell; known
        ones are kept as first registered); the run's status is not touched."""
        self.get_run(run_id)
        with self._write() as c:
            self._add_cells(c, run_id, cells)

    def join_run(self, run_id: str, matrix: str, cells: Sequence[Cell], *,
                 matrix_file: str = "", config: Mapping[str, Any] | None = None,
                 artifacts_dir: str | Path | None = None) -> RunInfo:
        """Create the run if no process has yet, else join it; either way add the missing
        cells. Atomic: several processes may call it at once (e.g. pytest-xdist workers).
        ConfigError if the run exists for another matrix."""
        if not run_id or safe_name(run_id) != run_id:
            raise ConfigError(f"run id {run_id!r} may only use letters, digits, '_', '.', '-'")
        with self._write() as c:
            c.execute("INSERT OR IGNORE INTO runs (id, matrix, matrix_file, config, started, "
                      "status, artifacts_dir) VALUES (?, ?, ?, ?, ?, 'running', ?)",
                      (run_id, matrix, str(matrix_file), codec.dumps(dict(config or {})),
                       time.time(), None if artifacts_dir is None else str(artifacts_dir)))
            have = c.execute("SELECT matrix FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            if have != matrix:
                raise ConfigError(f"run {run_id!r} in {self.path} is a run of matrix "
                                  f"{have!r}, not of {matrix!r}")
            self._add_cells(c, run_id, cells)
        return self.get_run(run_id)

    def mark_finished(self, run_id: str, status: str = "finished",
                      finished: float | None = None) -> None:
        self.get_run(run_id)
        with self._write() as c:
            c.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?",
                      (status, time.time() if finished is None else finished, run_id))

    def get_run(self, run_id: str) -> RunInfo:
        row = self._conn().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            known = [r.id for r in self.list_runs()]
            hint = f"; known runs: {', '.join(known[-5:])}" if known else "; it has no runs"
            raise ConfigError(f"no run {run_id!r} in {self.path}{hint}")
        return _run_info(row)

    def list_runs(self, matrix: str | None = None) -> list[RunInfo]:
        """Runs, oldest first (optionally of one matrix)."""
        q = "SELECT * FROM runs" + (" WHERE matrix = ?" if matrix is not None else "")
        rows = self._conn().execute(q + " ORDER BY started, id",
                                    (matrix,) if matrix is not None else ()).fetchall()
        return [_run_info(r) for r in rows]

    def previous_run(self, matrix: str, before: str | None = None) -> RunInfo | None:
        """The latest run of ``matrix`` started before run ``before`` (or the latest)."""
        runs = self.list_runs(matrix)
        if before is not None:
            ref = self.get_run(before)
            runs = [r for r in runs if (r.started, r.id) < (ref.started, ref.id)]
        return runs[-1] if runs else None

    # --- hosts of a run, baseline pins (completeness and the nightly baseline) --------

    def set_host_state(self, run_id: str, host: str, state: str, reason: str = "") -> None:
        """Record what became of a host in a run (``set_aside`` and why); the last wins."""
        self.get_run(run_id)
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO run_hosts (run_id, host, state, reason, recorded)"
                      " VALUES (?, ?, ?, ?, ?)", (run_id, host, state, reason, time.time()))

    def host_states(self, run_id: str) -> dict[str, tuple[str, str]]:
        """``{host: (state, reason)}`` recorded for a run (hosts set aside, ...)."""
        rows = self._conn().execute("SELECT host, state, reason FROM run_hosts WHERE "
                                    "run_id = ? ORDER BY host", (run_id,))
        return {r[0]: (r[1], r[2]) for r in rows}

    def pin_baseline(self, run_id: str, note: str = "") -> RunInfo:
        """Make ``run_id`` the baseline of its matrix until unpinned."""
        info = self.get_run(run_id)
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO baseline_pins (matrix, run_id, pinned, note) "
                      "VALUES (?, ?, ?, ?)", (info.matrix, run_id, time.time(), note))
        return info

    def unpin_baseline(self, matrix: str) -> str | None:
        """Forget the matrix's pinned baseline; returns the run id it was, if any."""
        was = self.pinned_baseline(matrix)
        with self._write() as c:
            c.execute("DELETE FROM baseline_pins WHERE matrix = ?", (matrix,))
        return was

    def pinned_baseline(self, matrix: str) -> str | None:
        row = self._conn().execute("SELECT run_id FROM baseline_pins WHERE matrix = ?",
                                   (matrix,)).fetchone()
        return None if row is None else str(row[0])

    def cells(self, run_id: str) -> list[Cell]:
        rows = self._conn().execute("SELECT spec FROM cells WHERE run_id = ? ORDER BY position",
                                    (run_id,)).fetchall()
        return [codec.cell_from_json(r["spec"]) for r in rows]

    # --- boots (the ResultSink protocol) -----------------------------------------------

    def record(self, result: BootResult) -> None:
        """Store one boot in one transaction (boot row, findings, signatures).

        Idempotent: a boot index already holding a guest outcome is never replaced nor
        counted twice (the first recorded wins). A recorded infrastructure error is kept
        in ``infra_events`` and replaced by a later guest outcome of the same index."""
        try:
            with self._write() as c:
                self._record(c, result)
        except sqlite3.IntegrityError as e:
            raise StoreError(f"cannot record boot {result.index} of cell {result.cell_id!r} "
                             f"in run {result.run_id!r}: {e} (was the run created with this "
                             "cell?)") from None
        except sqlite3.Error as e:
            raise StoreError(f"cannot record boot {result.index} of cell {result.cell_id!r} "
                             f"in {self.path}: {e}") from None

    def record_many(self, results: Iterable[BootResult]) -> None:
        """Several boots in one transaction (imports, tests)."""
        try:
            with self._write() as c:
                for r in results:
                    self._record(c, r)
        except sqlite3.Error as e:
            raise StoreError(f"cannot record these boots in {self.path} (none was): {e} "
                             "(was the run created with these cells?)") from None

    def _record(self, c: sqlite3.Connection, r: BootResult) -> None:
        now = time.time()
        outcome = Outcome(r.outcome)
        if outcome is Outcome.INFRA_ERROR:
            c.execute("INSERT OR IGNORE INTO infra_events (run_id, cell_id, idx, attempt, "
                      "reason, recorded, digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (r.run_id, r.cell_id, r.index, r.attempt, r.reason, now,
                       codec.digest(r)))
        old = c.execute("SELECT id, outcome FROM boots WHERE run_id = ? AND cell_id = ? "
                        "AND idx = ?", (r.run_id, r.cell_id, r.index)).fetchone()
        if old is not None:
            if old["outcome"] != Outcome.INFRA_ERROR or outcome is Outcome.INFRA_ERROR:
                return  # already recorded: never twice
            c.execute("DELETE FROM boots WHERE id = ?", (old["id"],))
        cols = (*codec.BOOT_COLUMNS, "recorded")
        cur = c.execute(f"INSERT INTO boots ({', '.join(cols)}) "
                        f"VALUES ({', '.join('?' * len(cols))})", (*codec.boot_row(r), now))
        boot_id = cur.lastrowid
        c.executemany("INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?)",
                      [(boot_id, i, f.kind, f.line, f.text, codec.int64(f.cpu),
                        codec.int64(f.errno)) for i, f in enumerate(r.findings)])
        for s in dict.fromkeys(r.signatures):
            c.execute("INSERT OR IGNORE INTO signatures (kind, title) VALUES (?, ?)",
                      (s.kind, s.title))
            c.execute("INSERT OR IGNORE INTO boot_signatures SELECT ?, id FROM signatures "
                      "WHERE kind = ? AND title = ?", (boot_id, s.kind, s.title))

    def record_decision(self, run_id: str, d: Any) -> None:
        """Keep adaptive stopping's decision for a cell (``CellDecision``-like: cell_id,
        decision, at_boot, outcome, low, high, confidence, method). The first one wins."""
        try:
            with self._write() as c:
                c.execute("INSERT OR IGNORE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (run_id, d.cell_id, d.decision, int(d.at_boot), d.outcome,
                           float(d.low), float(d.high), float(d.confidence), d.method,
                           time.time()))
        except sqlite3.Error as e:
            raise StoreError(f"cannot record the decision of cell {d.cell_id!r} in run "
                             f"{run_id!r}: {e}") from None

    def decisions(self, run_id: str) -> dict[str, StoredDecision]:
        """Adaptive stopping's decisions of a run, by cell id."""
        rows = self._conn().execute(
            "SELECT cell_id, decision, at_boot, outcome, low, high, confidence, method "
            "FROM decisions WHERE run_id = ?", (run_id,))
        return {r[0]: StoredDecision(*r) for r in rows}

    def recorded(self, run_id: str, cell_id: str, include_infra: bool = False) -> set[int]:
        """Boot indices of the cell that are done. Indices that ended in an infrastructure
        error are not done (a resume re-does them) unless ``include_infra``."""
        q = "SELECT idx FROM boots WHERE run_id = ? AND cell_id = ?"
        if not include_infra:
            q += " AND outcome != 'infra_error'"
        return {r[0] for r in self._conn().execute(q, (run_id, cell_id))}

    def counts(self, run_id: str) -> dict[str, CellCounts]:
        """Outcome counts per cell id (every cell of the run, zero counts included)."""
        conn = self._conn()
        per: dict[str, dict[str, int]] = {r[0]: {} for r in conn.execute(
            "SELECT id FROM cells WHERE run_id = ? ORDER BY position", (run_id,))}
        for cell_id, outcome, n in conn.execute(
                "SELECT cell_id, outcome, COUNT(*) FROM boots WHERE run_id = ? "
                "GROUP BY cell_id, outcome", (run_id,)):
            per.setdefault(cell_id, {})[outcome] = n
        return {cid: CellCounts(**d) for cid, d in per.items()}

    def boots(self, run_id: str, cell_id: str | None = None, *,
              with_findings: bool = True) -> list[BootResult]:
        """Recorded boots of a run (or one cell), by cell then index."""
        conn = self._conn()
        where = "b.run_id = ?"
        args: tuple[str, ...] = (run_id,)
        if cell_id is not None:
            where, args = where + " AND b.cell_id = ?", (run_id, cell_id)
        rows = conn.execute(f"SELECT * FROM boots b WHERE {where} ORDER BY b.cell_id, b.idx",
                            args).fetchall()
        sigs: dict[int, list[Signature]] = {}
        for bid, kind, title in conn.execute(
                "SELECT b.id, s.kind, s.title FROM boot_signatures bs "
                "JOIN boots b ON b.id = bs.boot_id JOIN signatures s ON s.id = bs.signature_id "
                f"WHERE {where} ORDER BY s.kind, s.title", args):
            sigs.setdefault(bid, []).append(Signature(kind, title))
        finds: dict[int, list[Finding]] = {}
        if with_findings:
            for f in conn.execute("SELECT f.* FROM findings f JOIN boots b ON b.id = f.boot_id "
                                  f"WHERE {where} ORDER BY f.boot_id, f.seq", args):
                finds.setdefault(f["boot_id"], []).append(
                    Finding(f["kind"], f["line"], f["text"], f["cpu"], f["errno"]))
        return [codec.boot_from_row(r, tuple(finds.get(r["id"], ())),
                                    tuple(sigs.get(r["id"], ()))) for r in rows]

    def artifact_refs(self, run_id: str) -> list[tuple[str, int, str, list[list[str]]]]:
        """(cell id, index, outcome, [[name, path], ...]) of every boot of the run that
        still lists artifacts (for retention)."""
        rows = self._conn().execute(
            "SELECT cell_id, idx, outcome, artifacts FROM boots WHERE run_id = ? AND "
            "artifacts != '[]' ORDER BY cell_id, idx", (run_id,)).fetchall()
        return [(r[0], r[1], r[2], codec._load(r[3])) for r in rows]

    def forget_artifacts(self, run_id: str, boots: Iterable[tuple[str, int]],
                         when: float | None = None) -> int:
        """Mark the artifacts of these boots (cell id, index) as pruned: the boot keeps its
        outcome, findings and signatures (history and reports stay whole), its artifact
        list becomes empty and ``extra`` gains ``artifacts_pruned`` (unix time). Returns
        the boots changed; one transaction."""
        when = time.time() if when is None else when
        n = 0
        with self._write() as c:
            for cell_id, idx in boots:
                n += c.execute(
                    "UPDATE boots SET artifacts = '[]', extra = json_insert(extra, '$[#]', "
                    "json_array('artifacts_pruned', ?)) WHERE run_id = ? AND cell_id = ? "
                    "AND idx = ? AND artifacts != '[]'", (when, run_id, cell_id, idx)).rowcount
        return n

    def infra_events(self, run_id: str) -> list[InfraEvent]:
        rows = self._conn().execute(
            "SELECT cell_id, idx, attempt, reason, recorded FROM infra_events "
            "WHERE run_id = ? ORDER BY id", (run_id,))
        return [InfraEvent(*r) for r in rows]

    def load_run(self, run_id: str, *, with_findings: bool = True) -> RunData:
        """Everything about one run, for reports (a consistent snapshot)."""
        conn = self._conn()
        conn.execute("BEGIN")  # one read snapshot for all the queries below
        try:
            info = self.get_run(run_id)
            cells = self.cells(run_id)
            by_cell: dict[str, list[BootResult]] = {}
            for b in self.boots(run_id, with_findings=with_findings):
                by_cell.setdefault(b.cell_id, []).append(b)
            events = tuple(self.infra_events(run_id))
            decided = self.decisions(run_id)
        finally:
            conn.execute("COMMIT")
        out = []
        for pos, cell in enumerate(cells):
            boots = tuple(by_cell.get(cell.id, ()))
            out.append(CellData(cell, pos, boots, _counts(boots),
                                signature_counts(b.signatures for b in boots),
                                decided.get(cell.id)))
        every = [b for c in out for b in c.boots]
        return RunData(info, tuple(out), events, signature_counts(b.signatures for b in every))


def _counts(boots: Iterable[BootResult]) -> CellCounts:
    from harness.stats import count_outcomes

    return count_outcomes(b.outcome for b in boots)


def _run_info(row: sqlite3.Row) -> RunInfo:
    import json

    return RunInfo(row["id"], row["matrix"], row["matrix_file"], json.loads(row["config"]),
                   row["started"], row["finished"], row["status"], row["artifacts_dir"])
