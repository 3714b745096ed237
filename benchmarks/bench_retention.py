"""Disk kept per night before and after `harness prune`, on simulated nights.

    python benchmarks/bench_retention.py [--matrix matrices/eas-66611-sim.yaml]
        [--nights 4] [--keep-nights 1] [--keep-failing 2] [--boots N]

Runs the matrix NIGHTS times on the simulated lab (time scale 0) into a temporary
reports folder, then prunes, and prints each night's run folder (du: blocks) before and
after, the files left and the database size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.retention import disk_usage
from harness.store import Store


def harness(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "harness", *args], check=False,
                   stdout=subprocess.DEVNULL)


def files(path: Path) -> int:
    return sum(len(f) for _d, _s, f in os.walk(path))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrix", default="matrices/eas-66611-sim.yaml")
    ap.add_argument("--nights", type=int, default=4)
    ap.add_argument("--keep-nights", type=int, default=1)
    ap.add_argument("--keep-failing", type=int, default=2)
    ap.add_argument("--boots", type=int, default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        reports = Path(tmp) / "reports"
        for n in range(1, a.nights + 1):
            extra = ["--boots", str(a.boots)] if a.boots else []
            harness("run", a.matrix, "--run-id", f"night-{n}", "--reports-dir", str(reports),
                    "-q", "--order-seed", str(n), *extra)
        db = next(reports.glob("*.db"))
        before = {n: (disk_usage(reports / f"night-{n}"), files(reports / f"night-{n}"))
                  for n in range(1, a.nights + 1)}
        db_before = db.stat().st_size
        harness("prune", "--db", str(db), "--keep-nights", str(a.keep_nights),
                "--keep-failing", str(a.keep_failing))
        with Store(db) as store:
            boots = {n: store.counts(f"night-{n}") for n in range(1, a.nights + 1)}
        print(f"{a.matrix}: {a.nights} nights, harness prune --keep-nights {a.keep_nights} "
              f"--keep-failing {a.keep_failing}")
        print(f"{'night':8} {'boots':>6} {'failing':>8} {'before':>10} {'files':>7} "
              f"{'after':>10} {'files':>7}")
        for n in range(1, a.nights + 1):
            c = boots[n].values()
            total = sum(x.boots for x in c)
            failing = sum(x.vcpu_offline + x.boot_failure + x.infra_error for x in c)
            after = disk_usage(reports / f"night-{n}")
            print(f"night-{n:<2} {total:>6} {failing:>8} {before[n][0] / 1e6:>8.1f}MB "
                  f"{before[n][1]:>7} {after / 1e6:>8.1f}MB {files(reports / f'night-{n}'):>7}")
        print(f"database: {db_before / 1e6:.1f} MB before, {db.stat().st_size / 1e6:.1f} MB "
              "after (every boot kept)")


if __name__ == "__main__":
    main()
