"""Slot utilization on a big simulated lab: 20 hosts x 8 slots, boot durations sampled
(mean 40 s, sd 8 s) and played at a fast time scale, through the whole pipeline
(runner, scheduler, boot loop, classifier, SQLite store).

Two figures, both from the start of the run until the first slot runs out of work (the
tail, when fewer boots are left than slots, is excluded):
  - slots busy: share of slot time with a boot handed out (the scheduler's gaps);
  - guests booting: share of slot time the simulated guests spent booting (the rest is the
    harness's own work per boot: classify, record, artifacts, waiting for the CPU).
Target (issue 6): >= 95% busy until the tail.

    python benchmarks/bench_slot_utilization.py [--hosts 20] [--slots 8] [--boots 6]
                                                [--time-scale 0.05]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import harness.runner as runner_mod
from harness.matrix import load_matrix
from harness.runner import Runner, RunOptions
from harness.sim.clock import SimClock

GUESTS = ("es10", "es11", "es14", "kylin")


class RecordingClock(SimClock):
    """Remembers when each simulated wait (a guest booting) ran, in real time."""

    waits: ClassVar[list[tuple[float, float]]] = []

    def sleep(self, seconds: float) -> None:
        t = time.monotonic()
        super().sleep(seconds)
        if seconds > 0:
            RecordingClock.waits.append((t, time.monotonic()))


def booting_share(waits: list[tuple[float, float]], start: float, tail: float,
                  slots: int) -> float:
    """Share of slot time in [start, tail] spent in simulated waits."""
    busy = sum(max(0.0, min(b, tail) - max(a, start)) for a, b in waits)
    return busy / (slots * (tail - start)) if tail > start else 0.0


def lab_yaml(hosts: int, slots: int) -> str:
    lines = ["name: big-sim", "hosts:"]
    for h in range(hosts):
        lines.append(f"  node-{h}: {{uri: 'sim:///', slots: {slots}, "
                     f"attributes: {{numa_patch: {str(h % 2 == 0).lower()}}}}}")
    lines.append("guests:")
    for g in GUESTS:
        lines.append(f"  {g}: {{kernel_release: 4.18.0-147.5.1.el8_1.5{g}.aarch64}}")
    lines += ["sim:", "  seed: 1", "  rules:",
              "    - {match: {numa_patch: false, guest: es11}, vcpu_offline: 1.0, "
              "boot_failure: 0.2, panic: 1.0}",
              "    - {match: {guest: es14}, vcpu_offline: 0.1}",
              "  boot_seconds: {mean: 40, sd: 8}"]
    return "\n".join(lines) + "\n"


def matrix_yaml(hosts: int, boots: int) -> str:
    names = ", ".join(f"node-{h}" for h in range(hosts))
    return (f"name: big-sim\nlab: lab.yaml\naxes:\n  host: [{names}]\n"
            f"  guest: [{', '.join(GUESTS)}]\n  vcpus: [4, 8, 16]\nboots: {boots}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--boots", type=int, default=6, help="boots per cell (12 cells a host)")
    ap.add_argument("--time-scale", type=float, default=0.05)
    ap.add_argument("--chunk", type=int, default=2)
    a = ap.parse_args()
    load = os.getloadavg()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "lab.yaml").write_text(lab_yaml(a.hosts, a.slots))
        (folder / "m.yaml").write_text(matrix_yaml(a.hosts, a.boots))
        m = load_matrix(folder / "m.yaml")
        print(f"{a.hosts} hosts x {a.slots} slots, {len(m.cells)} cells x {a.boots} boots "
              f"= {m.total_boots} boots, boot 40 s +- 8 s played at time scale "
              f"{a.time_scale} ({40 * a.time_scale:.2f} s real), chunk {a.chunk}")
        runner_mod.SimClock = RecordingClock  # type: ignore[misc]
        runner = Runner(m, RunOptions(time_scale=a.time_scale, reports_dir=folder,
                                      write_reports=False, chunk_size=a.chunk))
        t = time.perf_counter()
        s = runner.run()
        wall = time.perf_counter() - t
    assert runner._scheduler is not None
    st = runner._scheduler.stats
    tail = min(x.first_idle or st.finished for x in st.slots)
    slots = a.hosts * a.slots
    print(f"  {s.booted} boots in {wall:.1f}s ({s.booted / wall:.0f} boots/s), "
          f"status {s.status}; the tail starts at {tail - st.started:.1f}s")
    print(f"  slots busy until the tail: {100 * s.utilization:.1f}% (a boot handed out)")
    print(f"  guests booting until the tail: "
          f"{100 * booting_share(RecordingClock.waits, st.started, tail, slots):.1f}% "
          "of slot time (the rest: the harness's own work per boot)")
    print(f"  guests booting over the whole run: "
          f"{100 * booting_share(RecordingClock.waits, st.started, st.finished, slots):.1f}%")


if __name__ == "__main__":
    main()
