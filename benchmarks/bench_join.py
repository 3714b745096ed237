"""Boots recorded per second by 1, 2 and 4 controllers sharing one run through PostgreSQL
(``harness run --join``), beside one controller on SQLite, in one run of this script.

Zero-latency simulated boots (``--time-scale 0``) of the eas-66611 simulated lab, widened
to many hosts so that slots are never what limits: the figure is what the harness and its
database can record, the whole pipeline included (plan, work queue, boot loop, classify,
artifacts, one transaction per boot). Each configuration records ``--boots`` boots per
cell of a fresh run on a fresh database of one PostgreSQL 15 server this script starts
(``harness/testing/pgserver.py``, default durability: fsync on; simulated labs commit with
``synchronous_commit = off``, as SQLite's ``synchronous = NORMAL``). Boots/s is counted
from the boots' own record times (first to last), so the controllers' start-up (Python,
imports) is left out; wall time with start-up is printed beside it.

    python benchmarks/bench_join.py [--hosts 4] [--boots 20] [--controllers 1,2,4]

Target (issue 16): >= 530 boots/s with 4 controllers (ten times what a 200-host x 8-slot
lab at 30 s per boot needs).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def make_lab(folder: Path, hosts: int) -> Path:
    """The eas-66611 simulated lab with ``hosts`` hosts (node-1 and node-3 copies)."""
    lab = yaml.safe_load((REPO / "matrices/labs/eas-66611-sim-lab.yaml").read_text())
    base = lab["hosts"]
    lab["hosts"] = {f"{name}-{i}": dict(spec) for i in range(hosts // 2)
                    for name, spec in base.items()}
    lab["name"] = "bench-join"
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab))
    m = yaml.safe_load((REPO / "matrices/eas-66611-sim.yaml").read_text())
    m["name"] = "bench-join"
    m["lab"] = "lab.yaml"
    m["axes"]["host"] = sorted(lab["hosts"])
    (folder / "matrix.yaml").write_text(yaml.safe_dump(m))
    return folder / "matrix.yaml"


def controllers(matrix: Path, db: str, run_id: str, n: int, boots: int, reports: Path,
                join: bool) -> float:
    what = ["--join", run_id] if join else ["--run-id", run_id]
    cmd = [sys.executable, "-m", "harness", "run", str(matrix), *what, "--db", db,
           "--boots", str(boots), "--time-scale", "0", "--no-report", "-q",
           "--progress-every", "0", "--reports-dir", str(reports)]
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode not in (0, 1):  # 1: cells failed their expectation (the sim)
            raise SystemExit(f"controller failed ({p.returncode}): {err[-2000:]}")
    return time.monotonic() - t0


def rate(db: str, run_id: str) -> tuple[int, float]:
    from harness.store import Store

    with Store(db, create=False) as store:
        row = store._conn().execute("SELECT COUNT(*), MIN(recorded), MAX(recorded) FROM boots "
                                    "WHERE run_id = ?", (run_id,)).fetchone()
    n, first, last = int(row[0]), float(row[1]), float(row[2])
    return n, (n - 1) / (last - first) if last > first else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--boots", type=int, default=20, help="boots per cell")
    ap.add_argument("--controllers", default="1,2,4")
    a = ap.parse_args()
    from harness.testing.pgserver import PgServer

    counts = [int(x) for x in a.controllers.split(",")]
    load = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{load:.1f} at start; {a.hosts} simulated hosts, 24 cells each, "
          f"--boots {a.boots}, --time-scale 0")
    rows = []
    with tempfile.TemporaryDirectory() as d, PgServer(fast=False) as pg:
        folder = Path(d)
        matrix = make_lab(folder, a.hosts)
        sqlite_db = str(folder / "bench.db")
        wall = controllers(matrix, sqlite_db, "sqlite-1", 1, a.boots, folder / "r", False)
        n, r = rate(sqlite_db, "sqlite-1")
        rows.append(("SQLite", 1, n, r, wall))
        for k in counts:
            url = pg.create_database(f"bench{k}")
            wall = controllers(matrix, url, f"pg-{k}", k, a.boots, folder / "r", True)
            n, r = rate(url, f"pg-{k}")
            rows.append(("PostgreSQL --join", k, n, r, wall))
    print(f"{'database':<18} {'controllers':>11} {'boots':>7} {'boots/s':>8} "
          f"{'wall s (with start-up)':>23}")
    for name, k, n, r, wall in rows:
        print(f"{name:<18} {k:>11} {n:>7} {r:>8.0f} {wall:>23.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
