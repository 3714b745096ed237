"""Who is running a boot: the controller's identity, written into every domain's metadata,
so ``harness gc`` can tell a live run's domains from leftovers of a dead one.

A run is alive when its controller process still exists on this machine: same host name,
same kernel boot id, and a process with the same pid *and* start time (pids are reused).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def controller_identity(pid: int | None = None) -> dict[str, str]:
    pid = os.getpid() if pid is None else pid
    return {
        "controller": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": str(pid),
        "pid_start": process_start(pid) or "",
    }


def controller_alive(meta: dict[str, str]) -> bool | None:
    """True: the run that made this domain is still running here. False: it is dead.
    None: it ran on another controller (or wrote no identity), so nobody here can tell."""
    if not meta.get("controller") or meta.get("controller") != socket.gethostname():
        return None
    if meta.get("boot_id") != _boot_id():
        return False
    try:
        pid = int(meta.get("pid", ""))
    except ValueError:
        return False
    start = process_start(pid)
    return start is not None and start == meta.get("pid_start")
