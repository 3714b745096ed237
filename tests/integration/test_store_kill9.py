"""Crash safety of the results store with real processes and SIGKILL.

A writer process records boots in a loop into a real database and, after each ``record``
returns, appends the boot to an acknowledgement file. The test SIGKILLs it at random
moments (several times), starts it again (it resumes from ``Store.recorded``), and checks
after every kill: no acknowledged boot lost, none counted twice, no boot half-written, and
``PRAGMA integrity_check`` is ``ok``. Several processes writing one run are checked too.
Every test runs on an SQLite file and on a real PostgreSQL server (``db_target``).
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
from typing import Any

import pytest

from harness.store import Store, is_url

pytestmark = pytest.mark.integration

CELLS, BOOTS, FINDINGS = 4, 300, 120
# the writer paces itself so that the run lasts at least CELLS * BOOTS * PACE seconds on
# any machine (6 s): four kills always land before it can finish, however fast the disk.
# A PostgreSQL commit costs a few round trips more: a third of the boots there (the
# writer still lasts over a second, and longer than SQLite's in practice)
PACE = 0.005
PG_BOOTS = 60


def boots_for(db: Path | str) -> int:
    return PG_BOOTS if is_url(db) else BOOTS

# outcome and findings are a pure function of (cell, index): the test can check every row
WRITER = textwrap.dedent(f"""
    import sys, time
    from harness.model import BootResult, Cell, Finding, Outcome, Signature
    from harness.store import Store

    CELLS, FINDINGS = {CELLS}, {FINDINGS}
    db, ack, mode, BOOTS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
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


def query(db: Path | str, sql: str) -> list[Any] | None:
    """Rows of ``sql``, or None when the database has no boots table yet (checked first:
    for SQLite, that the file is sound)."""
    if is_url(db):
        import psycopg

        with psycopg.connect(str(db), autocommit=True) as pg:
            have = pg.execute("SELECT to_regclass('boots') IS NOT NULL").fetchone()
            return pg.execute(sql).fetchall() if have and have[0] else None
    if not Path(db).exists():
        return None
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "boots" not in tables:  # killed while creating the schema: none of it is there
            assert tables <= {"schema_version"}
            return None
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def start(db: Path | str, ack: Path, mode: str = "loop") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(ack), mode,
                             str(boots_for(db))],
                            stdout=subprocess.PIPE, text=True)


def acknowledged(ack: Path) -> set[tuple[int, int]]:
    out = set()
    if ack.exists():
        for line in ack.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:  # a line cut by the kill is ignored
                out.add((int(parts[0]), int(parts[1])))
    return out


def check_db(db: Path | str, ack: Path, why: str) -> int:
    """Every check after a kill; returns the number of boots recorded."""
    rows = query(db, "SELECT cell_id, idx, outcome, "
                 "(SELECT COUNT(*) FROM findings f WHERE f.boot_id = b.id), "
                 "(SELECT COUNT(*) FROM boot_signatures s WHERE s.boot_id = b.id) "
                 "FROM boots b WHERE run_id = 'run'")
    if rows is None:  # killed before the database (or its schema) was created
        assert not acknowledged(ack), why
        return 0
    seen = [(int(cell.split("/")[0][1:]), idx) for cell, idx, *_ in rows]
    assert len(seen) == len(set(seen)), f"{why}: a boot counted twice"
    for (c, i), (_, _, out, nfind, nsig) in zip(seen, rows, strict=True):
        assert out == outcome(c, i), f"{why}: boot {c}/{i} has the wrong outcome"
        assert (nfind, nsig) == (FINDINGS, 1), f"{why}: boot {c}/{i} half-written"
    lost = acknowledged(ack) - set(seen)
    assert not lost, f"{why}: acknowledged boots lost: {sorted(lost)[:5]}"
    return len(seen)


def test_random_sigkills_lose_nothing_and_count_nothing_twice(db_target: Path | str,
                                                               tmp_path: Path) -> None:
    db, ack = db_target, tmp_path / "acks"
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    boots = boots_for(db)
    total = CELLS * boots
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
            want = [outcome(c, i) for i in range(boots)]
            got = counts[f"h{c}/g/vcpu8"]
            assert (got.ok, got.vcpu_offline, got.boot_failure, got.infra_error) == (
                want.count("ok"), want.count("vcpu_offline"), want.count("boot_failure"),
                want.count("infra_error"))
        assert len(store.infra_events("run")) == sum(
            outcome(c, i) == "infra_error" for c in range(CELLS) for i in range(boots))


def test_a_boot_cut_inside_its_transaction_is_not_recorded(db_target: Path | str,
                                                           tmp_path: Path) -> None:
    db, ack = db_target, tmp_path / "acks"
    with Store(db) as store:
        store.create_run("run", "m", [])
    proc = start(db, tmp_path / "acks-first", "loop")
    assert proc.wait(timeout=600) == 0  # a full, clean run first: every boot recorded
    with Store(db) as store, store._write() as conn:
        conn.execute("DELETE FROM boots WHERE cell_id = 'h0/g/vcpu8' AND idx = 0")
    proc = start(db, ack, "hang")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert check_db(db, ack, "after a kill inside a transaction") \
        == CELLS * boots_for(db) - 1
    with Store(db) as store:  # the lock died with the process: writing works at once
        assert 0 not in store.recorded("run", "h0/g/vcpu8", include_infra=True)
    proc = start(db, ack)
    assert proc.wait(timeout=600) == 0
    assert check_db(db, ack, "after resuming") == CELLS * boots_for(db)


def test_processes_writing_the_same_run(db_target: Path | str, tmp_path: Path) -> None:
    """Four writers at once (like pytest-xdist workers), each boot written by two of them."""
    db = db_target
    procs = [start(db, tmp_path / f"acks{n}") for n in range(4)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0, 0]
    acks = tmp_path / "all"
    acks.write_text("".join((tmp_path / f"acks{n}").read_text() for n in range(4)))
    assert check_db(db, acks, "four writers") == CELLS * boots_for(db)
