"""Build realistic kernel texts for tests and benchmarks (pure, deterministic).

``boot_lines`` prints one arm64 boot in a given kernel's wording; ``PREFIXES`` rewrites a
line the ways it reaches us (dmesg -T, syslog, ``> `` quotes, ANSI, CRLF, ...). The
classifier must read every variant the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

NOISE = (
    "random: crng init done",
    "EXT4-fs (vda1): mounted filesystem with ordered data mode. Opts: (null)",
    "virtio_net virtio1 enp1s0: renamed from eth0",
    "audit: type=1130 audit(1700000000.123:42): pid=1 uid=0 msg='unit=sshd comm=\"systemd\"'",
    "systemd[1]: Started OpenSSH server daemon.",
    "clocksource: Switched to clocksource arch_sys_counter",
    "NET: Registered PF_INET6 protocol family",
    "Freeing unused kernel memory: 5824K",
    "psci: failed to set PC mode: -95",  # harmless firmware message, not a CPU failure
    "CPU features: detected: GIC system register CPU interface",
    "SMP: failed to stop secondary CPUs 0-15,17-127",  # kdump path, not a bring-up failure
    "GICv3: CPU1: found redistributor 1 region 0:0x00000000080c0000",
    "[  OK  ] Reached target Multi-User System.",
    "localhost login: ",
)


@dataclass(frozen=True)
class BootSpec:
    """What a synthetic boot shows."""

    release: str = "4.18.0-147.5.1.el8_1.5es.11.aarch64"
    cpus: int = 8
    failed: tuple[int, ...] = ()  # secondaries that time out ("failed to come online")
    retry_failed: bool = False  # a later online attempt of each failed CPU: psci -22
    panic: str | None = None  # e.g. "Attempted to kill init! exitcode=0x0000000b"
    start: float = 0.0  # uptime of the first line
    per_cpu_s: float = 0.0015  # bring-up time of a healthy secondary
    noise: int = 3  # noise lines after the bring-up


def _version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return 4, 18


def boot_lines(spec: BootSpec) -> Iterator[str]:
    """The dmesg lines of one boot, ``[%12.6f] message``, in the wording of its release."""
    major, minor = _version(spec.release)
    new = (major, minor) >= (4, 14)
    long_mpidr = (major, minor) >= (4, 18)
    timeout = 5.0 if (major, minor) >= (5, 4) or ".el8" in spec.release else 1.0
    t = spec.start

    def line(msg: str, dt: float = 0.000013) -> str:
        nonlocal t
        t += dt
        return f"[{t:12.6f}] {msg}"

    if long_mpidr:
        yield line("Booting Linux on physical CPU 0x0000000000 [0x700f8620]", 0.0)
    yield line(f"Linux version {spec.release} (mockbuild@aarch64) (gcc version 8.3.1) #1 SMP")
    yield line("psci: PSCIv1.1 detected in firmware.")
    if new:
        yield line("smp: Bringing up secondary CPUs ...", 0.02)
    up = 1
    for cpu in range(1, spec.cpus):
        if cpu in spec.failed:
            yield line(f"CPU{cpu}: failed to come online", timeout)
            yield line(f"CPU{cpu}: failed in unknown state : 0x0")
            continue
        up += 1
        proc = f"0x{cpu:010x} [0x700f8620]" if long_mpidr else "[700f8620]"
        yield line(f"Detected PIPT I-cache on CPU{cpu}", spec.per_cpu_s)
        yield line(f"CPU{cpu}: Booted secondary processor {proc}")
    if new:
        yield line(f"smp: Brought up 1 node, {up} CPU{'s' if up > 1 else ''}")
    else:
        yield line(f"Brought up {up} CPUs")
    yield line(f"SMP: Total of {up} processors activated.")
    for i in range(spec.noise):
        yield line(NOISE[i % len(NOISE)], 0.01)
    if spec.panic is not None:
        yield line(f"Kernel panic - not syncing: {spec.panic}", 0.5)
        yield line(f"---[ end Kernel panic - not syncing: {spec.panic} ]---")
        return
    if spec.retry_failed:
        for cpu in sorted(c for c in spec.failed if c < spec.cpus):
            yield line(f"psci: failed to boot CPU{cpu} (-22)", 40.0)
            yield line(f"CPU{cpu}: failed to boot: -22")


def _split(stamped: str) -> tuple[str, str]:
    end = stamped.index("]")
    return stamped[: end + 1], stamped[end + 2:]


# How a line reaches us: each rewrites a "[      uptime] message" line.
PREFIXES: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "bare": lambda s: _split(s)[1],
    "level": lambda s: "<2>" + s,
    "dmesg_T": lambda s: "[Wed Nov 25 04:29:11 2026] " + _split(s)[1],
    "dmesg_x": lambda s: "kern  :crit  : " + s,
    "syslog": lambda s: "Nov 25 04:29:11 guest-3 kernel: " + _split(s)[1],
    "syslog_stamp": lambda s: "Nov  5 04:29:11 guest-3 kernel: " + s,
    "iso": lambda s: "2026-11-25T04:29:11.123456+00:00 guest-3 kernel: " + _split(s)[1],
    "quoted": lambda s: "> " + s,
    "double_quoted": lambda s: "> > " + s,
    "ansi": lambda s: "\x1b[0;31m" + s + "\x1b[0m",
    "crlf": lambda s: s + "\r",
    "caller": lambda s: _split(s)[0] + "[    T1] " + _split(s)[1],
    "indented": lambda s: "    " + s,
}


def noise_lines(rng: random.Random, n: int) -> Iterator[str]:
    """Lines that must never change a classification (userspace, firmware, harmless)."""
    for _ in range(n):
        yield rng.choice(NOISE)
