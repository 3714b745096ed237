"""The cgroup freezer on a real thread: a child process with a busy worker thread stands in
for QEMU and its vCPU thread. Exercises the v1 freezer path (the libvirt tests take the v2
path when libvirt made a vCPU cgroup), killing while frozen, and the clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lab import freezer

pytestmark = pytest.mark.integration

CHILD = """
import threading, time, sys
def spin():
    n = 0
    while True:
        n += 1
t = threading.Thread(target=spin, name="spinner", daemon=True)
t.start()
print(t.native_id, flush=True)
time.sleep(600)
"""


def _cpu_ticks(pid: int, tid: int) -> int:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.fixture
def child() -> Iterator[tuple[subprocess.Popen[str], int]]:
    if os.geteuid() != 0:
        pytest.skip("the freezer needs root (it writes cgroup files of another process)")
    if freezer.v1_freezer_mount(mount_own=False) is None:
        pytest.skip("no cgroup v1 freezer hierarchy is mounted on this machine")
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    tid = int(proc.stdout.readline())
    try:
        yield proc, tid
    finally:
        proc.kill()
        proc.wait()


def test_v1_freeze_stops_the_thread_and_thaw_cleans_up(
        child: tuple[subprocess.Popen[str], int], monkeypatch: pytest.MonkeyPatch) -> None:
    proc, tid = child
    monkeypatch.setattr(freezer, "v2_alone_cgroup", lambda tid, ms=None: None)  # force v1
    fr = freezer.Freeze(tid, "it-test")
    fr.freeze()
    try:
        assert fr.method == "cgroup1" and fr.path is not None and fr.path.is_dir()
        assert fr.pid == proc.pid
        before = _cpu_ticks(proc.pid, tid)
        time.sleep(1.0)
        assert _cpu_ticks(proc.pid, tid) - before <= 1  # frozen: no CPU time
    finally:
        fr.thaw()
    assert fr.path is None
    assert not list(Path("/sys/fs/cgroup").glob("*/vmbh-stall-it-test-*"))
    # running again: it gathers 0.1 s of CPU (a deadline, not a fixed sleep: on a loaded
    # 2-core machine a spinning thread may get only a small share of a core)
    before = _cpu_ticks(proc.pid, tid)
    deadline = time.monotonic() + 20
    while _cpu_ticks(proc.pid, tid) - before < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _cpu_ticks(proc.pid, tid) - before >= 10
    origin = freezer.thread_cgroups(tid)["freezer"]
    assert "vmbh-stall" not in origin


def test_kill_while_frozen_then_thaw_ends_the_process(
        child: tuple[subprocess.Popen[str], int], monkeypatch: pytest.MonkeyPatch) -> None:
    proc, tid = child
    monkeypatch.setattr(freezer, "v2_alone_cgroup", lambda tid, ms=None: None)
    fr = freezer.Freeze(tid, "it-kill")
    fr.freeze()
    fr.kill_process()
    fr.thaw()
    assert proc.wait(timeout=10) == -9
    assert not list(Path("/sys/fs/cgroup").glob("*/vmbh-stall-it-kill-*"))
