"""CPU cycle mode against reboots on the same local host: how many vCPU bring-ups per
minute each way measures. Interleaved rounds (cold boots, then one cpu-cycle boot with
its trials, then again) so both see the same machine load; prints each round, the
totals, boots per minute, trials per minute and their ratio.

Cold: ``reboot: cold``, ``--boots`` boots per round (each boot brings up vcpus-1
secondaries through the guest's ``__cpu_up``). Cycle: ``reboot: cpu-cycle`` with
``--cycles`` per round (one boot, then cycles x (vcpus-1) trials, each one ``__cpu_up``).
Trials per minute counts the trials only, over the cycle run's whole wall time (its boot
included), so the figure is what a team gets, not the trials' own speed.

    harness lab setup
    python benchmarks/bench_cycle.py [--rounds 2] [--boots 2] [--cycles 10] [--vcpus 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness.lab.embed import write_qemu_conf
from harness.lab.paths import layout

LAB = """\
name: bench-cycle-lab
hosts:
  local:
    uri: qemu:///embed?root={root}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
guests:
  g:
    boot:
      kernel: {kernel}
      initrd: {initrd}
      cmdline: console=ttyAMA0 earlycon
    ssh:
      key: {key}
ssh: {{accept_new_host_keys: true}}
"""
MATRIX = """\
name: {name}
lab: lab.yaml
axes: {{host: [local], guest: [g], vcpus: [{vcpus}]}}
boots: {boots}
reboot: {reboot}
cycles: {cycles}
memory_mib: 512
timeouts: {{boot: 300, ssh: 5, command: 60, shutdown: 5}}
"""


def run(root: Path, name: str, reboot: str, boots: int, cycles: int, vcpus: int
        ) -> tuple[float, int, int, int]:
    """(seconds, boots, trials, not-ok rows) of one run."""
    from harness.matrix import load_matrix
    from harness.model import Outcome
    from harness.runner import Runner, RunOptions
    from harness.store import Store

    mfile = root / f"{name}.yaml"
    mfile.write_text(MATRIX.format(name=name, boots=boots, reboot=reboot, cycles=cycles,
                                   vcpus=vcpus))
    t0 = time.monotonic()
    summary = Runner(load_matrix(mfile), RunOptions(
        reports_dir=root / "reports", db=root / "r.db", write_reports=False)).run()
    took = time.monotonic() - t0
    with Store(summary.db) as store:
        rows = store.boots(summary.run_id)
    trials = [b for b in rows if "trial" in dict(b.extra)]
    bad = sum(1 for b in rows if b.outcome is not Outcome.OK)
    return took, len(rows) - len(trials), len(trials), bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--boots", type=int, default=2, help="cold boots per round")
    ap.add_argument("--cycles", type=int, default=10, help="cycles per cpu-cycle round")
    ap.add_argument("--vcpus", type=int, default=4)
    args = ap.parse_args()
    lay = layout()
    guest = lay.guest("arm64")
    if not (guest / "vmlinuz").exists():
        print("run `harness lab setup` first", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="vmbhc-", dir="/tmp"))
    try:
        write_qemu_conf(root / "libvirt", as_root=os.geteuid() == 0)
        (root / "lab.yaml").write_text(LAB.format(
            root=root, kernel=guest / "vmlinuz", initrd=guest / "initrd-ssh.cpio",
            key=lay.keys / "id_ed25519"))
        cold_s = cyc_s = 0.0
        cold_boots = cyc_trials = cyc_boots = bad = 0
        print(f"{platform.node()}: {os.cpu_count()} CPUs, {args.vcpus} vCPUs, TCG")
        for r in range(args.rounds):
            s, b, t, x = run(root, f"cold{r}", "cold", args.boots, 1, args.vcpus)
            cold_s, cold_boots, bad = cold_s + s, cold_boots + b, bad + x
            print(f"round {r}: cold      {b} boots in {s:6.1f} s ({60 * b / s:5.2f} boots/min)")
            s, b, t, x = run(root, f"cycle{r}", "cpu-cycle", 1, args.cycles, args.vcpus)
            cyc_s, cyc_boots, cyc_trials, bad = cyc_s + s, cyc_boots + b, cyc_trials + t, bad + x
            print(f"round {r}: cpu-cycle {b} boot + {t} trials in {s:6.1f} s "
                  f"({60 * t / s:5.1f} trials/min)")
        bpm = 60 * cold_boots / cold_s
        tpm = 60 * cyc_trials / cyc_s
        print(f"cold:      {cold_boots} boots in {cold_s:.1f} s = {bpm:.2f} boots/min "
              f"({bpm * (args.vcpus - 1):.1f} secondary bring-ups/min)")
        print(f"cpu-cycle: {cyc_trials} trials (+{cyc_boots} boots) in {cyc_s:.1f} s = "
              f"{tpm:.1f} trials/min")
        print(f"trials per minute / boots per minute = {tpm / bpm:.1f}; per secondary "
              f"bring-up = {tpm / (bpm * (args.vcpus - 1)):.1f}")
        print(f"rows not ok (a clean host: should be 0): {bad}")
        return 0 if bad == 0 else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
