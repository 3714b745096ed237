"""The text a simulated boot prints: dmesg, serial console, the sysfs CPU lists.

Wording follows the kernel release of the guest (see KERNEL-MESSAGES.md in the design
notes): the secondary bring-up timeout is 1 s before 5.4 and 5 s after (EL8 4.18 has the
5 s backport); ``Booted secondary processor 0x%010lx [0x%08x]`` from 4.18, ``[%08x]``
before. On FT-2500 a late vCPU prints ``failed to come online`` and ``failed in unknown
state : 0x0``; the later online attempt gets ``psci: failed to boot CPUn (-22)`` because
KVM already marked the vCPU powered on. Pure functions.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from harness.classify.cpulist import format_cpu_list
from harness.sim.model import Fate

MIDR = 0x700F8620  # Phytium FT-2500 (FTC662), as printed in the real logs


@dataclass(frozen=True)
class Kernel:
    release: str
    major: int
    minor: int

    @property
    def el8(self) -> bool:
        return ".el8" in self.release

    @property
    def bringup_timeout_s(self) -> float:
        return 5.0 if (self.major, self.minor) >= (5, 4) or self.el8 else 1.0

    @property
    def long_mpidr(self) -> bool:
        return (self.major, self.minor) >= (4, 18)

    @property
    def smp_wording(self) -> bool:  # "smp: Brought up %d node%s, %d CPU%s" from 4.14
        return (self.major, self.minor) >= (4, 14)


def kernel(release: str | None) -> Kernel:
    rel = release or "4.18.0-147.el8.aarch64"
    m = re.match(r"(\d+)\.(\d+)", rel)
    return Kernel(rel, int(m.group(1)), int(m.group(2))) if m else Kernel(rel, 4, 18)


def cpu_list(cpus: list[int] | tuple[int, ...]) -> str:
    """``[0, 1, 2, 4, 5]`` -> ``0-2,4-5`` (the sysfs format)."""
    return format_cpu_list(cpus)


def online_cpus(vcpus: int, fate: Fate) -> list[int]:
    return [c for c in range(vcpus) if c not in fate.offline_cpus]


PANICS = (
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]",
     "Kernel panic - not syncing: softlockup: hung tasks"),
    ("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000",
     "Kernel panic - not syncing: Fatal exception"),
    ("VFS: Unable to mount root fs on unknown-block(0,0)",
     "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"),
)


class _Log:
    def __init__(self, seed: int) -> None:
        self.t = 0.0
        self.lines: list[str] = []
        self.rng = random.Random(seed)

    def add(self, text: str, step: float = 0.0004) -> None:
        self.t += step * (0.5 + self.rng.random())
        self.lines.append(f"[{self.t:12.6f}] {text}")

    def at(self, t: float) -> None:
        self.t = max(self.t, t)


def _mpidr(k: Kernel, cpu: int) -> str:
    return (f"0x{cpu:010x} [0x{MIDR:08x}]" if k.long_mpidr else f"[{MIDR:08x}]")


def dmesg(release: str | None, vcpus: int, fate: Fate, *, upto_panic: bool = False) -> str:
    """The kernel log of one boot; with ``upto_panic`` the log a failing boot leaves on
    the console (the boot stops there)."""
    k = kernel(release)
    log = _Log(fate.entropy)
    log.lines.append(f"[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x{MIDR:08x}]")
    log.lines.append(f"[    0.000000] Linux version {k.release} (mockbuild@aarch64-builder) "
                     "(gcc version 8.3.1 20191121 (Red Hat 8.3.1-5) (GCC)) #1 SMP")
    for text in ("efi: Getting EFI parameters from FDT:", "psci: probing for conduit method "
                 "from DT.", "psci: PSCIv1.1 detected in firmware.", "psci: Using standard "
                 "PSCI v0.2 function IDs", "psci: Trusted OS migration not required",
                 "percpu: Embedded 31 pages/cpu s88600 r8192 d30184 u126976",
                 f"rcu: \tRCU restricting CPUs from NR_CPUS=4096 to nr_cpu_ids={vcpus}.",
                 "GICv3: 256 SPIs implemented", "arch_timer: cp15 timer(s) running at 48.00MHz "
                 "(virt)."):
        log.lines.append(f"[    0.000000] {text}")
    log.at(0.012)
    log.add("smp: Bringing up secondary CPUs ..." if k.smp_wording
            else "Bringing up secondary CPUs ...")
    for cpu in range(1, vcpus):
        if cpu in fate.offline_cpus:
            log.at(log.t + k.bringup_timeout_s)
            log.add(f"CPU{cpu}: failed to come online")
            log.add(f"CPU{cpu}: failed in unknown state : 0x0", 0.00003)
            continue
        log.add(f"Detected VIPT I-cache on CPU{cpu}")
        log.add(f"CPU{cpu}: Booted secondary processor {_mpidr(k, cpu)}")
    up = vcpus - len(fate.offline_cpus)
    if k.smp_wording:
        log.add(f"smp: Brought up 1 node, {up} CPU{'s' if up != 1 else ''}")
    else:
        log.add(f"Brought up {up} CPUs")
    log.add(f"SMP: Total of {up} processors activated.")
    for text in ("CPU features: detected: 32-bit EL0 Support", "CPU: All CPU(s) started at EL1",
                 "devtmpfs: initialized", "clocksource: Switched to clocksource arch_sys_counter",
                 "virtio_blk virtio2: [vda] 41943040 512-byte logical blocks (21.5 GB/20.0 GiB)",
                 "Freeing unused kernel memory: 4480K"):
        log.add(text, 0.05)
    if fate.failure == "panic" and upto_panic:
        first, panic = PANICS[fate.panic_kind % len(PANICS)]
        log.at(log.t + 20.0)
        log.add(first)
        log.add("Call trace:", 0.0001)
        for fn in ("dump_backtrace+0x0/0x1b0", "show_stack+0x24/0x30", "dump_stack+0x90/0xb4",
                   "panic+0x134/0x30c"):
            log.add(" " + fn, 0.00001)
        log.add(panic, 0.0001)
        log.add(f"---[ end {panic} ]---", 0.0001)
        return "\n".join(log.lines) + "\n"
    if fate.failure == "silent" and upto_panic:
        return "\n".join(log.lines[:12]) + "\n"  # stops printing before user space
    log.add("Run /init as init process", 0.3)
    log.add("systemd[1]: Detected virtualization kvm.", 0.5)
    if fate.offline_cpus and fate.retry_psci:
        # the later online attempt (udev / cloud-init) on FT-2500: KVM says ALREADY_ON
        log.at(log.t + 45.0 + log.rng.random() * 10)
        for cpu in fate.offline_cpus:
            log.add(f"psci: failed to boot CPU{cpu} (-22)", 0.001)
            log.add(f"CPU{cpu}: failed to boot: -22", 0.001)
            log.add(f"CPU{cpu}: failed in unknown state : 0x0", 0.0008)
    return "\n".join(log.lines) + "\n"


def console(release: str | None, vcpus: int, fate: Fate, hostname: str = "guest",
            kernel_log: str | None = None) -> str:
    """The serial console: firmware, the kernel log, a login prompt; a failing boot stops
    at its panic, or goes silent early (a hang). ``kernel_log``: this boot's ``dmesg``
    when already made (it is the same text)."""
    head = "EFI stub: Booting Linux Kernel...\nEFI stub: Using DTB from configuration table\n"
    if fate.failure:
        return head + dmesg(release, vcpus, fate, upto_panic=True)
    log = kernel_log if kernel_log is not None else dmesg(release, vcpus, fate)
    return head + log + f"\n{hostname} login: "


_TS = re.compile(r"\[\s*(\d+\.\d+)\]")


def reveal_points(console_text: str) -> list[tuple[float, int]]:
    """``(uptime, end offset)`` per console line: a line is on the console once the guest
    has been up that long (its timestamp; lines without one follow the previous line);
    the login prompt and lines after the last timestamp appear only at the end of boot."""
    out: list[tuple[float, int]] = []
    t = 0.0
    pos = 0
    for line in console_text.splitlines(keepends=True):
        pos += len(line)
        m = _TS.match(line)
        if m:
            t = float(m.group(1))
        elif "login:" in line:
            break
        out.append((t, pos))
    return out
