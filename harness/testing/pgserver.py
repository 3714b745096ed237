"""A throw-away PostgreSQL server for tests and benchmarks: Debian's postgresql-15 binaries,
a cluster in a temporary folder, started as a non-root user (``initdb`` refuses root: as
root the cluster belongs to the ``postgres`` account the package creates), listening on
127.0.0.1 only, on a port nobody uses, its unix socket in the folder; stopped and removed
after.

    with PgServer() as pg:                    # a few seconds: initdb + start
        url = pg.create_database("t1")        # postgresql://harness@127.0.0.1:PORT/t1
        url = pg.schema_url("t1", "case_7")   # the same database, its own schema
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/17/bin")
USER = "harness"  # the database role the harness connects as


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (install postgresql-15)."""


def pg_bin() -> Path:
    for d in PG_BIN_DIRS:
        if (Path(d) / "initdb").exists():
            return Path(d)
    raise PgUnavailable("no PostgreSQL server binaries (initdb) in " + ", ".join(PG_BIN_DIRS)
                        + ": apt-get install postgresql-15 (scripts/bootstrap.sh --test)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster for the life of the context (see the module docstring).
    ``fast=True`` (tests) turns off fsync: a test database never outlives a crash."""

    def __init__(self, *, fast: bool = True, settings: Sequence[str] = ()) -> None:
        self.bin = pg_bin()
        self.fast = fast
        self.settings = tuple(settings)
        self.dir: Path | None = None
        self.port = 0
        self._as: list[str] = []

    @property
    def data(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def _run(self, *args: str, check: bool = True, timeout: float = 120
             ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as, *args], capture_output=True, text=True,
                              timeout=timeout, check=check, cwd="/")

    def start(self) -> PgServer:
        self.dir = Path(tempfile.mkdtemp(prefix="vmbh-pg-"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root and there is no 'postgres' account to "
                                    "own the cluster (the postgresql package makes it)") from None
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.dir, 0o700)
        try:
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions")
            opts = ["-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.dir}",
                    "-c max_connections=200", "-c shared_buffers=64MB"]
            if self.fast:
                opts += ["-c fsync=off", "-c full_page_writes=off"]
            opts += [f"-c {s}" for s in self.settings]
            for attempt in range(5):  # the port may be taken between choosing and binding
                self.port = free_port()
                res = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w",
                                "-t", "60", "-l", str(self.dir / "server.log"), "-o",
                                " ".join([f"-p {self.port}", *opts]), "start", check=False)
                if res.returncode == 0:
                    break
                if attempt == 4:
                    raise RuntimeError(f"PostgreSQL did not start: {res.stderr}\n"
                                       f"{self.log()}")
            self.psql("postgres", f"CREATE ROLE {USER} LOGIN CREATEDB")
        except BaseException:
            self.stop()
            raise
        return self

    def log(self) -> str:
        assert self.dir is not None
        with contextlib.suppress(OSError):
            return (self.dir / "server.log").read_text()[-4000:]
        return ""

    def psql(self, database: str, sql: str) -> str:
        res = self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt",
                        "-c", sql)
        return res.stdout

    def url(self, database: str, *, user: str = USER, schema: str | None = None) -> str:
        url = f"postgresql://{user}@127.0.0.1:{self.port}/{database}"
        if schema is not None:
            url += f"?options=-csearch_path%3D{schema}"
        return url

    def create_database(self, name: str) -> str:
        self.psql("postgres", f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)

    def schema_url(self, database: str, schema: str) -> str:
        """A URL whose connections work in their own (new, empty) schema ``schema``."""
        self.psql(database, f"CREATE SCHEMA {schema} AUTHORIZATION {USER}")
        return self.url(database, schema=schema)

    def drop_schema(self, database: str, schema: str) -> None:
        self.psql(database, f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "-t", "60", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

