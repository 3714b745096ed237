"""Environment faults end a run with exit status 3, leave it resumable and say how: a full
disk under the artifacts or under the database, a read-only reports folder. Real file
systems: a small tmpfs in a private mount namespace (root; skipped otherwise, saying why).
And one controller per run: a second ``--resume`` of a run a live process holds is refused;
a killed holder (kill -9) does not block it."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
HARNESS = str(Path(sys.executable).with_name("harness"))
LAB = """\
name: env-lab
hosts:
  h1: {uri: "sim:///", slots: 2}
guests:
  g1: {kernel_release: 5.10.0-1.aarch64}
sim:
  seed: 3
  rules:
    - match: {guest: g1}
      vcpu_offline: 0.1
"""
MATRIX = """\
name: env
lab: lab.yaml
axes: {host: [h1], guest: [g1], vcpus: [2, 4]}
boots: 20
expect: {vcpu_offline: 0.6, boot_failure: 0.6}
"""
TOTAL = 40


def _namespaces_work() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True,
                       text=True)
    return None if p.returncode == 0 else f"cannot mount a tmpfs in a namespace: {p.stderr}"


WHY_NOT = _namespaces_work()
needs_mounts = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    (tmp_path / "lab.yaml").write_text(LAB)
    (tmp_path / "m.yaml").write_text(MATRIX)
    (tmp_path / "small").mkdir()
    return tmp_path


def _in_namespace(tmp: Path, script: str, size: str = "96k"
                  ) -> subprocess.CompletedProcess[str]:
    """``script`` (bash) in a private mount namespace with ``$SMALL`` a small tmpfs (96 KiB
    fill up with the artifacts of a few boots)."""
    small = tmp / "small"
    body = (f"set -u; SMALL={small}; H={HARNESS}; PY={sys.executable}; cd {tmp}; "
            f"mount -t tmpfs -o size={size} tmpfs $SMALL; {script}")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", body],
                          capture_output=True, text=True, timeout=600)


def _boots(db: Path, run_id: str) -> tuple[int, int, str]:
    """(boot rows, distinct boot indices, run status) of a run."""
    conn = sqlite3.connect(db)
    try:
        n, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT cell_id || '/' || idx) FROM boots "
            "WHERE run_id = ? AND outcome != 'infra_error'", (run_id,)).fetchone()
        status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        return int(n), int(distinct), str(status)
    finally:
        conn.close()


@needs_mounts
def test_a_full_disk_under_the_artifacts_exits_3_and_the_run_resumes(files: Path) -> None:
    p = _in_namespace(files, (
        '$H run m.yaml --run-id full --reports-dir "$SMALL" --db db/env.db -q '
        '> out1 2> err1; echo "first=$?"; '
        'mount -o remount,size=64m "$SMALL"; '
        '$H run m.yaml --resume full --reports-dir "$SMALL" --db db/env.db -q '
        '> out2 2> err2; echo "second=$?"'))
    err1 = (files / "err1").read_text()
    assert "first=3" in p.stdout, p.stdout + p.stderr + err1
    assert "Traceback" not in err1, err1
    assert "No space left on device" in err1, err1
    assert "continue with: harness run m.yaml --resume full" in err1, err1
    assert "second=0" in p.stdout, (files / "err2").read_text() + (files / "out2").read_text()
    n, distinct, status = _boots(files / "db" / "env.db", "full")
    assert (n, distinct, status) == (TOTAL, TOTAL, "finished")  # none lost, none twice


@needs_mounts
def test_a_full_disk_under_the_database_exits_3_and_the_run_resumes(files: Path) -> None:
    p = _in_namespace(files, (
        # the schema first, then a filler leaves room for a few boots only
        'mkdir -p "$SMALL/db"; '
        '$PY -c "import sys; from harness.store import Store; Store(sys.argv[1]).close()" '
        '"$SMALL/db/env.db"; '
        'free=$(df --output=avail -k "$SMALL" | tail -1); '
        'dd if=/dev/zero of="$SMALL/filler" bs=1k count=$((free - 80)) status=none; '
        '$H run m.yaml --run-id dbfull --reports-dir r --db "$SMALL/db/env.db" -q --no-report '
        '> out1 2> err1; echo "first=$?"; '
        'mount -o remount,size=64m "$SMALL"; '
        '$H run m.yaml --resume dbfull --reports-dir r --db "$SMALL/db/env.db" -q '
        '> out2 2> err2; echo "second=$?"; '
        'cp "$SMALL/db/env.db" keep.db'), size="1m")
    err1 = (files / "err1").read_text()
    assert "first=3" in p.stdout, p.stdout + p.stderr + err1
    assert "Traceback" not in err1 and "database or disk is full" in err1, err1
    assert "continue with: harness run m.yaml --resume dbfull" in err1, err1
    assert "second=0" in p.stdout, (files / "err2").read_text()
    n, distinct, status = _boots(files / "keep.db", "dbfull")
    assert (n, distinct, status) == (TOTAL, TOTAL, "finished")


@needs_mounts
def test_a_read_only_reports_folder_exits_3_before_anything_is_written(files: Path) -> None:
    p = _in_namespace(files, (
        'mount -o remount,ro "$SMALL"; '
        '$H run m.yaml --run-id ro --reports-dir "$SMALL/reports" --db db/env.db -q '
        '> out1 2> err1; echo "first=$?"'))
    err1 = (files / "err1").read_text()
    assert "first=3" in p.stdout, p.stdout + p.stderr + err1
    assert "reports folder" in err1 and "not writable" in err1 and "Traceback" not in err1
    assert not (files / "db").exists()  # no database, no run row


def _hold_in_child(db: Path, run_id: str) -> subprocess.Popen[str]:
    code = ("import sys, time\nfrom harness.store.lock import hold\nfrom pathlib import Path\n"
            f"with hold(Path({str(db)!r}), {run_id!r}):\n"
            "    print('held', flush=True)\n    time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_one_controller_per_run(files: Path) -> None:
    run = [HARNESS, "run", "m.yaml", "--reports-dir", "r", "-q"]
    first = subprocess.run([*run, "--run-id", "one"], cwd=files, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    child = _hold_in_child(files / "r" / "env-lab.db", "one")
    try:
        second = subprocess.run([*run, "--resume", "one"], cwd=files, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        assert f"run 'one' is being run by another process (pid {child.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        child.send_signal(signal.SIGKILL)  # dies holding it: the kernel drops the lock
        child.wait()
    time.sleep(0.1)
    third = subprocess.run([*run, "--resume", "one"], cwd=files, capture_output=True,
                           text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    n, distinct, status = _boots(files / "r" / "env-lab.db", "one")
    assert (n, distinct, status) == (TOTAL, TOTAL, "finished")
