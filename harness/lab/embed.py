"""What ``qemu:///embed?root=DIR`` needs (libvirt's QEMU driver in this process, no
daemon), learned on Debian 12 / libvirt 9.0:

- an event loop registered and running before ``libvirt.open`` (the libvirt backend's
  ``ensure_event_loop`` does it);
- ``DIR/etc/qemu.conf``: ``stdio_handler = "file"`` (no virtlogd socket to talk to),
  ``namespaces = []`` and ``dynamic_ownership = 0`` (QEMU reads the cache in place);
  as root also ``user``/``group = "root"``;
- the ``libvirt-qemu`` user and group must exist even so: the driver resolves its
  compiled-in default user before it reads qemu.conf ("Failed to parse user
  'libvirt-qemu'"); ``/var/log/libvirt`` must exist for the system-wide driver;
- ``DIR`` short enough for the QMP socket path (``DIR/lib/qemu/domain-N-<20 chars>/
  monitor.sock`` must stay under 108 bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_ROOT_LEN = 50  # leaves room for lib/qemu/domain-NNN-<20>/monitor.sock in 107 bytes


def qemu_conf(as_root: bool) -> str:
    lines = [
        "# written by `harness lab setup` for qemu:///embed (see harness/lab/embed.py)",
        'stdio_handler = "file"',
        "namespaces = [ ]",
        "dynamic_ownership = 0",
        "remember_owner = 0",
    ]
    if as_root:
        lines += ['user = "root"', 'group = "root"']
    return "\n".join(lines) + "\n"


def embed_uri(root: Path) -> str:
    return f"qemu:///embed?root={root}"


def write_qemu_conf(root: Path, as_root: bool | None = None) -> bool:
    """Write ``root/etc/qemu.conf``; returns True when it changed."""
    as_root = os.geteuid() == 0 if as_root is None else as_root
    conf = root / "etc" / "qemu.conf"
    text = qemu_conf(as_root)
    if conf.exists() and conf.read_text(encoding="utf-8") == text:
        return False
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(text, encoding="utf-8")
    return True


def root_problem(root: Path) -> str | None:
    if len(str(root)) > MAX_ROOT_LEN:
        return (f"the embed root {root} is longer than {MAX_ROOT_LEN} characters: QEMU's "
                f"monitor socket path would not fit; set VMBH_CACHE to a shorter folder")
    return None


def holder(root: Path) -> int | None:
    """The pid of the process that has ``root`` open as its embedded driver, if any
    (libvirt holds a lock on ``ROOT/run/qemu/driver.pid``; one process per root, and one
    root per process)."""
    import fcntl

    pidfile = root / "run" / "qemu" / "driver.pid"
    try:
        fd = os.open(pidfile, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            try:
                return int(pidfile.read_text().strip() or 0) or -1
            except (OSError, ValueError):
                return -1
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
