"""Peak memory of ``harness classify`` on the largest hostile inputs (issue 14).

    python benchmarks/bench_hostile_memory.py [--scale 1.0] [--only NAME]

Each case streams a generated text into ``harness classify - --json`` in a fresh child
process (nothing is written to disk) and prints the input size, the time, and the child's
peak RSS (its ``VmHWM``). Before issue 14, the classifier kept every boot, every
distinct title and every CPU id: 130,000 boots took 1.3 GB, 2.8 M boots ended in
MemoryError, 1,000,000 CPU ids were listed for an 8-vCPU guest. The target: the peak
stays flat (tens of MiB) whatever the input, while the counts reported stay exact.

Cases (``--scale`` multiplies their sizes):
  boots     130,000 boots of 8 lines, each with a distinct warning title, a failed CPU
            and a PSCI error
  titles    one boot with 500,000 distinct warning titles
  cpu-ids   one boot naming 1,000,000 CPU ids as failed (--expected-cpus 8)
  flood     1 GiB without a line break, then 2,000,000 copies of one warning
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator


def _word(n: int) -> str:  # titles drop numbers when normalized: tell them apart by letters
    out = ""
    while True:
        n, r = divmod(n, 26)
        out += chr(97 + r)
        if not n:
            return out


def boots(scale: float) -> Iterator[bytes]:
    n = int(130_000 * scale)
    for start in range(0, n, 1000):
        yield "".join(
            "Booting Linux on physical CPU 0x0000000000 [0x410fd083]\n"
            f"Linux version 5.10.0-{i}-arm64 (debian-kernel@lists.debian.org)\n"
            "[    0.010000] smp: Bringing up secondary CPUs ...\n"
            f"[    0.020000] CPU{1 + i % 7}: failed to come online\n"
            f"[    0.030000] psci: failed to boot CPU{i % 60000} ({-i})\n"
            f"[    0.040000] WARNING: CPU: 0 PID: 1 at kernel/x.c:1 {_word(i)}+0x0/0x10\n"
            "[    0.050000] smp: Brought up 1 node, 7 CPUs\n"
            "[    0.060000] Run /init as init process\n"
            for i in range(start, min(n, start + 1000))).encode()


def titles(scale: float) -> Iterator[bytes]:
    n = int(500_000 * scale)
    yield b"Booting Linux on physical CPU 0x0000000000 [0x410fd083]\n"
    for start in range(0, n, 5000):
        yield "".join(f"[    1.000000] WARNING: CPU: 0 PID: 1 at a.c:1 {_word(i)}+0x0/0x10\n"
                      for i in range(start, min(n, start + 5000))).encode()


def cpu_ids(scale: float) -> Iterator[bytes]:
    n = int(1_000_000 * scale)
    yield b"[    0.010000] smp: Bringing up secondary CPUs ...\n"
    for start in range(0, n, 10000):
        yield "".join(f"[    0.020000] CPU{i}: failed to come online\n"
                      for i in range(start, min(n, start + 10000))).encode()


def flood(scale: float) -> Iterator[bytes]:
    chunk = b"A" * (1 << 20)
    for _ in range(int(1024 * scale)):
        yield chunk
    yield b"\n"
    line = b"[    0.040000] WARNING: CPU: 0 PID: 1 at kernel/sched/core.c:1 fn+0x0/0x10\n"
    for _ in range(int(200 * scale)):
        yield line * 10000


CASES: dict[str, tuple[Callable[[float], Iterator[bytes]], list[str]]] = {
    "boots": (boots, ["--expected-cpus", "8"]),
    "titles": (titles, []),
    "cpu-ids": (cpu_ids, ["--expected-cpus", "8"]),
    "flood": (flood, []),
}
CHILD = """
import sys
from harness.cli import main
try:
    main(sys.argv[1:])
finally:  # this program's peak RSS (wait4's ru_maxrss would carry the forking parent's)
    hwm = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    sys.stderr.write(f"peak_kib={hwm}\\n")
"""


def measure(name: str, scale: float) -> dict[str, object]:
    gen, extra = CASES[name]
    t0 = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", CHILD, "classify", "-", "--json", *extra],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    size = 0
    import threading

    out: list[bytes] = []
    err: list[bytes] = []
    readers = [threading.Thread(target=lambda: out.append(child.stdout.read())),  # type: ignore[union-attr]
               threading.Thread(target=lambda: err.append(child.stderr.read()))]  # type: ignore[union-attr]
    for r in readers:
        r.start()
    for part in gen(scale):
        child.stdin.write(part)
        size += len(part)
    child.stdin.close()
    _, status, _usage = os.wait4(child.pid, 0)
    for r in readers:
        r.join()
    peak_kib = int(err[0].decode().rsplit("peak_kib=", 1)[1].split()[0])
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - t0
    doc = json.loads(out[0]) if child.returncode == 0 else {}
    return {
        "case": name, "input_mb": round(size / 1e6, 1), "seconds": round(elapsed, 1),
        "mb_per_s": round(size / 1e6 / elapsed, 1), "peak_rss_mib": round(peak_kib / 1024),
        "exit": child.returncode, "boots": doc.get("boots_total"),
        "titles": len(doc.get("signatures", [])),
        "events": sum(s["count"] for s in doc.get("signatures", [])),
        "offline_listed": len(doc.get("offline_cpus", [])),
        "cpu_ids_ignored": doc.get("cpu_ids_ignored"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", choices=sorted(CASES))
    args = ap.parse_args()
    names = [args.only] if args.only else list(CASES)
    print(f"{'case':8} {'input MB':>9} {'s':>7} {'MB/s':>6} {'peak RSS MiB':>13}  counts")
    for name in names:
        r = measure(name, args.scale)
        print(f"{r['case']:8} {r['input_mb']:>9} {r['seconds']:>7} {r['mb_per_s']:>6} "
              f"{r['peak_rss_mib']:>13}  exit {r['exit']}, boots {r['boots']}, "
              f"{r['titles']} titles listed for {r['events']} events, "
              f"{r['offline_listed']} offline CPUs listed, {r['cpu_ids_ignored']} ids ignored",
              flush=True)


if __name__ == "__main__":
    main()
