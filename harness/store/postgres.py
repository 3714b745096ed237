"""The PostgreSQL results store (psycopg 3): one database for several labs and several
controllers, the same schema, migrations and recording rules as the SQLite store.

    Store("postgresql://harness@db.lab/harness")     # or $VMBH_DB, --db, results: in the lab

Connections come from a small pool shared by the process's threads (a lab of hundreds of
host slots must not open hundreds of connections): a transaction holds one connection
from ``BEGIN`` to ``COMMIT``, a single query borrows one for its statement. Writers of
one boot index meet on its unique key (``INSERT ... ON CONFLICT DO NOTHING``), so several
controllers record one run with nothing counted twice; a transaction PostgreSQL picks as
a deadlock victim is run again.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import errors as pgerrors

from harness.errors import ConfigError
from harness.store.db import Store, StoreError
from harness.store.dialect import POSTGRESQL, Dialect
from harness.store.target import describe

POOL_SIZE = 8  # connections per process at most
CONNECT_TIMEOUT_S = 10
RETRIES = 8
SCHEMA_LOCK = 0x76_6D_62_68  # pg_advisory_xact_lock key while migrating ("vmbh")
RUN_LOCKS = 0x76_6D_62  # pg_try_advisory_lock(RUN_LOCKS, hashtext(run id)): hold_run


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> Callable[[Sequence[Any]], Any]:
    index = {n: i for i, n in enumerate(names)}

    class Row(tuple):
        """A row indexable by position and by column name (like ``sqlite3.Row``)."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, index[key])
            return tuple.__getitem__(self, key)

        def keys(self) -> list[str]:
            return list(names)

    return Row


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    names = tuple(c.name for c in (cursor.description or ()))
    return _row_class(names)


class _Rows:
    """A statement's rows, fetched at once (its connection went back to the pool)."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _Conn:
    """A connection speaking the store's SQL (``?`` placeholders)."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.raw.execute(POSTGRESQL.sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(POSTGRESQL.sql(sql), rows)


class _Borrowing:
    """Outside a transaction: each statement borrows a pooled connection."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Rows:
        with self._store._borrow() as c:
            cur = c.execute(sql, args)
            return _Rows(cur.fetchall() if cur.description is not None else [])


class PostgresStore(Store):
    dialect: ClassVar[Dialect] = POSTGRESQL
    integrity_errors: ClassVar[tuple[type[BaseException], ...]] = (psycopg.IntegrityError,)
    db_errors: ClassVar[tuple[type[BaseException], ...]] = (psycopg.Error,)

    def __init__(self, url: str | Path, *, create: bool = True, durable: bool = True,
                 pool_size: int = POOL_SIZE) -> None:
        """``durable=False`` sets ``synchronous_commit = off`` for this store's sessions:
        a commit returns before its WAL is flushed (never inconsistent; a server crash
        may lose the last boots, which a resume re-does), as SQLite's ``NORMAL``."""
        super().__init__(url, create=create, durable=durable)
        self.url = str(url)
        self._idle: queue.LifoQueue[_Conn] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, pool_size))
        self._all: list[_Conn] = []
        self._migrate()

    @property
    def location(self) -> str:
        return describe(self.url)

    # --- connections ---------------------------------------------------------------------

    def _connect(self) -> _Conn:
        try:
            raw = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory,
                                  connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as e:
            raise ConfigError(f"cannot connect to the results database {self.location}: "
                              f"{str(e).strip()}") from None
        if not self.durable:
            raw.execute("SET synchronous_commit = off")
        conn = _Conn(raw)
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _borrow(self) -> Iterator[_Conn]:
        held: _Conn | None = getattr(self._local, "tx", None)
        if held is not None:  # inside this thread's transaction: its connection
            yield held
            return
        with self._slots:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            broken = False
            try:
                yield conn
            except psycopg.OperationalError:
                broken = True
                raise
            finally:
                if broken or conn.raw.closed or conn.raw.info.transaction_status not in (
                        psycopg.pq.TransactionStatus.IDLE,):
                    self._discard(conn)
                else:
                    self._idle.put(conn)

    def _discard(self, conn: _Conn) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(psycopg.Error):
            conn.raw.close()

    def _conn(self) -> Any:
        held = getattr(self._local, "tx", None)
        return held if held is not None else _Borrowing(self)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            with contextlib.suppress(psycopg.Error):
                c.raw.close()
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
        self._local = threading.local()

    @contextlib.contextmanager
    def hold_run(self, run_id: str) -> Iterator[None]:
        """One controller per run: a session advisory lock on a connection of its own,
        held for the block. PostgreSQL drops it with the session, so a controller killed
        with -9 (its connection closes) never blocks a resume, on any machine."""
        from harness.store.lock import RunLocked

        conn = self._connect()
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(?, hashtext(?))",
                               (RUN_LOCKS, run_id)).fetchone()[0]
            if not got:
                who = conn.execute(
                    "SELECT a.client_addr, a.application_name, a.backend_start FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.classid = ? AND l.objid = hashtext(?)::oid AND l.granted",
                    (RUN_LOCKS, run_id)).fetchone()
                since = f", connected since {who[2]:%Y-%m-%d %H:%M:%S %Z}" if who else ""
                raise RunLocked(f"run {run_id!r} is being run by another controller (a "
                                f"session of {self.location}{since}); two controllers would "
                                "boot the same plan twice: wait for it to end (or stop it), "
                                "then resume, or share the run with --join")
            yield
        finally:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            with contextlib.suppress(psycopg.Error):
                conn.raw.close()  # the session ends: the lock is released

    # --- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, first: str | None = None) -> Iterator[_Conn]:
        if getattr(self._local, "tx", None) is not None:
            raise StoreError("a transaction inside a transaction")
        with self._borrow() as conn, conn.raw.transaction():
            if first:
                conn.raw.execute(first)
            self._local.tx = conn
            try:
                yield conn
            finally:
                self._local.tx = None

    def _write(self) -> contextlib.AbstractContextManager[Any]:
        return self._transaction()

    def _snapshot(self) -> contextlib.AbstractContextManager[Any]:
        return self._transaction("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _retrying(self, what: Callable[[], Any]) -> Any:
        for attempt in range(RETRIES):
            try:
                return what()
            except (pgerrors.DeadlockDetected, pgerrors.SerializationFailure):
                if attempt == RETRIES - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        return None

    def _tables(self, conn: Any) -> set[str]:
        return {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()")}

    def _lock_schema(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
