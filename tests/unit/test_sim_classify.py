"""The simulated boots' texts go through the real classifier and come out as their
ground truth: verdict, offline CPU ids, PSCI -22 retries, panics."""

from __future__ import annotations

import pytest

from harness.classify import classify
from harness.model import Outcome
from harness.sim.model import Fate
from harness.sim.text import console, cpu_list, dmesg, online_cpus

RELEASES = ("4.18.0-147.5.1.el8_1.5es.11.aarch64", "4.19.90-17.ky10.aarch64",
            "4.14.0-115.el7a.aarch64", "5.10.0-60.18.0.50.oe2203.aarch64", "6.6.33")


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("vcpus", [2, 4, 8, 32])
@pytest.mark.parametrize("offline", [(), (1,), (3,), (1, 2), (5, 31)])
def test_dmesg_and_online_list_classify_to_the_truth(release: str, vcpus: int,
                                                     offline: tuple[int, ...]) -> None:
    offline = tuple(c for c in offline if c < vcpus)
    fate = Fate(Outcome.VCPU_OFFLINE if offline else Outcome.OK, offline_cpus=offline,
                entropy=vcpus)
    text = dmesg(release, vcpus, fate)
    online = cpu_list(online_cpus(vcpus, fate))
    c = classify(text, expected_cpus=vcpus, online=online)
    assert c.verdict == ("vcpu_offline" if offline else "ok")
    assert c.offline_cpus == offline
    assert c.cpus_brought_up == vcpus - len(offline)
    assert c.panic is None
    assert {(e.cpu, e.errno) for e in c.psci_errors} == {(cpu, -22) for cpu in offline}
    # dmesg alone (no online list) says the same
    assert classify(text, expected_cpus=vcpus).verdict == c.verdict


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("kind", [0, 1, 2])
def test_a_panicking_boot_console_is_a_boot_failure(release: str, kind: int) -> None:
    fate = Fate(Outcome.BOOT_FAILURE, offline_cpus=(3,) if kind == 1 else (),
                failure="panic", panic_kind=kind, entropy=kind)
    text = console(release, 8, fate)
    c = classify(text, expected_cpus=8)
    assert c.verdict == "boot_failure"
    assert c.panic  # the panic title


def test_a_silent_console_shows_no_login_and_no_panic() -> None:
    fate = Fate(Outcome.BOOT_FAILURE, failure="silent", entropy=1)
    text = console(RELEASES[0], 8, fate)
    assert "login:" not in text and "panic" not in text.lower()
    assert classify(text, expected_cpus=8).panic is None
