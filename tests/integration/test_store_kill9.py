"""Crash safety of the results store with real processes and SIGKILL.

A writer process records boots in a loop into a real database and, after each ``record``
returns, appends the boot to an acknowledgement file. The test SIGKILLs it at random
moments (several times), starts it again (it resumes from ``Store.recorded``), and checks
after every kill: no acknowledged boot lost, none counted twice, no boot half-written, and
``PRAGMA integrity_check`` is ``ok``. Several processes writing one run are checked too.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.store import Store

pytestmark = pytest.mark.integration

CELLS, BOOTS, FINDINGS = 4, 300, 120
# the writer paces itself so that the run lasts at least CELLS * BOOTS * PACE seconds on
# any machine (6 s): four kills always land before it can finish, however fast the disk
PACE = 0.005

# outcome and findings are a pure function of (cell, index): the test can check every row
WRITER = textwrap.dedent(f"""
    import sys, time
    from harness.model import BootResult, Cell, Finding, Outcome, Signature
    from harness.store import Store

    CELLS, BOOTS, FINDINGS = {CELLS}, {BOOTS}, {FINDINGS}
    db, ack, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    cells = [Cell(id=f"h{{c}}/g/vcpu8", matrix="m", host=f"h{{c}}", guest="g", vcpus=8,
                  boots=BOOTS) for c in range(CELLS)]

    def outcome(c, i):
        return ["ok", "ok", "vcpu_offline", "ok", "boot_failure", "infra_error"][(c * 7 + i) % 6]

    def result(c, i):
        o = Outcome(outcome(c, i))
        return BootResult("run", cells[c].id, i, o, reason=f"boot {{i}}",
                          signatures=(Signature("k", f"sig {{(c + i) % 3}}"),),
                          findings=tuple(Finding("x", n, "CPU%d: failed to come online" % n)
                                         for n in range(FINDINGS)))

    with Store(db) as store:
        if mode == "hang":  # die inside an open write transaction
            with store._write() as conn:
                store._record(conn, result(0, 0))
                print("inside", flush=True)
                time.sleep(600)
        # join_run is atomic: several writers starting at once all end up in one run
        # (get_run, then create_run, would race: two of them could both try to create it)
        store.join_run("run", "m", cells)
        with open(ack, "a") as acks:
            for i in range(BOOTS):  # interleaved like the scheduler: boot i of every cell
                for c in range(CELLS):
                    if i in store.recorded("run", cells[c].id, include_infra=True):
                        continue
                    store.record(result(c, i))
                    acks.write(f"{{c}} {{i}}\\n")
                    acks.flush()
                    time.sleep({PACE})
        store.mark_finished("run")
""")


def outcome(c: int, i: int) -> str:
    return ["ok", "ok", "vcpu_offline", "ok", "boot_failure", "infra_error"][(c * 7 + i) % 6]


def start(db: Path, ack: Path, mode: str = "loop") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(ack), mode],
                            stdout=subprocess.PIPE, text=True)


def acknowledged(ack: Path) -> set[tuple[int, int]]:
    out = set()
    if ack.exists():
        for line in ack.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:  # a line cut by the kill is ignored
                out.add((int(parts[0]), int(parts[1])))
    return out


def check_db(db: Path, ack: Path, why: str) -> int:
    """Every check after a kill; returns the number of boots recorded."""
    if not db.exists():  # killed before the database was created
        assert not acknowledged(ack), why
        return 0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", why
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "boots" not in tables:  # killed while creating the schema: none of it is there
            assert tables <= {"schema_version"} and not acknowledged(ack), why
            return 0
        rows = conn.execute("SELECT cell_id, idx, outcome, "
                            "(SELECT COUNT(*) FROM findings f WHERE f.boot_id = b.id), "
                            "(SELECT COUNT(*) FROM boot_signatures s WHERE s.boot_id = b.id) "
                            "FROM boots b WHERE run_id = 'run'").fetchall()
    finally:
        conn.close()
    seen = [(int(cell.split("/")[0][1:]), idx) for cell, idx, *_ in rows]
    assert len(seen) == len(set(seen)), f"{why}: a boot counted twice"
    for (c, i), (_, _, out, nfind, nsig) in zip(seen, rows, strict=True):
        assert out == outcome(c, i), f"{why}: boot {c}/{i} has the wrong outcome"
        assert (nfind, nsig) == (FINDINGS, 1), f"{why}: boot {c}/{i} half-written"
    lost = acknowledged(ack) - set(seen)
    assert not lost, f"{why}: acknowledged boots lost: {sorted(lost)[:5]}"
    return len(seen)


def test_random_sigkills_lose_nothing_and_count_nothing_twice(tmp_path: Path) -> None:
    db, ack = tmp_path / "lab.db", tmp_path / "acks"
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    total = CELLS * BOOTS
    kills = 0
    for attempt in range(9):
        proc = start(db, ack)
        if attempt % 3 == 0:  # any moment from the start: importing, opening, migrating
            time.sleep(rng.uniform(0.0, 2.0))
        else:  # while recording: wait for some progress, then a little more
            before = len(acknowledged(ack))
            deadline = time.monotonic() + 120
            while len(acknowledged(ack)) <= before and proc.poll() is None:
                assert time.monotonic() < deadline, "the writer made no progress"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:
            break  # finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        check_db(db, ack, f"after kill {attempt + 1} (seed {seed})")
    assert kills >= 4, f"only {kills} kills landed mid-run (seed {seed}): make the run longer"
    proc = start(db, ack)
    assert proc.wait(timeout=600) == 0
    assert check_db(db, ack, f"after the final resume (seed {seed})") == total
    with Store(db) as store:
        assert store.get_run("run").status == "finished"
        counts = store.counts("run")
        for c in range(CELLS):
            want = [outcome(c, i) for i in range(BOOTS)]
            got = counts[f"h{c}/g/vcpu8"]
            assert (got.ok, got.vcpu_offline, got.boot_failure, got.infra_error) == (
                want.count("ok"), want.count("vcpu_offline"), want.count("boot_failure"),
                want.count("infra_error"))
        assert len(store.infra_events("run")) == want.count("infra_error") * CELLS


def test_a_boot_cut_inside_its_transaction_is_not_recorded(tmp_path: Path) -> None:
    db, ack = tmp_path / "lab.db", tmp_path / "acks"
    with Store(db) as store:
        store.create_run("run", "m", [])
    proc = start(db, tmp_path / "acks-first", "loop")
    assert proc.wait(timeout=600) == 0  # a full, clean run first: every boot recorded
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("DELETE FROM boots WHERE cell_id = 'h0/g/vcpu8' AND idx = 0")
    conn.commit()
    conn.close()
    proc = start(db, ack, "hang")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert check_db(db, ack, "after a kill inside a transaction") \
        == CELLS * BOOTS - 1
    with Store(db) as store:  # the lock died with the process: writing works at once
        assert 0 not in store.recorded("run", "h0/g/vcpu8", include_infra=True)
    proc = start(db, ack)
    assert proc.wait(timeout=600) == 0
    assert check_db(db, ack, "after resuming") == CELLS * BOOTS


def test_processes_writing_the_same_run(tmp_path: Path) -> None:
    """Four writers at once (like pytest-xdist workers), each boot written by two of them."""
    db = tmp_path / "lab.db"
    procs = [start(db, tmp_path / f"acks{n}") for n in range(4)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0, 0]
    acks = tmp_path / "all"
    acks.write_text("".join((tmp_path / f"acks{n}").read_text() for n in range(4)))
    assert check_db(db, acks, "four writers") == CELLS * BOOTS
