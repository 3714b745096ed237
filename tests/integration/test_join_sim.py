"""Several controllers on one run, for real: four ``harness run --join`` processes share
one 48-cell run of the simulated lab through a real PostgreSQL server; one of them is
killed with -9 in the middle of a chunk. The others finish the run: the final counts are
exactly the plan, no boot is recorded twice nor booted twice to completion, the killed
controller's unfinished chunk is redone by another, and no host ever had more chunks
under way than its slots (from the start and end times the database recorded)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from harness.store import Store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MATRIX = REPO / "matrices" / "eas-66611-sim.yaml"  # 48 cells, 2 hosts x 4 slots
BOOTS = 4
LEASE_S = 5.0
SLOTS = {"node-1": 4, "node-3": 4}


def controller(url: str, reports: Path) -> subprocess.Popen[str]:
    # time scale 0.01: a simulated boot of 30-60 s takes 0.3-0.6 s, so the run lasts long
    # enough to kill a controller in the middle of one of its chunks
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(MATRIX), "--join", "shared", "--db", url,
         "--boots", str(BOOTS), "--time-scale", "0.01", "--lease", str(LEASE_S), "-q",
         "--reports-dir", str(reports), "--progress-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql).fetchall())


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one moment (an end at the same time as a start comes first)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_four_controllers_one_killed_finish_the_plan_exactly(pg_url: str,
                                                             tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    procs = [controller(pg_url, reports) for _ in range(4)]
    victim = procs[1]
    try:
        # wait until the victim is in the middle of a chunk of its own, some way into the run
        deadline = time.monotonic() + 300
        while True:
            assert time.monotonic() < deadline, "the victim never took a chunk"
            assert victim.poll() is None, victim.communicate()[0][-2000:]
            taken = rows(pg_url, "SELECT COUNT(*) FROM work_log w JOIN controllers c ON "
                                 "c.id = w.controller WHERE w.ended IS NULL AND "
                                 f"c.pid = {victim.pid}") if _has_queue(pg_url) else [(0,)]
            done = rows(pg_url, "SELECT COUNT(*) FROM work WHERE state = 'done'") \
                if _has_queue(pg_url) else [(0,)]
            if int(taken[0][0]) > 0 and int(done[0][0]) >= 8:  # type: ignore[call-overload]
                break
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        outs = {}
        for p in procs:
            if p is not victim:
                outs[p.pid] = p.communicate(timeout=600)[0]
                assert p.returncode in (0, 1), outs[p.pid][-3000:]  # 1: cells failed (sim)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    with Store(pg_url, create=False) as store:
        info = store.get_run("shared")
        assert info.status == "finished" and info.lab == "eas-66611-sim"
        cells = store.cells("shared")
        assert len(cells) == 48
        counts = store.counts("shared")
        for cell in cells:  # exactly the plan: every index once, with a guest outcome
            assert store.recorded("shared", cell.id) == set(range(BOOTS)), cell.id
            assert counts[cell.id].n == BOOTS, cell.id
        total = sum(c.n for c in counts.values())
        assert total == 48 * BOOTS
        # one row per boot index (the store's key) and none beyond the plan
        n_rows = rows(pg_url, "SELECT COUNT(*), COUNT(DISTINCT (cell_id, idx)) FROM boots")
        assert n_rows[0] == (48 * BOOTS, 48 * BOOTS)

    ctl = {r[0]: r for r in rows(pg_url, "SELECT id, pid, expires, left_at FROM controllers")}
    assert len(ctl) == 4
    victim_ids = [k for k, r in ctl.items() if r[1] == victim.pid]
    assert len(victim_ids) == 1 and ctl[victim_ids[0]][3] is None  # it never left
    log = rows(pg_url, "SELECT seq, host, slot, controller, indices, started, ended "
                       "FROM work_log ORDER BY started")
    # the victim's unfinished chunk was taken over and finished by another controller
    cut = [r for r in log if r[3] == victim_ids[0] and r[6] is None]
    assert len(cut) >= 1
    for seq in {r[0] for r in cut}:
        assert any(r[0] == seq and r[3] != victim_ids[0] and r[6] is not None for r in log)
    # no boot booted to completion twice: the finished chunks' boots cover the plan once
    booted: dict[tuple[int, int], int] = {}
    for seq, *_, indices, _, ended in log:
        if ended is not None:
            for i in json.loads(str(indices)):
                booted[(int(seq), i)] = booted.get((int(seq), i), 0) + 1  # type: ignore[call-overload]
    assert max(booted.values()) == 1
    recorded_by_finished = len(booted)
    # no host over its slots at any moment: chunks under way per host, from the database's
    # times; the victim's last chunk counts as under way until its lease ran out
    for host, slots in SLOTS.items():
        spans = []
        for _, h, _, c, _, started, ended in log:
            if h == host:
                end = ended if ended is not None else ctl[str(c)][2]
                spans.append((float(started), float(end)))  # type: ignore[arg-type]
        assert max_overlap(spans) <= slots, host
    survivors = [p for p in procs if p is not victim]
    wrote = [p for p in survivors if "reports:" in outs[p.pid]]
    assert len(wrote) == 1 and (reports / "shared" / "report.json").is_file()
    print(f"\n4 controllers, 1 killed with -9: {total} guest boots recorded = plan "
          f"{48 * BOOTS}; {len(log)} chunks run ({len(cut)} cut by the kill and redone); "
          f"{recorded_by_finished} boots in finished chunks; per-controller chunks "
          f"{sorted(sum(1 for r in log if r[3] == k) for k in ctl)}")


def _has_queue(url: str) -> bool:
    got = rows(url, "SELECT to_regclass('work') IS NOT NULL AND "
                    "to_regclass('controllers') IS NOT NULL")
    return bool(got[0][0])
