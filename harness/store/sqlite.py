"""The embedded results store: one SQLite file per lab (WAL, one short ``BEGIN
IMMEDIATE`` transaction per boot). The default: it needs no server."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import ConfigError
from harness.store.db import Store, StoreError
from harness.store.dialect import SQLITE, Dialect

BUSY_TIMEOUT_S = 60.0


class SQLiteStore(Store):
    """Several threads (one connection each) and several processes (WAL, busy timeout,
    ``BEGIN IMMEDIATE``) share the file."""

    dialect: ClassVar[Dialect] = SQLITE
    integrity_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.IntegrityError,)
    db_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.Error,)

    def __init__(self, path: str | Path, *, create: bool = True, durable: bool = True) -> None:
        """``durable=False`` opens the file with ``synchronous=NORMAL`` instead of
        ``FULL``: no fsync per commit (simulated labs)."""
        super().__init__(path, create=create, durable=durable)
        self.path = Path(path)
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
        self._write_lock = threading.Lock()  # this process's writers, one at a time
        self._migrate()

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def folder(self) -> Path:
        return self.path.resolve().parent

    def hold_run(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        from harness.store.lock import hold

        return hold(self.path, run_id)

    def _connect(self) -> sqlite3.Connection:
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

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN")  # a read transaction: one WAL snapshot until COMMIT
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _tables(self, conn: Any) -> set[str]:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
