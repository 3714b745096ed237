"""The harness's cycle per distro boot through the rehearsal host against a raw
``qemu-system-aarch64`` UEFI boot of the same image on the same host, to the same point:
SSH accepted the login and dmesg was read. Side by side, interleaved (raw, harness, raw,
harness, ...) so both see the same machine load; prints each pair, the medians and the
ratio (target <= 1.10).

Raw, on the rehearsal host over SSH: a qcow2 overlay on the image and a copy of the
AAVMF VARS, ``qemu-system-aarch64 -daemonize`` with the same firmware, CPU model, vCPUs
and memory, user-mode networking forwarding the guest's SSH to the host's loopback; the
controller logs in through the host (SSH jump, as the harness does), reads dmesg, then
QEMU is killed and its files removed.
Harness: a one-boot run of a one-cell matrix of ``matrices/labs/rehearsal-lab.yaml``'s
clean host (define with overlay volume and NVRAM, UEFI start, address from the DHCP
lease, SSH through the host, the collect commands, console, host dmesg, QEMU log and
versions over SSH, classify, SQLite, artifacts, destroy, undefine).

    harness lab setup --distro && harness lab up
    python benchmarks/bench_rehearsal_cycle.py [--boots 3] [--vcpus 2] [--guest deb12-arm64]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "matrices" / "labs" / "rehearsal-lab.yaml"
MATRIX = """\
name: bench-rehearsal
lab: {lab}
axes: {{host: [rh-clean], guest: [{guest}], vcpus: [{vcpus}]}}
boots: 1
memory_mib: {mem}
timeouts: {{boot: 900, ssh: 60, command: 120, shutdown: 10}}
"""
RAW_DIR = "/var/lib/libvirt/images/harness"
RAW_PORT = 10022
RAW_START = (
    "set -e; cd {dir}; rm -f raw-bench.*; "
    "qemu-img create -q -f qcow2 -F qcow2 -b {image} raw-bench.qcow2; "
    "cp /usr/share/AAVMF/AAVMF_VARS.fd raw-bench.vars; "
    "qemu-system-aarch64 -M virt -cpu cortex-a72 -accel tcg,thread=multi -smp {vcpus} "
    "-m {mem} -display none -serial file:raw-bench.console "
    "-drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd "
    "-drive if=pflash,format=raw,file=raw-bench.vars "
    "-drive if=virtio,format=qcow2,cache=unsafe,file=raw-bench.qcow2 "
    "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22 "
    "-device virtio-net-pci,netdev=n0,romfile= -pidfile raw-bench.pid -daemonize"
)
RAW_STOP = ("cd {dir}; [ -f raw-bench.pid ] && kill -9 $(cat raw-bench.pid) 2>/dev/null; "
            "sleep 0.2; rm -f raw-bench.*; true")


def raw_boot(lab: object, guest: str, vcpus: int, mem: int, poll_s: float) -> float:
    from harness.collect.ssh import HostSession, JumpHost, SSHConfig, open_session
    from harness.errors import InfraError
    from harness.inventory import Lab

    assert isinstance(lab, Lab)
    host = lab.host("rh-clean")
    assert host.ssh is not None
    hcfg = SSHConfig(user=host.ssh.user, key=host.ssh.key, known_hosts=lab.known_hosts)
    addr = host.ssh.host or "198.18.20.2"
    session = HostSession(addr, hcfg)
    g = lab.guest(guest)
    assert g.boot is not None and g.boot.image is not None
    gcfg = SSHConfig(user=g.ssh.user, key=g.ssh.key, accept_new_host_keys=True)
    jump = JumpHost(addr, hcfg)
    session.run(RAW_STOP.format(dir=RAW_DIR), 30)
    t0 = time.monotonic()
    try:
        out = session.run(RAW_START.format(dir=RAW_DIR, image=g.boot.image, vcpus=vcpus,
                                           mem=mem, port=RAW_PORT), 60)
        if out.exit_status != 0:
            raise RuntimeError(f"raw QEMU did not start: {out.stderr.strip()}")
        while True:
            if time.monotonic() - t0 > 900:
                raise RuntimeError("raw boot: no SSH within 900 s")
            try:
                chan = open_session("127.0.0.1", RAW_PORT, gcfg, 60, jump)  # as the matrix
            except InfraError:
                raise
            except Exception:
                time.sleep(poll_s)
                continue
            try:
                text = chan.run("dmesg", 60).stdout
            except Exception:  # sshd up before the login works: try again
                chan.close()
                time.sleep(poll_s)
                continue
            chan.close()
            if "Linux version" not in text:
                raise RuntimeError("raw boot: dmesg has no kernel banner")
            break
        return time.monotonic() - t0
    finally:
        session.run(RAW_STOP.format(dir=RAW_DIR), 30)
        session.close()
        jump.close()


def harness_boot(root: Path, vcpus: int) -> tuple[float, float, dict[str, float]]:
    """(whole run wall time, the boot's own define -> stopped time, its step durations)."""
    from harness.matrix import load_matrix
    from harness.model import Outcome
    from harness.runner import Runner, RunOptions
    from harness.store import Store

    t0 = time.monotonic()
    summary = Runner(load_matrix(root / "bench.yaml"), RunOptions(
        reports_dir=root / "reports", db=root / "results.db", write_reports=False)).run()
    elapsed = time.monotonic() - t0
    with Store(summary.db) as store:
        (b,) = store.boots(summary.run_id)
    if b.outcome is not Outcome.OK or b.online_cpus != tuple(range(vcpus)):
        raise RuntimeError(f"harness boot not ok: {b.outcome} {b.reason}")
    t = dict(b.timings)
    steps = {"to_ssh": t["ssh_up"] - t["define"], "collect": t["collected"] - t["ssh_up"],
             "stop": t["stopped"] - t["collected"]}
    return elapsed, t["stopped"] - t["define"], steps


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--boots", type=int, default=3, help="measured boots of each kind")
    ap.add_argument("--vcpus", type=int, default=2)
    ap.add_argument("--memory", type=int, default=1024, help="MiB")
    ap.add_argument("--guest", default="deb12-arm64", help="rehearsal-lab guest")
    ap.add_argument("--raw-poll", type=float, default=1.0,
                    help="raw SSH poll interval, s (the boot loop's default is 1.0)")
    args = ap.parse_args()

    from harness.inventory import load_lab
    from harness.lab import rehearsal
    from harness.lab.paths import layout

    if rehearsal.status(layout())["libvirtd"] != "up":
        print("the rehearsal host is not up: run `harness lab up` first", file=sys.stderr)
        return 2
    lab = load_lab(LAB)
    root = Path(tempfile.mkdtemp(prefix="vmbh-bench-rh-", dir="/tmp"))
    try:
        (root / "bench.yaml").write_text(MATRIX.format(lab=LAB, guest=args.guest,
                                                       vcpus=args.vcpus, mem=args.memory))
        print(f"# bench_rehearsal_cycle: {platform.node()} {os.cpu_count()} cpus, python "
              f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")
        print(f"# {args.guest}, {args.vcpus} vCPUs, {args.memory} MiB, cortex-a72, TCG, UEFI "
              f"(AAVMF), through qemu+ssh://root@198.18.20.2/system; raw poll {args.raw_poll}s")
        print(f"# command: python benchmarks/bench_rehearsal_cycle.py --boots {args.boots} "
              f"--vcpus {args.vcpus} --guest {args.guest}")
        raw: list[float] = []
        har: list[float] = []
        inner: list[float] = []
        for i in range(args.boots):
            raw.append(raw_boot(lab, args.guest, args.vcpus, args.memory, args.raw_poll))
            whole, boot, steps = harness_boot(root, args.vcpus)
            har.append(whole)
            inner.append(boot)
            parts = "  ".join(f"{k} {v:.2f}" for k, v in steps.items())
            print(f"boot {i + 1}: raw {raw[-1]:6.2f}s  harness run {whole:6.2f}s  "
                  f"(its boot {boot:.2f}s: {parts})  load {os.getloadavg()[0]:.1f}",
                  flush=True)
        mr, mh, mi = statistics.median(raw), statistics.median(har), statistics.median(inner)
        print(f"median raw {mr:.2f}s  harness run {mh:.2f}s  ratio {mh / mr:.3f} "
              f"(target <= 1.10)")
        print(f"median harness boot alone (define -> stopped, no run setup) {mi:.2f}s  "
              f"ratio {mi / mr:.3f}")
        ar, ah = statistics.fmean(raw), statistics.fmean(har)
        print(f"mean   raw {ar:.2f}s  harness run {ah:.2f}s  ratio {ah / ar:.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
