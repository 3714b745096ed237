"""Which results database a command uses: a file (SQLite, the embedded default) or a
``postgresql://`` URL, from the first of

1. ``--db`` on the command line,
2. the environment variable ``VMBH_DB`` (e.g. set once on a controller machine),
3. ``results:`` in the lab file,
4. ``<reports dir>/<lab>.db``.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.store.db import default_db_path, is_url

ENV = "VMBH_DB"

DbTarget = Path | str  # a file, or a postgresql:// URL


def parse_target(value: str | Path) -> DbTarget:
    """A ``--db`` value or ``$VMBH_DB``: a URL stays a string, anything else is a file."""
    text = str(value)
    if is_url(text):
        return text
    if "://" in text:
        from harness.errors import ConfigError

        scheme = text.split("://", 1)[0]
        raise ConfigError(f"results database {text!r}: unknown scheme {scheme!r} (a file "
                          "path for SQLite, or postgresql://user@host[:port]/database)")
    return Path(text).expanduser()


def env_target() -> DbTarget | None:
    value = os.environ.get(ENV, "").strip()
    return parse_target(value) if value else None


def resolve_db(cli: str | Path | None, lab_name: str, lab_results: Path | str | None,
               reports_dir: Path = Path("reports")) -> DbTarget:
    """The database a run of a lab records into (see the module docstring)."""
    if cli is not None:
        return parse_target(cli)
    env = env_target()
    if env is not None:
        return env
    return default_db_path(lab_name, lab_results, reports_dir)


def describe(target: DbTarget) -> str:
    """For messages: a path, or the URL without its password."""
    if isinstance(target, str):
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(target)
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (
                f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    return str(target)
