"""How fast the results store records and loads, and how fast the statistics judge a
large matrix. Prints its figures and how it was run.

    python benchmarks/bench_store.py [--cells 1000] [--boots 20] [--records 500]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from harness import stats
from harness.model import BootResult, Cell, Expectation, Finding, Outcome, Signature
from harness.store import Store


def result(run: str, cell: Cell, i: int) -> BootResult:
    bad = (hash((cell.id, i)) % 10) == 0
    return BootResult(
        run, cell.id, i, Outcome.VCPU_OFFLINE if bad else Outcome.OK, host=cell.host,
        guest=cell.guest, vcpus=cell.vcpus, offline_cpus=(3,) if bad else (),
        signatures=(Signature("cpu_failed_online", "CPU# failed to come online"),) if bad
        else (),
        findings=(Finding("cpu_failed_online", 800, "CPU3: failed to come online", 3),)
        if bad else (),
        timings=(("start", 1.0), ("ssh", 30.0)), artifacts=(("dmesg", "x/dmesg.txt"),))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--boots", type=int, default=20)
    ap.add_argument("--records", type=int, default=500, help="records timed one by one")
    a = ap.parse_args()
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{platform.machine()}; cells={a.cells} boots={a.boots} records={a.records}")
    cells = [Cell(id=f"node-{c % 4}/g{c // 4 % 8}/vcpu{2 + c % 16}/i={c}", matrix="m",
                  host=f"node-{c % 4}", guest=f"g{c // 4 % 8}", vcpus=2 + c % 16,
                  boots=a.boots, host_attrs=(("numa_patch", c % 2 == 0),),
                  expect=Expectation(vcpu_offline=0.2 if c % 2 else 0.0,
                                     boot_failure=0.01))
             for c in range(a.cells)]
    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "bench.db") as store:
        store.create_run("one", "m", cells)
        t = time.perf_counter()
        for i in range(a.records):
            store.record(result("one", cells[i % len(cells)], i // len(cells)))
        dt = time.perf_counter() - t
        print(f"record, one transaction (fsync) per boot, 1 thread: "
              f"{a.records / dt:,.0f} boots/s ({1000 * dt / a.records:.2f} ms each)")

        per = a.records // 4

        def work(k: int) -> None:
            for i in range(per):
                store.record(result("one", cells[(k * per + i) % len(cells)], 100 + i))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        dt = time.perf_counter() - t
        print(f"record, 4 threads: {4 * per / dt:,.0f} boots/s")

        store.create_run("big", "m", cells)
        t = time.perf_counter()
        store.record_many(result("big", c, i) for c in cells for i in range(a.boots))
        dt = time.perf_counter() - t
        n = len(cells) * a.boots
        print(f"record_many, {n:,} boots in one transaction: {dt:.2f} s")
        t = time.perf_counter()
        data = store.load_run("big")
        print(f"load_run, {len(data.cells):,} cells / {n:,} boots: "
              f"{time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        store.counts("big")
        print(f"counts (progress query): {1000 * (time.perf_counter() - t):.1f} ms")
        t = time.perf_counter()
        verdicts = [c.judgement.status for c in data.cells]
        print(f"judge {len(verdicts):,} cells: {time.perf_counter() - t:.2f} s "
              f"({verdicts.count('pass')} pass, {verdicts.count('fail')} fail, "
              f"{verdicts.count('undecided')} undecided)")
        t = time.perf_counter()
        fam = stats.compare_along(((c.cell, c.counts) for c in data.cells), "numa_patch",
                                  False, True, by=("guest",))
        print(f"compare_along numa_patch per guest: {len(fam)} comparisons "
              f"(Holm family) in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
