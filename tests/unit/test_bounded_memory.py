"""The classifier's memory does not grow with what a guest prints: many boots, many
distinct titles, CPU ids by the hundred thousand, a flood without line breaks. Each case
runs in a child process under an address-space limit (``RLIMIT_AS``); the counts reported
stay exact while the lists are capped ("and N more")."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

LIMIT = 192 << 20  # bytes of address space for the child (the interpreter needs ~25 MiB)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


CHILD = r"""
import json, sys
from harness.classify import classify_lines

def hwm_mib():  # this program's peak RSS (ru_maxrss would carry the forking parent's)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024

BOOTS, TITLES, CPU_LINES = (int(a) for a in sys.argv[1:4])

def word(n):  # titles drop numbers (normalized): tell them apart by letters
    out = ""
    while True:
        n, r = divmod(n, 26)
        out += chr(97 + r)
        if not n:
            return out

def lines():
    for i in range(BOOTS):
        yield "Booting Linux on physical CPU 0x0000000000 [0x410fd083]"
        yield f"Linux version 5.10.0-{i}-arm64 (debian-kernel@lists.debian.org)"
        yield "[    0.010000] smp: Bringing up secondary CPUs ..."
        yield f"[    0.020000] psci: failed to boot CPU{i % 4000} ({-i})"
        for t in range(TITLES):
            name = word(i * TITLES + t)
            yield f"[    0.040000] WARNING: CPU: 0 PID: 1 at kernel/sched/x.c:1 {name}+0x0/0x10"
        yield f"[    0.060000] smp: Brought up 1 node, {'9' * 50} CPUs"
    for k in range(CPU_LINES):  # the last boot names CPU ids up to 10 x CPU_LINES
        yield f"[    1.000000] CPU{k * 10}: failed to come online"

c = classify_lines(lines(), expected_cpus=8)
print(json.dumps({
    "boots": c.boots_total, "kept": len(c.boots), "titles": len(c.signatures),
    "events": sum(s.count for s in c.signatures if s.kind != "cpus_missing"),
    "offline": len(c.offline_cpus), "psci": len(c.psci_errors), "psci_more": c.psci_omitted,
    "ignored": c.extra.get("cpu_ids_ignored", 0), "verdict": c.verdict,
    "rss_mib": hwm_mib()}))
"""


def test_many_boots_titles_and_cpu_ids_stay_bounded_and_counted() -> None:
    boots, titles, cpu_lines = 3000, 8, 20000
    p = subprocess.run([sys.executable, "-c", CHILD, str(boots), str(titles), str(cpu_lines)],
                       capture_output=True, text=True, timeout=600, preexec_fn=_limit)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["boots"] == boots and r["kept"] == 100  # the first 99 and the last
    assert r["titles"] == 100 + 1  # 100 distinct titles, then one "other titles" entry
    # every titled event counted: titles per boot, plus one title per failed CPU line
    # whose id is a CPU id at all (<= 65535), plus PSCI failures
    tracked_cpu_lines = sum(1 for k in range(cpu_lines) if k * 10 <= 65535)
    assert r["events"] == boots * titles + tracked_cpu_lines + boots
    # failed CPU ids that are no CPU of an 8-vCPU guest: counted, not listed
    beyond = (sum(1 for i in range(boots) if i % 4000 >= 8)  # PSCI, one per boot
              + sum(1 for k in range(cpu_lines) if 8 <= k * 10 <= 65535)  # last boot
              + cpu_lines - tracked_cpu_lines)  # ids above 65535: every mention
    assert r["ignored"] == beyond
    assert r["offline"] == 8 and r["verdict"] == "vcpu_offline"  # CPUs 0-7, never more
    assert r["psci"] == 256 and r["psci"] + r["psci_more"] == boots
    assert r["rss_mib"] < 96, r


FLOOD = r"""
import sys
from harness.cli import main
try:
    main(["classify", "-", "--json"])
finally:
    hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
    sys.stderr.write(f"rss_mib={hwm}\n")
"""


def _flood() -> Iterator[bytes]:
    chunk = b"A" * (1 << 20)
    for _ in range(24):  # 24 MiB without a line break (a console that never ends a line)
        yield chunk
    yield b"\n"
    line = b"[    0.040000] WARNING: CPU: 0 PID: 1 at kernel/sched/core.c:1 fn+0x0/0x10\n"
    yield line * 20000  # the same warning, over and over
    for i in range(0, 6000, 500):
        yield b"".join(b"[    0.040000] WARNING: CPU: 0 PID: 1 at a.c:1 g%s+0x0/0x10\n"
                       % _word(j) for j in range(i, i + 500))


def _word(n: int) -> bytes:
    out = b""
    while True:
        n, r = divmod(n, 26)
        out += bytes([97 + r])
        if not n:
            return out


def test_a_flood_through_harness_classify_stays_bounded(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w+b") as out_f, open(tmp_path / "err", "w+b") as err_f:
        child = subprocess.Popen([sys.executable, "-c", FLOOD], stdin=subprocess.PIPE,
                                 stdout=out_f, stderr=err_f, preexec_fn=_limit)
        assert child.stdin is not None
        try:
            for part in _flood():
                child.stdin.write(part)
        finally:
            child.stdin.close()
        child.wait(timeout=600)
    out, err = (tmp_path / "out").read_bytes(), (tmp_path / "err").read_bytes()
    assert child.returncode == 0, err[-3000:]
    doc = json.loads(out)
    counts = {s["title"]: s["count"] for s in doc["signatures"]}
    assert counts["WARNING in fn"] == 20000
    assert sum(counts.values()) == 20000 + 6000  # exact, with one "other titles" entry
    assert len(doc["signatures"]) <= 101
    rss = float(err.decode().rsplit("rss_mib=", 1)[1])
    assert rss < 96, rss
