"""Boots in one text, cross-checks with the domain, timing, bounded findings, odd lines."""

from __future__ import annotations

import pytest

from harness.classify import classify, classify_lines
from harness.classify.dmesg import BOOT_WINDOW_S, MAX_FINDINGS_PER_KIND
from harness.classify.synth import BootSpec, boot_lines


def _text(*specs: BootSpec, between: str = "") -> str:
    parts = ["\n".join(boot_lines(s)) for s in specs]
    return ("\n" + between + "\n" if between else "\n").join(parts) + "\n"


def test_several_boots_in_one_text() -> None:
    text = _text(BootSpec(cpus=8, failed=(3,)), BootSpec(cpus=8), BootSpec(cpus=8, failed=(5,)),
                 between="U-Boot 2023.01\nHit any key to stop autoboot:  0")
    c = classify(text)
    assert [b.verdict for b in c.boots] == ["vcpu_offline", "ok", "vcpu_offline"]
    assert [b.offline_cpus for b in c.boots] == [(3,), (), (5,)]
    assert c.offline_cpus == (3, 5)
    assert c.verdict == "vcpu_offline"
    assert c.boots[0].first_line == 1
    assert text.splitlines()[c.boots[1].first_line - 1].endswith(
        "Booting Linux on physical CPU 0x0000000000 [0x700f8620]")
    sig = {s.title: s.count for s in c.signatures}
    assert sig["vCPU failed to come online"] == 2


def test_old_kernels_start_a_boot_at_linux_version() -> None:
    c = classify(_text(BootSpec(release="4.4.89", cpus=4), BootSpec(release="4.4.89", cpus=4,
                                                                       failed=(2,))))
    assert len(c.boots) == 2 and c.boots[1].offline_cpus == (2,)
    assert c.boots[0].kernel_release == "4.4.89"


def test_worst_verdict_and_first_panic() -> None:
    c = classify(_text(BootSpec(panic="Fatal exception"), BootSpec(failed=(1,)),
                       BootSpec(panic="Attempted to kill init! exitcode=0x0000000b")))
    assert c.verdict == "boot_failure" and c.panic == "Fatal exception"
    assert c.last_boot is not None and c.last_boot.verdict == "boot_failure"


def test_firmware_noise_before_the_kernel_is_not_a_boot() -> None:
    c = classify("BL31: v2.6\nWARNING: region 0:\nCPU0: stack: 0000 - 1000\n" + _text(BootSpec()))
    assert len(c.boots) == 1 and c.boots[0].first_line == 4
    assert c.signatures == ()


def test_cpu_that_boots_later_is_online() -> None:
    text = ("[ 1.0] CPU3: failed to come online\n[ 1.1] CPU3: failed in unknown state : 0x0\n"
            "[60.0] CPU3: Booted secondary processor 0x0000000003 [0x410fd034]\n")
    c = classify(text)
    assert c.offline_cpus == () and c.verdict == "ok"
    assert {s.title for s in c.signatures} == {"vCPU failed to come online",
                                               "vCPU failed in unknown state"}


def test_sysfs_finds_cpus_dmesg_is_silent_about() -> None:
    c = classify("", expected_cpus=8, online="0-2,4-7\n")
    assert c.offline_cpus == (3,) and c.verdict == "vcpu_offline"
    assert [s.kind for s in c.signatures] == ["cpus_missing"]


def test_sysfs_is_authoritative_over_dmesg() -> None:
    c = classify("[ 8.1] CPU3: failed to come online\n", expected_cpus=4, online="0-3")
    assert c.offline_cpus == () and c.verdict == "ok"
    assert c.findings[0].kind == "cpu_failed_online"


def test_online_without_expected_counts_holes() -> None:
    assert classify("", online="0-1,3").offline_cpus == (2,)
    assert classify("[1.0] CPU5: failed to come online", online="0-3").offline_cpus == (5,)


def test_online_list_is_read_after_the_last_boot_only() -> None:
    c = classify(_text(BootSpec(cpus=4, failed=(1,)), BootSpec(cpus=4)), expected_cpus=4,
                 online="0-3")
    assert [b.offline_cpus for b in c.boots] == [(1,), ()]


def test_count_below_expected_names_the_missing_cpus() -> None:
    text = ("[0.01] smp: Bringing up secondary CPUs ...\n"
            "[0.02] CPU1: Booted secondary processor 0x0000000001 [0x410fd034]\n"
            "[0.03] CPU2: Booted secondary processor 0x0000000002 [0x410fd034]\n"
            "[0.04] smp: Brought up 1 node, 3 CPUs\n")
    c = classify(text, expected_cpus=4)
    assert c.offline_cpus == (3,) and c.verdict == "vcpu_offline"
    assert classify(text, expected_cpus=3).verdict == "ok"
    assert classify(text).verdict == "ok"


def test_count_below_expected_without_ids_is_still_offline() -> None:
    c = classify("[0.04] smp: Brought up 1 node, 6 CPUs\n", expected_cpus=8)
    assert c.verdict == "vcpu_offline" and c.offline_cpus == ()
    assert [s.title for s in c.signatures] == ["vCPU missing without a kernel message"]


def test_bad_arguments_say_what() -> None:
    with pytest.raises(ValueError, match="'x'"):
        classify("", online="0,x")
    with pytest.raises(ValueError, match="expected_cpus"):
        classify("", expected_cpus=-1)


def test_panic_after_the_boot_window_is_a_runtime_crash() -> None:
    late = f"[{BOOT_WINDOW_S + 100:12.6f}] Kernel panic - not syncing: softlockup: hung tasks\n"
    c = classify(_text(BootSpec()) + late)
    assert c.panic == "softlockup: hung tasks" and c.verdict == "ok"
    assert classify(late.split("] ", 1)[1]).verdict == "boot_failure"  # no uptime: counts


def test_bringup_latency_and_slowest_cpu() -> None:
    text = ("[0.100000] smp: Bringing up secondary CPUs ...\n"
            "[0.110000] CPU1: Booted secondary processor 0x0000000001 [0x410fd034]\n"
            "[4.610000] CPU2: Booted secondary processor 0x0000000002 [0x410fd034]\n"
            "[4.620000] CPU3: Booted secondary processor 0x0000000003 [0x410fd034]\n"
            "[4.630000] smp: Brought up 1 node, 4 CPUs\n"
            "[61.00000] CPU1: Booted secondary processor 0x0000000001 [0x410fd034]\n")
    b = classify(text).boots[0]
    assert (b.bringup_start_s, b.bringup_end_s) == (0.1, 4.62)
    assert b.slowest_cpu == 2 and b.slowest_cpu_s == pytest.approx(4.5)


def test_latency_counts_a_failed_cpu_as_a_step() -> None:
    spec = BootSpec(release="5.10.0", cpus=4, failed=(2,), per_cpu_s=0.002)
    b = classify(_text(spec)).boots[0]
    assert b.slowest_cpu in (1, 3) and b.slowest_cpu_s is not None and b.slowest_cpu_s < 0.01
    assert b.bringup_end_s is not None and b.bringup_start_s is not None
    assert b.bringup_end_s - b.bringup_start_s > 5.0  # the 5 s timeout of CPU2 is inside


def test_findings_are_capped_but_counted() -> None:
    lines = (f"[{i:6d}.000000] CPU{i % 7 + 1}: failed to boot: -22" for i in range(5000))
    c = classify_lines(lines)
    assert len(c.boots[0].findings) == MAX_FINDINGS_PER_KIND
    assert c.signatures[0].count == 5000
    assert c.offline_cpus == tuple(range(1, 8))


def test_interleaved_elided_truncated_and_crlf_lines() -> None:
    text = ("[  OK  [0[    8.124952] CPU3: failed to come online\r\n"
            "...\r\n"
            "[...]\r\n"
            "Mounted Configur[    8.508579] psci: failed to boot CPU4 (-22)\r\n"
            "[    3.045474] CPU\r\n"
            "[    9.1] CPU5: failed to come onl\r\n")
    c = classify(text)
    assert c.offline_cpus == (3, 4)
    assert [(f.line, f.text) for f in c.findings] == [
        (1, "CPU3: failed to come online"), (4, "psci: failed to boot CPU4 (-22)")]


def test_userspace_echo_of_a_psci_mode_message_is_harmless() -> None:
    c = classify("[0.0] psci: failed to set PC mode: -95\n[0.0] psci: failed to set OSI mode: -1")
    assert c.findings == () and c.verdict == "ok"


def test_pathological_lines_are_cut_not_choked_on() -> None:
    """Lines are cut at MAX_LINE before any regex (printk lines are ~1 KiB at most)."""
    from harness.classify.prefix import MAX_LINE, clean

    assert len(clean("Unable to handle kernel " * 20000)[0]) <= MAX_LINE
    line = "Unable to handle kernel " * 20000 + "\n" + "Internal error: " + ": a" * 30000
    c = classify(line + "\n[ 1.0] CPU1: failed to come online\n")
    assert c.offline_cpus == (1,) and [f.kind for f in c.findings] == ["cpu_failed_online"]


def test_bare_carriage_returns_keep_the_kernel_write() -> None:
    text = ("Loading 10%\rLoading 50%\r[ 1.0] CPU3: failed to come online\r\n"
            "[ 1.1] CPU4: failed to come online\r[  OK  ] Started foo.service\n"
            "[ 1.2] CPU5: Booted secondary processor 0x5 [0x1]\rLoading 90%\n")
    c = classify(text)
    assert c.offline_cpus == (3, 4)
    assert [f.text for f in c.findings] == ["CPU3: failed to come online",
                                            "CPU4: failed to come online"]
