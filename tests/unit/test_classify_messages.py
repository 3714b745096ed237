"""Every message of KERNEL-MESSAGES.md, in each kernel's wording, through every prefix."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from harness.classify import Classification, classify
from harness.classify.synth import PREFIXES


@dataclass(frozen=True)
class Case:
    id: str
    lines: tuple[str, ...]
    kinds: tuple[str, ...]  # finding kinds, in order
    verdict: str = "ok"
    titles: tuple[str, ...] = ()  # signature titles, in order
    offline: tuple[int, ...] = ()
    cpu: int | None = None  # of the first finding
    errno: int | None = None  # of the first finding
    extra: dict[str, object] = field(default_factory=dict)  # other Classification fields


CASES = [
    # secondary CPU bring-up (arch/arm64/kernel/smp.c, psci.c, kernel/cpu.c)
    Case("failed_online", ("CPU3: failed to come online",), ("cpu_failed_online",),
         "vcpu_offline", ("vCPU failed to come online",), (3,), cpu=3),
    Case("unknown_state", ("CPU3: failed in unknown state : 0x0",),
         ("cpu_failed_unknown_state",), "vcpu_offline", ("vCPU failed in unknown state",), (3,),
         cpu=3),
    Case("failed_boot", ("CPU12: failed to boot: -22",), ("cpu_failed_boot",), "vcpu_offline",
         ("vCPU failed to boot",), (12,), cpu=12, errno=-22),
    Case("psci_einval", ("psci: failed to boot CPU3 (-22)",), ("psci_failed_boot",),
         "vcpu_offline", ("psci: failed to boot CPU",), (3,), cpu=3, errno=-22,
         extra={"psci_errors": ((3, -22),)}),
    Case("psci_eopnotsupp", ("psci: failed to boot CPU5 (-95)",), ("psci_failed_boot",),
         "vcpu_offline", ("psci: failed to boot CPU",), (5,), cpu=5, errno=-95),
    Case("psci_eperm", ("psci: failed to boot CPU1 (-1)",), ("psci_failed_boot",),
         "vcpu_offline", ("psci: failed to boot CPU",), (1,), cpu=1, errno=-1),
    Case("psci_no_space_seed", ("psci: failed to boot CPU28(-22)",), ("psci_failed_boot",),
         "vcpu_offline", ("psci: failed to boot CPU",), (28,), cpu=28, errno=-22),
    Case("died_early", ("CPU2: died during early boot",), ("cpu_died_early",), "vcpu_offline",
         ("vCPU died during early boot",), (2,), cpu=2),
    Case("stuck", ("CPU2: is stuck in kernel",), ("cpu_stuck",), "vcpu_offline",
         ("vCPU is stuck in kernel",), (2,), cpu=2),
    Case("unclean", ("CPU2: may not have shut down cleanly",), ("cpu_unclean_shutdown",),
         "vcpu_offline", ("vCPU may not have shut down cleanly",), (2,), cpu=2),
    Case("unclean_hotplug", ("CPU2 may not have shut down cleanly: -22",),
         ("cpu_unclean_shutdown",), "vcpu_offline", ("vCPU may not have shut down cleanly",),
         (2,), cpu=2),
    Case("will_not_boot", ("CPU6: will not boot",), ("cpu_will_not_boot",), "vcpu_offline",
         ("vCPU will not boot",), (6,), cpu=6),
    Case("no_52bit", ("CPU1: is stuck in kernel", "CPU1: does not support 52-bit VAs"),
         ("cpu_stuck", "cpu_no_52bit_va"), "vcpu_offline",
         ("vCPU is stuck in kernel", "vCPU does not support 52-bit VAs"), (1,), cpu=1),
    Case("no_52bit_5_4_trailing_space", ("CPU1: does not support 52-bit VAs ",),
         ("cpu_no_52bit_va",), "vcpu_offline", ("vCPU does not support 52-bit VAs",), (1,),
         cpu=1),
    Case("no_granule", ("CPU1: does not support 64K granule",), ("cpu_no_granule",),
         "vcpu_offline", ("vCPU does not support the page granule",), (1,), cpu=1),
    Case("alive_state", ("CPU7 failed to report alive state",), ("cpu_failed_alive",),
         "vcpu_offline", ("vCPU failed to report alive state",), (7,), cpu=7),
    Case("unsupported_config", ("Kernel panic - not syncing: CPU3 detected unsupported "
                                "configuration",), ("panic",), "boot_failure",
         ("kernel panic: CPU detected unsupported configuration",), (3,), cpu=3,
         extra={"panic": "CPU3 detected unsupported configuration"}),
    Case("set_mode_is_harmless", ("psci: failed to set PC mode: -95",), ()),
    Case("smp_failed_to_stop_is_not_bringup", ("SMP: failed to stop secondary CPUs 0-15,17-127",),
         ()),
    # counts
    Case("brought_up", ("smp: Bringing up secondary CPUs ...",
                        "CPU1: Booted secondary processor 0x0000000001 [0x410fd034]",
                        "smp: Brought up 1 node, 2 CPUs", "SMP: Total of 2 processors activated."),
         (), extra={"cpus_brought_up": 2}),
    Case("brought_up_singular", ("smp: Brought up 1 node, 1 CPU",), (),
         extra={"cpus_brought_up": 1}),
    Case("brought_up_nodes", ("smp: Brought up 8 nodes, 128 CPUs",), (),
         extra={"cpus_brought_up": 128}),
    Case("brought_up_4_4", ("CPU1: Booted secondary processor [410fd033]", "Brought up 2 CPUs"),
         (), extra={"cpus_brought_up": 2}),
    Case("smp_total_only", ("SMP: Total of 4 processors activated.",), (),
         extra={"cpus_brought_up": 4}),
    # crashes and boot failures
    Case("kill_init", ("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
                       "---[ end Kernel panic - not syncing: Attempted to kill init! "
                       "exitcode=0x0000000b ]---"),
         ("panic",), "boot_failure", ("kernel panic: Attempted to kill init!",),
         extra={"panic": "Attempted to kill init! exitcode=0x0000000b"}),
    Case("panic_4_14_end", ("Kernel panic - not syncing: Fatal exception",
                            "---[ end Kernel panic - not syncing: Fatal exception"),
         ("panic",), "boot_failure", ("kernel panic: Fatal exception",),
         extra={"panic": "Fatal exception"}),
    Case("panic_end_only", ("---[ end Kernel panic - not syncing: Fatal exception ]---",),
         ("panic",), "boot_failure", ("kernel panic: Fatal exception",),
         extra={"panic": "Fatal exception"}),
    Case("kill_init_bare", ("Attempted to kill init! exitcode=0x00000009",), ("panic",),
         "boot_failure", ("kernel panic: Attempted to kill init!",)),
    Case("oops", ("Internal error: Oops: 96000004 [#1] PREEMPT SMP",), ("oops",), "ok",
         ("Internal error: Oops",)),
    Case("oops_6_1", ("Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP",), ("oops",),
         "ok", ("Internal error: Oops",)),
    Case("oops_6_17", ("Internal error: Oops: 0000000096000004 [#1]  SMP",), ("oops",), "ok",
         ("Internal error: Oops",)),
    Case("oops_bug", ("Internal error: Oops - BUG: 0 [#1] PREEMPT SMP",), ("oops",), "ok",
         ("Internal error: Oops - BUG",)),
    Case("null_deref", ("Unable to handle kernel NULL pointer dereference at virtual address "
                        "0000000000000008",), ("unable_to_handle",), "ok",
         ("Unable to handle kernel NULL pointer dereference",)),
    Case("paging", ("Unable to handle kernel paging request at virtual address ffff80001234",),
         ("unable_to_handle",), "ok", ("Unable to handle kernel paging request",)),
    Case("call_trace", ("Call trace:",), ("call_trace",)),
    Case("cut_here", ("------------[ cut here ]------------",), ("cut_here",)),
    Case("soft_lockup", ("watchdog: BUG: soft lockup - CPU#16 stuck for 23s! [migration/16:109]",),
         ("soft_lockup",), "ok", ("BUG: soft lockup",), cpu=16),
    Case("soft_lockup_old", ("BUG: soft lockup - CPU#2 stuck for 22s! [swapper/2:0]",),
         ("soft_lockup",), "ok", ("BUG: soft lockup",), cpu=2),
    Case("rcu_stall", ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",), ("rcu_stall",),
         "ok", ("INFO: rcu detected stall",)),
    Case("rcu_stall_4_14", ("INFO: rcu_sched detected stalls on CPUs/tasks:",), ("rcu_stall",),
         "ok", ("INFO: rcu detected stall",)),
    Case("rcu_self", ("INFO: rcu_sched self-detected stall on CPU",), ("rcu_stall",), "ok",
         ("INFO: rcu detected stall",)),
    Case("hung_task", ("INFO: task kworker/0:1:123 blocked for more than 120 seconds.",),
         ("hung_task",), "ok", ("INFO: task hung",)),
    Case("rootfs", ("VFS: Unable to mount root fs on unknown-block(0,0)",),
         ("rootfs_mount_failed",), "boot_failure", ("VFS: Unable to mount root fs",)),
    Case("rootfs_6_10", ('VFS: Unable to mount root fs on "/dev/vda9" or unknown-block(253,9)',),
         ("rootfs_mount_failed",), "boot_failure", ("VFS: Unable to mount root fs",)),
    Case("rootfs_panic", ("Kernel panic - not syncing: VFS: Unable to mount root fs on "
                          "unknown-block(0,0)",), ("panic",), "boot_failure",
         ("kernel panic: VFS: Unable to mount root fs",)),
    Case("warning", ("WARNING: CPU: 3 PID: 1 at kernel/smp.c:123 "
                     "smp_call_function_many+0x2a0/0x2e8",),
         ("warning",), "ok", ("WARNING in smp_call_function_many",)),
    Case("warning_6_19", ("WARNING: kernel/smp.c:123 at smp_call_function_many+0x2a0/0x2e8, "
                          "CPU#3: swapper/0/1",), ("warning",), "ok",
         ("WARNING in smp_call_function_many",)),
    Case("warning_4_4_no_func", ("WARNING: at /build/src/kernel/watchdog.c:352",), ("warning",),
         "ok", ("WARNING in kernel/watchdog.c",)),
    Case("lockdep", ("WARNING: suspicious RCU usage",), ("warning",), "ok",
         ("WARNING: suspicious RCU usage",)),
    Case("lockdep_4_4", ("[ INFO: suspicious RCU usage. ]",), ("warning",), "ok",
         ("WARNING: suspicious RCU usage",)),
    Case("kernel_bug", ("kernel BUG at mm/slub.c:4123!",), ("kernel_bug",), "ok",
         ("kernel BUG at mm/slub.c",)),
    Case("bug_generic", ("BUG: scheduling while atomic: swapper/0/0/0x00000002",), ("bug",), "ok",
         ("BUG: scheduling while atomic",)),
]


def _stamp(lines: tuple[str, ...], start: float = 1.0) -> list[str]:
    return [f"[{start + i * 0.001:12.6f}] {m}" for i, m in enumerate(lines)]


def _key(c: Classification) -> tuple[object, ...]:
    return (
        c.verdict, c.offline_cpus, c.panic, c.cpus_brought_up,
        tuple((p.cpu, p.errno) for p in c.psci_errors),
        tuple((s.kind, s.title, s.count) for s in c.signatures),
        tuple((f.kind, f.line, f.cpu, f.errno, f.text) for f in c.findings),
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_message(case: Case) -> None:
    c = classify("\n".join(_stamp(case.lines)) + "\n")
    assert tuple(f.kind for f in c.findings) == case.kinds
    assert c.verdict == case.verdict
    assert tuple(s.title for s in c.signatures) == case.titles
    assert c.offline_cpus == case.offline
    if case.kinds:
        assert c.findings[0].cpu == case.cpu
        assert c.findings[0].errno == case.errno
        assert c.findings[0].line == 1
        assert c.findings[0].text == case.lines[0].strip()
    for name, want in case.extra.items():
        got = getattr(c, name)
        if name == "psci_errors":
            got = tuple((p.cpu, p.errno) for p in got)
        assert got == want, name


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_prefix_reads_the_same(case: Case, prefix: str) -> None:
    stamped = _stamp(case.lines)
    plain = classify("\n".join(stamped))
    variant = classify("\n".join(PREFIXES[prefix](s) for s in stamped))
    assert _key(variant) == _key(plain)


def test_each_rules_cheap_key_is_in_everything_it_matches() -> None:
    """``match`` tests a rule's literal key before its regex: the key must never hide a
    match, over every case here and every line of the real logs."""
    from pathlib import Path

    from harness.classify.prefix import clean
    from harness.classify.rules import RULES

    data = Path(__file__).resolve().parent.parent / "data"
    messages = [m for case in CASES for m in case.lines]
    for log in sorted(data.glob("dmesg-*/*.log")):
        messages += [clean(line)[0] for line in log.read_text(errors="replace").splitlines()]
    hits = 0
    for rule in RULES:
        assert rule.key, rule.kind
        for m in messages:
            if rule.pattern.search(m):
                hits += 1
                assert rule.key in m, (rule.kind, rule.key, m)
    assert hits > 100
