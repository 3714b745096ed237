"""The boot loop's own cost per boot, without any VM: scripted fakes, the real classifier,
real artifact writing and a real JSON-lines sink. What remains is what the harness adds to
each boot (a real TCG boot takes ~30-200 s, a KVM boot ~10-30 s).

Run: python benchmarks/bench_bootloop.py [--boots N] [--vcpus N]
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from harness.backend import domain_xml as dx
from harness.backend.base import BootRequest
from harness.bootloop import BootLoop
from harness.inventory import load_lab
from harness.matrix import load_matrix
from harness.model import Cell, Outcome
from harness.testing.fakes import FakeBackend, FakeClock, FakeConnector, Script
from harness.testing.sink import JsonlSink

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=500)
    ap.add_argument("--vcpus", type=int, default=32)
    args = ap.parse_args()
    lab = load_lab(ROOT / "tests" / "data" / "bootloop" / "lab.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        scripts = [Script(), Script(online=f"0-2,4-{args.vcpus - 1}")]
        backend = FakeBackend(lambda req: scripts[req.boot_index % 2])
        clock = FakeClock()
        loop = BootLoop(lambda h: backend, lambda h, g: FakeConnector(),
                        JsonlSink(Path(tmp) / "r.jsonl"), lab, Path(tmp) / "run", "bench",
                        clock=clock.time, sleep=clock.sleep)
        cell = Cell(id=f"local/tiny/vcpu{args.vcpus}", matrix="b", host="local", guest="tiny",
                    vcpus=args.vcpus, boots=args.boots)
        t0 = time.perf_counter()
        results = list(loop.run_chunk(cell, range(args.boots)))
        dt = time.perf_counter() - t0
    assert len(results) == args.boots and backend.defined == {}
    offline = sum(r.outcome is Outcome.VCPU_OFFLINE for r in results)
    m = load_matrix(ROOT / "matrices" / "eas-66611.yaml")
    t1 = time.perf_counter()
    n = 0
    for _ in range(20):
        for c in m.cells:
            req = BootRequest(run_id="b", cell=c, host_name=c.host, host=m.lab.host(c.host),
                              guest_name=c.guest, guest=m.lab.guest(c.guest),
                              domain_name=f"hb-b-{c.safe_id}-0", boot_index=0,
                              workdir=Path("/tmp/b"))
            dx.domain_xml(req)
            n += 1
    xml_dt = time.perf_counter() - t1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(f"boot loop: {args.boots} cold boots x {args.vcpus} vCPUs in {dt:.2f} s = "
          f"{1000 * dt / args.boots:.2f} ms per boot of harness overhead "
          f"({offline} vcpu_offline as scripted)")
    print(f"domain XML: {n} domains in {xml_dt:.3f} s = {1e6 * xml_dt / n:.0f} us each")
    print(f"max RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
