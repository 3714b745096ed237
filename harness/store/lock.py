"""One controller per run: a lock that a ``harness run`` (new or ``--resume``) holds on
its run while it boots, released when it ends, dies or is killed (kill -9 included).

For the SQLite store the lock is an ``flock`` on ``<db>.locks/<run-id>.lock`` beside the
database: the kernel drops it with the process, so a dead controller never blocks a
resume, and no clock or pid guessing is involved. The file holds who took it (pid, host,
time) for the refusal message. Processes that *join* a run on purpose (pytest-xdist
workers, ``--workers`` processes, issue 16's ``--join``) do not take it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import ConfigError


class RunLocked(ConfigError):
    """Another live process holds the run (exit status 2: the command asked for what
    cannot be done now; run it again once the other controller has ended)."""


def lock_path(db: Path, run_id: str) -> Path:
    return db.parent / f"{db.name}.locks" / f"{run_id}.lock"


@contextlib.contextmanager
def hold(db: Path, run_id: str) -> Iterator[None]:
    """Hold run ``run_id`` of database ``db`` for the ``with`` block; ``RunLocked`` if
    another live process holds it."""
    path = lock_path(db, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunLocked(f"run {run_id!r} is being run by another process "
                            f"({_holder(path)}); two controllers would boot the same plan "
                            "twice: wait for it to end (or stop it), then resume") from None
        # the holder before us may have removed the file after we opened it: only the
        # lock of the file at the path counts
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)  # releases the lock


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(info["since"])))
        return f"pid {int(info['pid'])} on {info['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has just started"
