"""Fixtures shared by unit and integration tests: the results databases.

``db_target`` is the one parametrized fixture through which the store's tests run against
both implementations: an SQLite file in the test's folder, and a fresh schema in a real
PostgreSQL 15 server (``pg_server``: started once per session as a non-root user in a
temporary folder, on 127.0.0.1 only, stopped after).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from harness.testing.pgserver import PgServer, PgUnavailable

PG_DATABASE = "harness_test"

# Property tests assert properties, not speed: on a shared 2-core machine one example can
# take seconds, and Hypothesis' 200 ms deadline then fails a correct test (speed belongs
# in benchmarks/).
settings.register_profile("harness", deadline=None)
settings.load_profile("harness")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = PgServer()
    except PgUnavailable as e:  # the binaries are missing: say so, never pass silently
        pytest.skip(f"PostgreSQL cannot run here: {e}")
    server.start()
    try:
        server.create_database(PG_DATABASE)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A URL to an empty schema of its own in the session's PostgreSQL server."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_server.schema_url(PG_DATABASE, schema)
    yield url
    pg_server.drop_schema(PG_DATABASE, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A results database that does not exist yet: an SQLite file or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "reports" / "lab.db"
    url: str = request.getfixturevalue("pg_url")
    return url
