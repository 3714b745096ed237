"""Pure parts of the boot loop: the console watcher and the outcome rules."""

from __future__ import annotations

from harness.classify.result import Classification
from harness.collect.console import watch
from harness.model import Outcome
from harness.outcome import decide, durations


def test_console_watch_sees_kernel_panic_and_reboot_loop() -> None:
    assert watch("").lines == 0 and watch("").failed is None
    s = watch("UEFI firmware\n\nBooting Linux on physical CPU 0x0\n[ 0.1] Linux version 6.1\n")
    assert s.lines == 3 and s.kernel_started and s.kernel_starts == 1 and s.failed is None
    panic = watch("[    1.5] Kernel panic - not syncing: Attempted to kill init! "
                  "exitcode=0x0000000b\n---[ end Kernel panic - not syncing: Attempted to "
                  "kill init! exitcode=0x0000000b ]---\n")
    assert panic.panic == "Attempted to kill init! exitcode=0x0000000b"
    assert panic.failed == "kernel panic: Attempted to kill init! exitcode=0x0000000b"
    loop = watch("Booting Linux on physical CPU 0x0\nreset\n" * 3)
    assert loop.kernel_starts == 3 and loop.reboot_loop
    assert loop.failed == "reboot loop: the kernel started 3 times"
    twice = watch("Booting Linux on physical CPU 0x0\n" * 2)
    assert not twice.reboot_loop and twice.failed is None
    # "Linux version" alone (no banner, e.g. a quiet console) still means the kernel started
    assert watch("[    0.0] Linux version 4.18.0\n").kernel_starts == 1


def test_outcome_order_infra_then_failure_then_online() -> None:
    infra = decide(expected_vcpus=4, infra="ssh_auth: refused", failure="no SSH",
                   online="0-3")
    assert infra.outcome is Outcome.INFRA_ERROR and infra.reason == "ssh_auth: refused"
    fail = decide(expected_vcpus=4, failure="no SSH within 300s")
    assert fail.outcome is Outcome.BOOT_FAILURE and fail.reason == "no SSH within 300s"
    cls = Classification(panic="VFS: Unable to mount root fs on unknown-block(0,0)")
    with_panic = decide(expected_vcpus=4, failure="no SSH within 300s", classification=cls)
    assert with_panic.reason == ("kernel panic: VFS: Unable to mount root fs on "
                                 "unknown-block(0,0) (no SSH within 300s)")
    ok = decide(expected_vcpus=4, online="0-3\n", present="0-3\n")
    assert ok.outcome is Outcome.OK and ok.online_cpus == (0, 1, 2, 3)


def test_offline_cpus_and_present_count() -> None:
    d = decide(expected_vcpus=8, online="0-2,4,6-7\n", present="0-7\n")
    assert d.outcome is Outcome.VCPU_OFFLINE and d.offline_cpus == (3, 5)
    assert d.reason == "CPU 3,5 offline (6/8 online)"
    fewer = decide(expected_vcpus=8, online="0-5\n", present="0-5\n")
    assert fewer.offline_cpus == (6, 7)
    assert fewer.reason == "CPU 6-7 offline (6/8 online); only 6 present"
    extra = decide(expected_vcpus=2, online="0-3")  # more online than defined: not a failure
    assert extra.outcome is Outcome.OK


def test_unreadable_online_list_is_a_boot_failure() -> None:
    d = decide(expected_vcpus=2, online="cat: /sys/devices/system/cpu/online: No such file")
    assert d.outcome is Outcome.BOOT_FAILURE
    assert d.reason == ("collection failed: online: not a CPU list: "
                        "'cat: /sys/devices/system/cpu/online: No such file'")


def test_durations_between_recorded_events() -> None:
    t = {"define": 100.0, "start": 101.0, "first_console": 103.5, "ssh_up": 121.0,
         "collected": 124.25, "stopped": 125.0}
    assert durations(t) == {"define_to_start": 1.0, "start_to_first_console": 2.5,
                            "start_to_ssh": 20.0, "collect": 3.25, "total": 25.0}
    assert durations({"define": 1.0, "start": 2.0}) == {"define_to_start": 1.0}
