"""Reap QEMU processes of ``qemu:///embed`` as soon as they exit.

libvirt's embedded QEMU driver double-forks QEMU, so QEMU's parent becomes PID 1, and
libvirt's destroy waits until the process is *gone* (``virProcessKillPainfully`` polls
``kill(pid, 0)``, which a zombie still passes). Under an init that reaps late (this
machine's PID 1 reaps every ~2 s) or never (a container without ``--init``), every destroy
then waits 1-2 s, or 15 s and fails.

The fix: this process declares itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so
the orphaned QEMU becomes our child, and a ``ReapHook`` waits for exactly that QEMU
(``os.waitpid(pid)``, never ``-1``: other children's statuses are left alone).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from typing import TYPE_CHECKING, Any

from harness.lab.freezer import tgid_of

if TYPE_CHECKING:
    from harness.backend.base import BootRequest, Domain

PR_SET_CHILD_SUBREAPER = 36
_lock = threading.Lock()
_enabled: bool | None = None


def enable_subreaper() -> bool:
    """Make this process a child subreaper (Linux); True when it is one."""
    global _enabled
    with _lock:
        if _enabled is None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _enabled = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _enabled = False
        return _enabled


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def reap_when_done(pid: int) -> threading.Thread | None:
    """Wait for our child ``pid`` in a daemon thread; None when it is not our child."""
    if parent_of(pid) != os.getpid():
        return None

    def wait() -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)

    t = threading.Thread(target=wait, name=f"reap-{pid}", daemon=True)
    t.start()
    return t


class ReapHook:
    """A ``BootHook``: finds the domain's QEMU (the process of its vCPU threads) and
    reaps it when it exits."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    def before_resume(self, domain: Domain, request: BootRequest) -> dict[str, Any] | None:
        threads_of = getattr(domain, "vcpu_threads", None)
        if threads_of is None:
            return None
        threads = threads_of()
        pid = tgid_of(next(iter(threads.values()))) if threads else None
        if pid is not None:
            self.thread = reap_when_done(pid)
        return None

    def after_stop(self, domain: Domain, request: BootRequest) -> None:
        if self.thread is not None:
            self.thread.join(timeout=5)
