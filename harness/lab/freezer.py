"""Freeze one host thread (a QEMU vCPU) and thaw it again, with the cgroup freezer.

Two ways, tried in this order:

1. cgroup v2 ``cgroup.freeze`` on the thread's own cgroup, when the thread is alone
   in it. libvirt puts every vCPU thread into its own *threaded* cgroup (``.../vcpuN``)
   on the unified hierarchy (pure v2 hosts, and hybrid ones such as this Debian 12
   machine with ``/sys/fs/cgroup/unified``), so nothing has to be created or moved.
   A frozen v2 cgroup still lets SIGKILL through, so QEMU can be stopped while frozen.
2. cgroup v1 ``freezer``: a cgroup ``vmbh-stall-<name>`` of our own on the v1 freezer
   hierarchy (the mounted one, or one mounted by us under ``/run/vm-boot-harness``);
   v1 ``tasks`` takes single thread ids. A v1-frozen thread does NOT die on SIGKILL
   until thawed: ``Stall.stop_process`` sends SIGKILL first and thaws right after.

Moving a single thread into a v2 cgroup of our own is not possible (threads move only
inside one threaded subtree of their process), hence the choice above. Everything we
create is removed by ``thaw``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InfraError

OWN_V1_MOUNT = Path("/run/vm-boot-harness/freezer")


@dataclass(frozen=True)
class Mount:
    fstype: str  # "cgroup" or "cgroup2"
    path: Path
    options: frozenset[str]  # super options, e.g. {"rw", "freezer"}


def parse_mountinfo(text: str) -> list[Mount]:
    """cgroup mounts from ``/proc/self/mountinfo`` (pure)."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rest = right.split()
        if len(fields) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        path = fields[4].replace("\\040", " ")
        out.append(Mount(rest[0], Path(path), frozenset(rest[2].split(","))))
    return out


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/task/<tid>/cgroup`` -> controller (or ``""`` for v2) -> path."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = path
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _write(path: Path, value: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(value)


def thread_cgroups(tid: int) -> dict[str, str]:
    try:
        return parse_proc_cgroup(_read(Path(f"/proc/{tid}/cgroup")))
    except OSError as exc:
        raise InfraError(f"thread {tid} is gone: {exc}", reason="stall_injector") from exc


def mounts() -> list[Mount]:
    return parse_mountinfo(_read(Path("/proc/self/mountinfo")))


def v2_alone_cgroup(tid: int, ms: list[Mount] | None = None) -> Path | None:
    """The thread's v2 cgroup folder when the thread is alone in it, else None."""
    ms = mounts() if ms is None else ms
    v2 = next((m for m in ms if m.fstype == "cgroup2"), None)
    rel = thread_cgroups(tid).get("")
    if v2 is None or rel is None or rel in ("", "/"):
        return None
    folder = v2.path / rel.lstrip("/")
    try:
        members = _read(folder / "cgroup.threads").split()
    except OSError:
        return None
    if members != [str(tid)] or not (folder / "cgroup.freeze").exists():
        return None
    return folder


def v1_freezer_mount(ms: list[Mount] | None = None, *, mount_own: bool = True) -> Path | None:
    ms = mounts() if ms is None else ms
    for m in ms:
        if m.fstype == "cgroup" and "freezer" in m.options:
            return m.path
    if not mount_own:
        return None
    OWN_V1_MOUNT.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "cgroup", "-o", "freezer", "vmbh-freezer",
                           str(OWN_V1_MOUNT)], capture_output=True, text=True, check=False)
    return OWN_V1_MOUNT if proc.returncode == 0 else None


def tgid_of(tid: int) -> int | None:
    try:
        for line in _read(Path(f"/proc/{tid}/status")).splitlines():
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Freeze:
    """One frozen thread. ``thaw`` is idempotent and removes what was created."""

    def __init__(self, tid: int, name: str) -> None:
        self.tid = tid
        self.name = name
        self.pid = tgid_of(tid)
        self.method = ""
        self.path: Path | None = None
        self._v1_origin: Path | None = None
        self.frozen = False

    def freeze(self, wait_s: float = 2.0) -> None:
        folder = v2_alone_cgroup(self.tid)
        try:
            if folder is not None:
                self.method, self.path = "cgroup2", folder
                _write(folder / "cgroup.freeze", "1")
                self.frozen = True
                self._wait(lambda: "frozen 1" in _read(folder / "cgroup.events"), wait_s)
                return
            mount = v1_freezer_mount()
            if mount is None:
                raise InfraError("no cgroup freezer: neither a v2 cgroup of the vCPU thread "
                                 "alone nor a v1 freezer hierarchy (mount -t cgroup -o "
                                 "freezer) is available", reason="stall_injector")
            origin = thread_cgroups(self.tid).get("freezer", "/")
            self._v1_origin = mount / origin.lstrip("/")
            self.method, self.path = "cgroup1", mount / f"vmbh-stall-{self.name}-{self.tid}"
            self.path.mkdir(exist_ok=True)
            _write(self.path / "tasks", str(self.tid))
            _write(self.path / "freezer.state", "FROZEN")
            self.frozen = True
            path = self.path
            self._wait(lambda: _read(path / "freezer.state").strip() == "FROZEN", wait_s)
        except OSError as exc:
            self.thaw()
            raise InfraError(f"cannot freeze thread {self.tid} ({self.method or 'cgroup'}): "
                             f"{exc}", reason="stall_injector") from exc

    @staticmethod
    def _wait(done: object, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if done():  # type: ignore[operator]
                return
            time.sleep(0.01)
        raise OSError("the freezer did not report the thread frozen in time")

    def kill_process(self) -> None:
        """SIGKILL the thread's process (QEMU): v2-frozen threads die at once, v1-frozen
        ones die as soon as they are thawed, without running guest code again."""
        if self.pid is not None and tgid_of(self.tid) == self.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)

    def thaw(self) -> None:
        path, self.frozen = self.path, False
        if path is None:
            return
        if self.method == "cgroup2":
            with contextlib.suppress(OSError):
                _write(path / "cgroup.freeze", "0")
            self.path = None
            return
        with contextlib.suppress(OSError):
            _write(path / "freezer.state", "THAWED")
        if self._v1_origin is not None:
            with contextlib.suppress(OSError):
                _write(self._v1_origin / "tasks", str(self.tid))
        for _ in range(50):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                with contextlib.suppress(OSError):  # a dying thread may linger a moment
                    _write(path.parent / "tasks", str(self.tid))
                time.sleep(0.05)
        self.path = None
