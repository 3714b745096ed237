"""The results store's interface and the logic both databases share: the records, the
queries (written once, in SQL both accept), the recording rules, the migrations. The
SQLite store (``harness.store.sqlite``, the embedded default) and the PostgreSQL store
(``harness.store.postgres``) add connections, transactions and what only they know.
``Store(target)`` opens the one its target names: a ``postgresql://`` URL, else a file.
API: the package docstring (``harness/store/__init__.py``) and docs/results.md."""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from harness.classify.result import SignatureCount
from harness.errors import ConfigError, EnvironmentFault
from harness.model import BootResult, Cell, Finding, Outcome, Signature, safe_name
from harness.stats import CellCounts, Judgement, judge_cell, signature_counts
from harness.store import codec
from harness.store.dialect import Dialect
from harness.store.schema import LATEST, MIGRATIONS


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
    lab: str = ""  # the lab it ran on (one database may hold several labs' runs)


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


MAX_RUN_ID = 128
_RUN_ID = re.compile(r"[A-Za-z0-9._-]+")


def check_run_id(run_id: str) -> str:
    """``run_id`` when it can name a folder of its own under the reports folder: only
    ``[A-Za-z0-9._-]``, at most ``MAX_RUN_ID`` characters, not ``.`` or ``..``;
    ``ConfigError`` saying which rule it breaks otherwise."""
    if not run_id:
        raise ConfigError("the run id is empty")
    if len(run_id) > MAX_RUN_ID:
        raise ConfigError(f"run id {run_id[:40]!r}... is {len(run_id)} characters long; "
                          f"at most {MAX_RUN_ID}")
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"run id {run_id!r} may only use letters, digits, '_', '.', '-'")
    if run_id in (".", ".."):
        raise ConfigError(f"run id {run_id!r} would name the reports folder or its parent; "
                          "choose a name")
    return run_id


def make_run_id(matrix: str, now: float | None = None) -> str:
    """``<matrix>-<UTC yyyymmdd-HHMMSS>-<4 hex>``: sortable, unique, safe in paths."""
    t = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{safe_name(matrix)[:80]}-{t:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def default_db_path(lab_name: str, results: Path | str | None = None,
                    reports_dir: Path = Path("reports")) -> Path | str:
    """The lab's database: ``LabSpec.results`` if set (a file or a ``postgresql://``
    URL), else ``reports/<lab>.db``. ``harness.store.target.resolve_db`` adds ``--db``
    and ``$VMBH_DB`` in front."""
    return results if results is not None else reports_dir / f"{safe_name(lab_name)}.db"


def is_url(target: object) -> bool:
    """Does ``target`` name a PostgreSQL database (rather than an SQLite file)?"""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def artifact_dir(run_dir: Path, cell: Cell, index: int) -> Path:
    """Where one boot's raw files go: ``<run_dir>/<cell folder>/<boot index>/`` (the run
    dir is ``reports/<run-id>/``; ``Cell.folder`` is unique per cell); store paths
    relative to ``run_dir`` in the result."""
    return run_dir / cell.folder / str(index)


class Store:
    """One results database: ``Store("reports/lab.db")`` (SQLite, the embedded default)
    or ``Store("postgresql://user@host/db")`` (PostgreSQL, for several controllers and
    labs sharing one history). Safe for several threads (one connection each) and several
    processes. Use as a context manager or call ``close()``. Open one ``Store`` per
    process (do not share it across ``fork``)."""

    dialect: ClassVar[Dialect]
    # what the driver raises: a constraint refused, or anything the database refused
    integrity_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    db_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __new__(cls, target: str | Path | None = None, *args: Any, **kwargs: Any) -> Store:
        if cls is Store:  # the implementation the target names
            if is_url(target):
                from harness.store.postgres import PostgresStore

                cls = PostgresStore
            else:
                from harness.store.sqlite import SQLiteStore

                cls = SQLiteStore
        return super().__new__(cls)

    def __init__(self, target: str | Path, *, create: bool = True,
                 durable: bool = True) -> None:
        """``durable`` (the default): every committed boot is on disk before ``record``
        returns, so not even a power cut loses one. ``False`` (simulated labs): still
        safe against kill -9 and never corrupt, but a power cut or OS crash may lose the
        last boots, which a resume re-does; it saves a disk flush per boot."""
        self.durable = durable
        self.create = create
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[threading.Thread, Any]] = []

    # --- what each database provides ---------------------------------------------------

    @property
    def location(self) -> str:
        """The database for messages: a file path, or a URL without its password."""
        raise NotImplementedError

    @property
    def folder(self) -> Path:
        """Where runs' folders go by default: beside an SQLite file, else ``reports/``."""
        return Path("reports").resolve()

    def _connect(self) -> Any:
        """A new connection whose ``execute(sql, args)`` takes ``?`` placeholders and
        whose rows are indexable by name and position."""
        raise NotImplementedError

    def _close_conn(self, conn: Any) -> None:
        with contextlib.suppress(*self.db_errors):
            conn.close()

    def _write(self) -> contextlib.AbstractContextManager[Any]:
        """One write transaction (committed at the end, rolled back on an exception)."""
        raise NotImplementedError

    def _snapshot(self) -> contextlib.AbstractContextManager[Any]:
        """One consistent read snapshot for several queries."""
        raise NotImplementedError

    def _tables(self, conn: Any) -> set[str]:
        raise NotImplementedError

    def _lock_schema(self, conn: Any) -> None:
        """Inside the migration's transaction: one migrating process at a time."""

    def _retrying(self, what: Callable[[], Any]) -> Any:
        """Run a whole transaction again when the database asks to (PostgreSQL's
        deadlock victim); SQLite writers queue and never need it."""
        return what()

    # --- connections ---------------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = self._connect()
        with self._lock:  # close the connections of threads that have ended
            dead = [c for t, c in self._conns if not t.is_alive()]
            self._conns = [(t, c) for t, c in self._conns if t.is_alive()]
            self._conns.append((threading.current_thread(), conn))
        for old in dead:
            self._close_conn(old)
        self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for _, c in conns:
            self._close_conn(c)
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def hold_run(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """Be the one controller of run ``run_id`` for a ``with`` block (``RunLocked``
        if another live process is; a dead one never holds it). SQLite: an ``flock``
        beside the file (store/lock.py); PostgreSQL: a session advisory lock."""
        raise NotImplementedError

    def _migrate(self) -> None:
        """Create or upgrade the schema: every missing migration in one transaction."""
        try:
            tables = self._tables(self._conn())
        except self.db_errors as e:
            self.close()
            raise ConfigError(f"{self.location} is not a results database: {_msg(e)}") from None
        if tables and "schema_version" not in tables:
            self.close()
            raise ConfigError(f"{self.location} is a database but not a results database "
                              f"(tables: {', '.join(sorted(tables)[:5])}); choose another")
        if not tables and not self.create:
            self.close()
            raise ConfigError(f"no results database at {self.location} (it holds no "
                              "results yet)")
        version = 0
        d = self.dialect
        refused: tuple[type[BaseException], ...] = (StoreError, *self.db_errors)
        try:
            with self._write() as c:
                self._lock_schema(c)
                c.execute(d.migration("CREATE TABLE IF NOT EXISTS schema_version ("
                                      "version INTEGER NOT NULL PRIMARY KEY, "
                                      "applied REAL NOT NULL)"))
                have = c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
                if have > LATEST:
                    raise ConfigError(
                        f"{self.location} was written by a newer harness (schema v{have}; "
                        f"this one knows up to v{LATEST}): upgrade vm-boot-harness")
                for version in range(have + 1, LATEST + 1):
                    for stmt in MIGRATIONS[version - 1]:
                        c.execute(d.migration(stmt))
                    c.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
        except refused as e:  # StoreError: SQLite's write refused
            self.close()
            raise StoreError(f"{self.location}: migrating to schema v{version} failed: {_msg(e)} "
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
                   started: float | None = None, lab: str | None = None) -> RunInfo:
        """Register a new run and its cells; ConfigError if the id is taken. ``lab``
        (default: ``config["lab"]``) lets one database hold the history of several."""
        _check_run_id(run_id)
        started = time.time() if started is None else started
        try:
            with self._write() as c:
                c.execute("INSERT INTO runs (id, matrix, matrix_file, config, started, status,"
                          " artifacts_dir, lab) VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                          (run_id, matrix, str(matrix_file), codec.dumps(dict(config or {})),
                           started, None if artifacts_dir is None else str(artifacts_dir),
                           _lab_of(lab, config)))
                self._add_cells(c, run_id, cells)
        except self.integrity_errors:
            raise ConfigError(f"run {run_id!r} already exists in {self.location}; continue "
                              f"it with --resume {run_id} or choose another id") from None
        return self.get_run(run_id)

    @staticmethod
    def _add_cells(c: Any, run_id: str, cells: Sequence[Cell]) -> None:
        start = c.execute("SELECT COUNT(*) FROM cells WHERE run_id = ?", (run_id,)).fetchone()[0]
        seen: set[str] = set()
        rows = []
        for i, cell in enumerate(cells):
            if cell.id in seen:
                raise ConfigError(f"cell {cell.id!r} is listed twice")
            seen.add(cell.id)
            rows.append((run_id, cell.id, start + i, codec.cell_to_json(cell)))
        if rows:
            c.executemany("INSERT INTO cells (run_id, id, position, spec) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)

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
            self._lock_run(c, run_id)
            self._add_cells(c, run_id, cells)

    def _lock_run(self, c: Any, run_id: str) -> None:
        """Serialize writers that add cells to one run (their positions are counted)."""
        c.execute("SELECT id FROM runs WHERE id = ?" + _for_update(self), (run_id,)).fetchall()

    def join_run(self, run_id: str, matrix: str, cells: Sequence[Cell], *,
                 matrix_file: str = "", config: Mapping[str, Any] | None = None,
                 artifacts_dir: str | Path | None = None, lab: str | None = None) -> RunInfo:
        """Create the run if no process has yet, else join it; either way add the missing
        cells. Atomic: several processes may call it at once (e.g. pytest-xdist workers,
        controllers on several machines). ConfigError if the run exists for another
        matrix."""
        _check_run_id(run_id)
        with self._write() as c:
            c.execute("INSERT INTO runs (id, matrix, matrix_file, config, started, status, "
                      "artifacts_dir, lab) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) "
                      "ON CONFLICT DO NOTHING",
                      (run_id, matrix, str(matrix_file), codec.dumps(dict(config or {})),
                       time.time(), None if artifacts_dir is None else str(artifacts_dir),
                       _lab_of(lab, config)))
            self._lock_run(c, run_id)
            have = c.execute("SELECT matrix FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            if have != matrix:
                raise ConfigError(f"run {run_id!r} in {self.location} is a run of matrix "
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
            raise ConfigError(f"no run {run_id!r} in {self.location}{hint}")
        return _run_info(row)

    def list_runs(self, matrix: str | None = None, *, lab: str | None = None) -> list[RunInfo]:
        """Runs, oldest first (optionally of one matrix, of one lab)."""
        where, args = [], []
        if matrix is not None:
            where.append("matrix = ?")
            args.append(matrix)
        if lab is not None:
            where.append("lab = ?")
            args.append(lab)
        q = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._conn().execute(q + " ORDER BY started, id", tuple(args)).fetchall()
        return [_run_info(r) for r in rows]

    def previous_run(self, matrix: str, before: str | None = None, *,
                     lab: str | None = None) -> RunInfo | None:
        """The latest run of ``matrix`` started before run ``before`` (or the latest);
        of the same lab as ``before`` when the database holds several labs' runs (or of
        ``lab`` when given)."""
        ref = self.get_run(before) if before is not None else None
        if lab is None and ref is not None and ref.lab:
            lab = ref.lab
        runs = self.list_runs(matrix, lab=lab)
        if ref is not None:
            runs = [r for r in runs if (r.started, r.id) < (ref.started, ref.id)]
        return runs[-1] if runs else None

    # --- hosts of a run, baseline pins (completeness and the nightly baseline) --------

    def set_host_state(self, run_id: str, host: str, state: str, reason: str = "") -> None:
        """Record what became of a host in a run (``set_aside`` and why); the last wins."""
        self.get_run(run_id)
        with self._write() as c:
            c.execute("INSERT INTO run_hosts (run_id, host, state, reason, recorded) "
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, host) DO UPDATE SET "
                      "state = excluded.state, reason = excluded.reason, "
                      "recorded = excluded.recorded",
                      (run_id, host, state, reason, time.time()))

    def host_states(self, run_id: str) -> dict[str, tuple[str, str]]:
        """``{host: (state, reason)}`` recorded for a run (hosts set aside, ...)."""
        rows = self._conn().execute("SELECT host, state, reason FROM run_hosts WHERE "
                                    "run_id = ? ORDER BY host", (run_id,)).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def pin_baseline(self, run_id: str, note: str = "") -> RunInfo:
        """Make ``run_id`` the baseline of its matrix until unpinned."""
        info = self.get_run(run_id)
        with self._write() as c:
            c.execute("INSERT INTO baseline_pins (matrix, run_id, pinned, note) "
                      "VALUES (?, ?, ?, ?) ON CONFLICT (matrix) DO UPDATE SET "
                      "run_id = excluded.run_id, pinned = excluded.pinned, "
                      "note = excluded.note", (info.matrix, run_id, time.time(), note))
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
        counted twice (the first recorded wins), also when several controllers record
        the same boot at once. A recorded infrastructure error is kept in
        ``infra_events`` and replaced by a later guest outcome of the same index."""
        def once() -> None:
            with self._write() as c:
                self._record(c, result)

        try:
            self._retrying(once)
        except self.integrity_errors as e:
            raise StoreError(f"cannot record boot {result.index} of cell {result.cell_id!r} "
                             f"in run {result.run_id!r}: {_msg(e)} (was the run created with this "
                             "cell?)") from None
        except self.db_errors as e:
            raise StoreError(f"cannot record boot {result.index} of cell {result.cell_id!r} "
                             f"in {self.location}: {_msg(e)}") from None

    def record_many(self, results: Iterable[BootResult]) -> None:
        """Several boots in one transaction (imports, tests)."""
        todo = list(results)

        def once() -> None:
            with self._write() as c:
                for r in todo:
                    self._record(c, r)

        try:
            self._retrying(once)
        except self.db_errors as e:
            raise StoreError(f"cannot record these boots in {self.location} (none was): {_msg(e)} "
                             "(was the run created with these cells?)") from None

    def _record(self, c: Any, r: BootResult) -> None:
        """The recording rules in statements both databases run the same way with
        concurrent writers: the boot row is claimed by ``INSERT ... ON CONFLICT DO
        NOTHING`` (a second writer of the same index waits for the first, then does
        nothing), and an infrastructure error is replaced by deleting exactly that row
        (of two writers replacing it, one deletes it, the other finds nothing)."""
        now = time.time()
        outcome = Outcome(r.outcome)
        key = (r.run_id, r.cell_id, r.index)
        if outcome is Outcome.INFRA_ERROR:
            c.execute("INSERT INTO infra_events (run_id, cell_id, idx, attempt, reason, "
                      "recorded, digest) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                      (*key, r.attempt, r.reason, now, codec.digest(r)))
        row = codec.boot_row(r)
        insert = (f"INSERT INTO boots ({_COLS}) VALUES ({_MARKS}) "
                  "ON CONFLICT DO NOTHING RETURNING id")
        got = c.execute(insert, (*row, now)).fetchone()
        if got is None:  # the index has a row already
            if outcome is Outcome.INFRA_ERROR:
                return  # never replaces anything
            gone = c.execute("DELETE FROM boots WHERE run_id = ? AND cell_id = ? AND idx = ? "
                             "AND outcome = 'infra_error' RETURNING id", key).fetchone()
            if gone is None:
                return  # a guest outcome is there: the first one wins
            got = c.execute(insert, (*row, now)).fetchone()
            if got is None:
                return
        boot_id = got[0]
        if r.findings:
            c.executemany("INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?)",
                          [(boot_id, i, f.kind, f.line, f.text, codec.int64(f.cpu),
                            codec.int64(f.errno)) for i, f in enumerate(r.findings)])
        # in one order for every writer: two of them adding the same new signatures
        # cannot wait for each other
        for s in sorted(dict.fromkeys(r.signatures), key=lambda s: (s.kind, s.title)):
            c.execute("INSERT INTO signatures (kind, title) VALUES (?, ?) "
                      "ON CONFLICT DO NOTHING", (s.kind, s.title))
            c.execute("INSERT INTO boot_signatures SELECT ?, id FROM signatures "
                      "WHERE kind = ? AND title = ?", (boot_id, s.kind, s.title))

    def record_decision(self, run_id: str, d: Any) -> None:
        """Keep adaptive stopping's decision for a cell (``CellDecision``-like: cell_id,
        decision, at_boot, outcome, low, high, confidence, method). The first one wins."""
        try:
            with self._write() as c:
                c.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                          "ON CONFLICT DO NOTHING",
                          (run_id, d.cell_id, d.decision, int(d.at_boot), d.outcome,
                           float(d.low), float(d.high), float(d.confidence), d.method,
                           time.time()))
        except self.db_errors as e:
            raise StoreError(f"cannot record the decision of cell {d.cell_id!r} in run "
                             f"{run_id!r}: {_msg(e)}") from None

    def decisions(self, run_id: str) -> dict[str, StoredDecision]:
        """Adaptive stopping's decisions of a run, by cell id."""
        rows = self._conn().execute(
            "SELECT cell_id, decision, at_boot, outcome, low, high, confidence, method "
            "FROM decisions WHERE run_id = ?", (run_id,)).fetchall()
        return {r[0]: StoredDecision(*r) for r in rows}

    def recorded(self, run_id: str, cell_id: str, include_infra: bool = False) -> set[int]:
        """Boot indices of the cell that are done. Indices that ended in an infrastructure
        error are not done (a resume re-does them) unless ``include_infra``."""
        q = "SELECT idx FROM boots WHERE run_id = ? AND cell_id = ?"
        if not include_infra:
            q += " AND outcome != 'infra_error'"
        return {r[0] for r in self._conn().execute(q, (run_id, cell_id)).fetchall()}

    def counts(self, run_id: str) -> dict[str, CellCounts]:
        """Outcome counts per cell id (every cell of the run, zero counts included)."""
        conn = self._conn()
        per: dict[str, dict[str, int]] = {r[0]: {} for r in conn.execute(
            "SELECT id FROM cells WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()}
        for cell_id, outcome, n in conn.execute(
                "SELECT cell_id, outcome, COUNT(*) FROM boots WHERE run_id = ? "
                "GROUP BY cell_id, outcome", (run_id,)).fetchall():
            per.setdefault(cell_id, {})[outcome] = int(n)
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
                f"WHERE {where} ORDER BY s.kind, s.title", args).fetchall():
            sigs.setdefault(bid, []).append(Signature(kind, title))
        finds: dict[int, list[Finding]] = {}
        if with_findings:
            for f in conn.execute("SELECT f.* FROM findings f JOIN boots b ON b.id = f.boot_id "
                                  f"WHERE {where} ORDER BY f.boot_id, f.seq", args).fetchall():
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
                row = c.execute("SELECT id, extra FROM boots WHERE run_id = ? AND "
                                "cell_id = ? AND idx = ? AND artifacts != '[]'",
                                (run_id, cell_id, idx)).fetchone()
                if row is None:
                    continue
                extra = [*codec._load(row["extra"]), ["artifacts_pruned", when]]
                c.execute("UPDATE boots SET artifacts = '[]', extra = ? WHERE id = ?",
                          (codec.dumps(extra), row["id"]))
                n += 1
        return n

    def infra_events(self, run_id: str) -> list[InfraEvent]:
        rows = self._conn().execute(
            "SELECT cell_id, idx, attempt, reason, recorded FROM infra_events "
            "WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        return [InfraEvent(*r) for r in rows]

    def load_run(self, run_id: str, *, with_findings: bool = True) -> RunData:
        """Everything about one run, for reports (a consistent snapshot)."""
        with self._snapshot():  # one read snapshot for all the queries below
            info = self.get_run(run_id)
            cells = self.cells(run_id)
            by_cell: dict[str, list[BootResult]] = {}
            for b in self.boots(run_id, with_findings=with_findings):
                by_cell.setdefault(b.cell_id, []).append(b)
            events = tuple(self.infra_events(run_id))
            decided = self.decisions(run_id)
        out = []
        for pos, cell in enumerate(cells):
            boots = tuple(by_cell.get(cell.id, ()))
            out.append(CellData(cell, pos, boots, _counts(boots),
                                signature_counts(b.signatures for b in boots),
                                decided.get(cell.id)))
        every = [b for c in out for b in c.boots]
        return RunData(info, tuple(out), events, signature_counts(b.signatures for b in every))


_COLS = ", ".join((*codec.BOOT_COLUMNS, "recorded"))
_MARKS = ", ".join("?" * (len(codec.BOOT_COLUMNS) + 1))


def _for_update(store: Store) -> str:
    return " FOR UPDATE" if store.dialect.name == "postgresql" else ""


def _msg(e: BaseException) -> str:
    """A driver's error on one line (PostgreSQL's carry the statement and a caret)."""
    first = str(e).split("\nLINE ", 1)[0]
    return " ".join(first.split())


def _check_run_id(run_id: str) -> None:
    check_run_id(run_id)


def _lab_of(lab: str | None, config: Mapping[str, Any] | None) -> str:
    if lab is not None:
        return lab
    value = (config or {}).get("lab")
    return value if isinstance(value, str) else ""


def _counts(boots: Iterable[BootResult]) -> CellCounts:
    from harness.stats import count_outcomes

    return count_outcomes(b.outcome for b in boots)


def _run_info(row: Any) -> RunInfo:
    import json

    return RunInfo(row["id"], row["matrix"], row["matrix_file"], json.loads(row["config"]),
                   row["started"], row["finished"], row["status"], row["artifacts_dir"],
                   row["lab"])
