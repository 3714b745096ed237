"""Throughput and memory of the streaming classifier on a ~100 MB serial console log.

    python benchmarks/bench_classify.py [--mb 100] [--seed 1]

Writes a realistic console log to a temp dir (boots in several kernels' wording, some with
offline vCPUs, PSCI errors or a panic; systemd and application output; interleaved and
prefixed lines), then classifies it in a fresh child process reading the file line by line
(as ``harness classify FILE`` does) and prints MB/s and the child's peak RSS.
Target: at least 10 MB/s; memory must not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.classify.synth import NOISE, PREFIXES, BootSpec, boot_lines

USERSPACE = (
    "[  OK  ] Started Session {n} of user root.",
    "         Starting Daily apt upgrade and clean activities...",
    "app[{n}]: GET /api/v1/items?page={n} 200 0.{n}ms",
    "sshd[{n}]: Accepted publickey for root from 10.77.3.{m} port {n} ssh2",
    "kernel-test: iteration {n} done, {m} errors",
    "stress-ng: info:  [{n}] dispatching hogs: {m} cpu",
    "CRON[{n}]: (root) CMD (run-parts /etc/cron.hourly)",
)
KERNEL_CHATTER = (
    "EXT4-fs (vda1): re-mounted. Opts: errors=remount-ro",
    "virtio_balloon virtio3: Out of puff! Can't get {m} pages",
    "TCP: request_sock_TCP: Possible SYN flooding on port {n}. Sending cookies.",
    "GICv3: CPU{m}: found redistributor {m} region 0:0x00000000080a0000",
    "audit: type=1400 audit({n}.123:{m}): apparmor=\"DENIED\" operation=\"open\"",
)


def write_log(path: Path, target_bytes: int, seed: int) -> dict[str, int]:
    """Stream a console log of about ``target_bytes`` to ``path``; return what is in it."""
    rng = random.Random(seed)
    stats = {"boots": 0, "failed_boots": 0, "offline_boots": 0, "lines": 0}
    releases = ["4.18.0-147.5.1.el8_1.5es.11.aarch64", "4.19.90", "5.10.0", "6.6.33"]
    size = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        uptime = 0.0
        while size < target_bytes:
            failed = tuple(sorted(rng.sample(range(1, 8), rng.choice([0, 0, 0, 1, 2]))))
            panic = "Attempted to kill init! exitcode=0x0000000b" if rng.random() < 0.05 else None
            spec = BootSpec(release=rng.choice(releases), cpus=8, failed=failed,
                            retry_failed=bool(failed), panic=panic, noise=5)
            stats["boots"] += 1
            stats["failed_boots"] += bool(panic)
            stats["offline_boots"] += bool(failed) and not panic
            prefix = PREFIXES[rng.choice(["plain", "plain", "plain", "ansi", "crlf", "level"])]
            chunk = [prefix(line) for line in boot_lines(spec)]
            uptime = 20.0
            # the running system: mostly userspace, some kernel chatter, a few interleavings
            for _ in range(rng.randint(2000, 12000)):
                n, m = rng.randint(1, 99999), rng.randint(0, 7)
                r = rng.random()
                uptime += rng.random() * 0.05
                if r < 0.7:
                    chunk.append(rng.choice(USERSPACE).format(n=n, m=m))
                elif r < 0.95:
                    msg = rng.choice(KERNEL_CHATTER).format(n=n, m=m)
                    chunk.append(f"[{uptime:12.6f}] {msg}")
                elif r < 0.99:
                    chunk.append(f"[{uptime:12.6f}] {rng.choice(NOISE)}")
                else:
                    chunk.append(f"[  OK  ] Start[{uptime:12.6f}] {rng.choice(NOISE)}")
            text = "\n".join(chunk) + "\n"
            f.write(text)
            size += len(text.encode())
            stats["lines"] += len(chunk)
    return stats


def classify_file(path: str) -> dict[str, object]:
    """Runs in the child: classify the file streaming, report time and peak RSS."""
    from harness.classify import classify_lines

    t0, c0 = time.perf_counter(), time.process_time()
    with open(path, "rb") as f:
        c = classify_lines(raw.decode("utf-8", errors="replace") for raw in f)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": dt, "cpu_seconds": cpu, "peak_rss_mib": rss_kib / 1024,
            "boots": len(c.boots),
            "verdict": c.verdict, "boot_failures": sum(b.verdict == "boot_failure"
                                                      for b in c.boots),
            "vcpu_offline": sum(b.verdict == "vcpu_offline" for b in c.boots),
            "signatures": len(c.signatures)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="size of the log (MB)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(classify_file(args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp:
        log = Path(tmp) / "console.log"
        t0 = time.perf_counter()
        made = write_log(log, int(args.mb * 1_000_000), args.seed)
        gen_s = time.perf_counter() - t0
        size = log.stat().st_size
        out = subprocess.run([sys.executable, __file__, "--child", str(log)],
                             capture_output=True, text=True, check=True)
        res = json.loads(out.stdout)
    mb = size / 1_000_000
    seconds = float(res["seconds"])
    print(f"command:   python {' '.join([os.path.relpath(__file__), *sys.argv[1:]])}")
    print(f"machine:   {platform.machine()} {platform.processor() or ''} "
          f"{os.cpu_count()} cpus, Python {platform.python_version()}")
    print(f"log:       {mb:.1f} MB, {made['lines']} lines, {made['boots']} boots "
          f"({made['offline_boots']} with offline vCPUs, {made['failed_boots']} panics); "
          f"written in {gen_s:.1f} s")
    print(f"classified: {res['boots']} boots, {res['vcpu_offline']} vcpu_offline, "
          f"{res['boot_failures']} boot_failure, {res['signatures']} signatures")
    cpu = float(res["cpu_seconds"])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"throughput: {mb / seconds:.1f} MB/s wall ({seconds:.2f} s), "
          f"{mb / cpu:.1f} MB/s of CPU time ({cpu:.2f} s); target >= 10 MB/s")
    print(f"load avg:   {load} (other work on this machine slows the wall-clock figure)")
    print(f"peak RSS:   {float(res['peak_rss_mib']):.1f} MiB (child process, whole interpreter)")
    ok = (res["boots"] == made["boots"] and res["vcpu_offline"] == made["offline_boots"]
          and res["boot_failures"] == made["failed_boots"])
    print(f"check:      classification matches what was written: {'yes' if ok else 'NO'}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
