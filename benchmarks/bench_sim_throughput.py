"""Harness throughput with zero-latency simulated boots, recording included: the whole
pipeline except libvirt and SSH (runner, scheduler, boot loop, sim backend, collection,
classifier, artifacts on disk, SQLite store with one transaction per boot).

Prints boots per second, the median and the best of ``--repeat`` runs (the machine is
shared: the median says what to expect, the best what the code can do):

* as ``harness run`` does it for a simulated lab: one process, one slot thread running
  at a time (time scale 0: no boot waits, more threads would only fight over the GIL),
  the store without an fsync per boot (``synchronous=NORMAL``: still safe against
  kill -9, a power cut may lose the last boots, which resume re-does);
* with the durable store of a real lab (``synchronous=FULL``: one fsync per boot), to
  show what that costs;
* in ``--workers`` processes (``harness run --workers``; the time includes starting them);

each with the database and artifacts on disk (``--dir``, the temp folder) and on a RAM
file system (``--ram-dir``, /dev/shm): creating files is the most variable cost (on this
machine's ext4, inode allocation after many deletions took more CPU than the harness), so
the RAM figures are the harness's own. Then a per-stage breakdown measured in one thread.
Target (issue 6): >= 500 boots/s.

    python benchmarks/bench_sim_throughput.py [--boots 60] [--repeat 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness.bootloop as bootloop_mod
from harness.backend.sim import SimLab
from harness.bootloop import BootLoop
from harness.matrix import load_matrix
from harness.runner import Runner, RunOptions
from harness.sim.clock import SimClock
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]
LAB = (ROOT / "matrices" / "labs" / "eas-66611-sim-lab.yaml").read_text()
MATRIX = (ROOT / "matrices" / "eas-66611-sim.yaml").read_text()


def zero_latency(folder: Path) -> Path:
    """The eas-66611 sim matrix with boots that take no (real) time and never hang:
    failures panic at once, so the throughput is the harness's own."""
    lab = LAB.replace("boot_seconds: {mean: 40, sd: 8}", "boot_seconds: {mean: 1, sd: 0}")
    lab = lab.replace("panic: 0.5 ", "panic: 1.0 ")
    (folder / "labs").mkdir(parents=True, exist_ok=True)
    (folder / "labs" / "eas-66611-sim-lab.yaml").write_text(lab)
    (folder / "m.yaml").write_text(MATRIX)
    return folder / "m.yaml"


def run_once(matrix: Path, folder: Path, boots: int,
             store_factory: Callable[[Path], Store] | None, max_per_host: int | None,
             chunk: int, workers: int = 1) -> tuple[int, float, float]:
    m = load_matrix(matrix)
    runner = Runner(m, RunOptions(boots=boots, time_scale=0, write_reports=False,
                                  reports_dir=folder, max_per_host=max_per_host,
                                  chunk_size=chunk, workers=workers),
                    store_factory=store_factory)
    t = time.perf_counter()
    s = runner.run()
    return s.booted, time.perf_counter() - t, s.utilization


def breakdown(matrix: Path, folder: Path, n: int) -> dict[str, float]:
    """Milliseconds per boot in each stage, one thread, store as shipped."""
    m = load_matrix(matrix)
    clock = SimClock(0)
    sim = SimLab(m.lab, clock)
    spent: dict[str, float] = {"store.record": 0.0, "classify": 0.0, "artifacts": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    from harness.classify import classify

    original = bootloop_mod.write_artifacts
    bootloop_mod.write_artifacts = timed("artifacts", original)  # type: ignore[assignment]
    try:
        with Store(folder / "breakdown.db", durable=False) as store:
            store.create_run("b", m.name, m.cells)
            store.record = timed("store.record", store.record)  # type: ignore[method-assign]
            loop = BootLoop(sim.backend_for, sim.connector_for, store, m.lab, folder / "b",
                            "b", classify=timed("classify", classify), clock=clock.now,
                            sleep=clock.sleep)
            done = 0
            t = time.perf_counter()
            while done < n:
                for cell in m.cells:
                    for _ in loop.run_chunk(cell, range(done // len(m.cells),
                                                        done // len(m.cells) + 1)):
                        done += 1
            total = time.perf_counter() - t
    finally:
        bootloop_mod.write_artifacts = original  # type: ignore[assignment]
    out = {k: 1000 * v / done for k, v in spent.items()}
    out["sim + boot loop + collection"] = 1000 * total / done - sum(out.values())
    out["total"] = 1000 * total / done
    return out


def fs_type(path: Path) -> str:
    """The file system under ``path`` (from /proc/mounts: the longest matching mount)."""
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mnt, typ, *_ = line.split()
            if str(path.resolve()).startswith(mnt) and len(mnt) > len(best):
                best, kind = mnt, typ
    except OSError:
        pass
    return kind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--boots", type=int, default=60, help="boots per cell (48 cells)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    ap.add_argument("--max-per-host", type=int, default=None,
                    help="slots per host (default: the lab's, 4 each on 2 hosts)")
    ap.add_argument("--chunk", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2,
                    help="processes for the multi-process figure (harness run --workers)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the database and artifacts go (default: the temp folder)")
    ap.add_argument("--ram-dir", type=Path, default=Path("/dev/shm"),
                    help="a RAM file system for the harness-only figures ('' to skip)")
    a = ap.parse_args()
    load = os.getloadavg()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"matrix: eas-66611-sim (48 cells) x {a.boots} boots, time scale 0, zero-latency "
          f"boots, slots per host {a.max_per_host or 'from the lab (4)'}, chunk {a.chunk}; "
          f"median and best of {a.repeat} runs")
    durable: Callable[[Path], Store] = Store  # synchronous=FULL, as for a real lab
    places = [a.dir] + ([a.ram_dir] if str(a.ram_dir) and a.ram_dir.is_dir() else [])
    medians: dict[tuple[str, int], float] = {}
    for place in places:
        print(f"database and artifacts in {place} ({fs_type(place)}):")
        with tempfile.TemporaryDirectory(dir=place) as d:
            folder = Path(d)
            matrix = zero_latency(folder)
            runs: list[tuple[str, Callable[[Path], Store] | None, int]] = [
                ("harness run (1 process, sim store)", None, 1),
                ("1 process, durable store (fsync/boot)", durable, 1),
                (f"harness run --workers {a.workers}", None, a.workers)]
            for k, (label, factory, workers) in enumerate(runs):
                rates, utils, n = [], [], 0
                for r in range(a.repeat):
                    sub = folder / f"run{k}-{r}"
                    sub.mkdir()
                    n, secs, util = run_once(matrix, sub, a.boots, factory, a.max_per_host,
                                             a.chunk, workers)
                    rates.append(n / secs)
                    utils.append(util)
                if factory is None:
                    medians[(str(place), workers)] = statistics.median(rates)
                print(f"  {label:40s} {n} boots: median {statistics.median(rates):5.0f} "
                      f"boots/s, best {max(rates):5.0f} (slots busy {100 * min(utils):.0f}%)")
            if place == places[-1]:
                print("per-stage cost, one thread, sim store (ms per boot):")
                for key, v in breakdown(matrix, folder, min(480, 48 * a.boots)).items():
                    print(f"  {key:32s} {v:6.2f}")
    print("target >= 500 boots/s (median):")
    for (place, workers), rate in medians.items():
        how = "harness run" + (f" --workers {workers}" if workers > 1 else "")
        print(f"  {how:26s} in {place:20s} {rate:5.0f}  "
              f"{'met' if rate >= 500 else 'missed'}")


if __name__ == "__main__":
    main()
