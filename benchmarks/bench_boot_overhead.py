"""The harness's full cycle per boot against a raw ``qemu-system-aarch64`` boot of the same
kernel, initramfs, vCPU count, CPU model and memory, to the same point: SSH answered and
dmesg read. Measured side by side, interleaved (raw, harness, raw, harness, ...) so both
see the same machine load; prints each boot, the medians and the ratio (target <= 1.10).

Raw: Popen(qemu) -> poll SSH with the same key -> ``dmesg`` -> kill QEMU -> wait.
Harness: a one-boot run of a one-cell matrix through ``Runner`` on ``qemu:///embed``
(define, start, SSH poll, the five collect commands, classify, SQLite record, artifacts,
destroy, undefine), clean host, no report files.

    harness lab setup
    python benchmarks/bench_boot_overhead.py [--boots 3] [--vcpus 4] [--guest arm64]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paramiko

from harness.lab.embed import write_qemu_conf
from harness.lab.paths import layout

LAB = """\
name: bench-lab
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
      cmdline: console=ttyAMA0
    ssh:
      key: {key}
ssh: {{accept_new_host_keys: true}}
"""
MATRIX = """\
name: bench
lab: lab.yaml
axes: {{host: [local], guest: [g], vcpus: [{vcpus}]}}
boots: 1
memory_mib: {mem}
timeouts: {{boot: 300, ssh: 5, command: 60, shutdown: 5}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_boot(kernel: Path, initrd: Path, key: Path, vcpus: int, mem: int, workdir: Path,
             poll_s: float) -> float:
    port = free_port()
    gic = ",gic-version=3" if vcpus > 8 else ""
    cmd = ["qemu-system-aarch64", "-M", f"virt{gic}", "-cpu", "cortex-a72",
           "-accel", "tcg,thread=multi", "-smp", str(vcpus), "-m", str(mem),
           "-display", "none", "-serial", f"file:{workdir / 'raw-console.log'}",
           "-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=ttyAMA0",
           "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
           "-device", "virtio-net-pci,netdev=n0,romfile="]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        pkey = paramiko.Ed25519Key.from_private_key_file(str(key))
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"raw QEMU exited with {proc.returncode}")
            if time.monotonic() - t0 > 300:
                raise RuntimeError("raw boot: no SSH within 300 s")
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect("127.0.0.1", port, "root", pkey=pkey, timeout=5,
                               banner_timeout=5, auth_timeout=5, look_for_keys=False,
                               allow_agent=False)
            except (OSError, paramiko.SSHException, EOFError):
                client.close()
                time.sleep(poll_s)
                continue
            _, out, _ = client.exec_command("dmesg", timeout=60)
            text = out.read().decode(errors="replace")
            client.close()
            if "Linux version" not in text:
                raise RuntimeError("raw boot: dmesg has no kernel banner")
            break
    finally:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0


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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boots", type=int, default=3, help="measured boots of each kind")
    ap.add_argument("--vcpus", type=int, default=4)
    ap.add_argument("--memory", type=int, default=512, help="MiB")
    ap.add_argument("--guest", default="arm64", help="cache guest flavour (arm64, cloud-arm64)")
    ap.add_argument("--raw-poll", type=float, default=1.0,
                    help="raw SSH poll interval, s (the boot loop's default is 1.0)")
    args = ap.parse_args()

    lay = layout()
    gdir = lay.guest(args.guest)
    kernel, initrd, key = gdir / "vmlinuz", gdir / "initrd-ssh.cpio", lay.keys / "id_ed25519"
    if not (kernel.exists() and initrd.exists() and key.exists()):
        print(f"missing {gdir}: run `harness lab setup` first", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="vmbh-bench-", dir="/tmp"))
    try:
        (root / "lab.yaml").write_text(LAB.format(root=root, kernel=kernel, initrd=initrd,
                                                  key=key))
        (root / "bench.yaml").write_text(MATRIX.format(vcpus=args.vcpus, mem=args.memory))
        write_qemu_conf(root / "libvirt")
        print(f"# bench_boot_overhead: {platform.node()} {os.cpu_count()} cpus, python "
              f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")
        print(f"# kernel {(gdir / 'release').read_text().strip()}, {args.vcpus} vCPUs, "
              f"{args.memory} MiB, cortex-a72, TCG multi-threaded; raw poll {args.raw_poll}s")
        print(f"# command: python benchmarks/bench_boot_overhead.py --boots {args.boots} "
              f"--vcpus {args.vcpus} --guest {args.guest}")
        harness_boot(root, args.vcpus)  # warm-up (QEMU capabilities probe), not counted
        raw: list[float] = []
        har: list[float] = []
        inner: list[float] = []
        for i in range(args.boots):
            raw.append(raw_boot(kernel, initrd, key, args.vcpus, args.memory, root,
                                args.raw_poll))
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
