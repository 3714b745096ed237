"""Golden tests: every real log and every seed excerpt against its careful reader's labels,
and the whole ``--json`` object against a reviewed snapshot (``UPDATE_GOLDEN=1`` rewrites)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.classify import classify, classify_lines, format_cpu_list
from harness.classify.render import to_dict

DATA = Path(__file__).resolve().parent.parent / "data"
LOGS = sorted([*DATA.glob("dmesg-real/*.log"), *DATA.glob("dmesg-seed/*.log")])
GOLDEN = DATA / "dmesg-golden"
# the fixtures whose readers know how many vCPUs the domain had
WITH_TOTAL = [p for p in LOGS
              if json.loads(p.with_suffix(".json").read_text())["labels"].get(
                  "total_cpus_expected") is not None]


def _meta(log: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(log.with_suffix(".json").read_text())
    return meta


def _text(log: Path) -> str:
    return log.read_bytes().decode("utf-8", errors="replace")


def test_every_fixture_is_here() -> None:
    assert len(list(DATA.glob("dmesg-real/*.log"))) == 6
    assert len(list(DATA.glob("dmesg-seed/*.log"))) == 3
    for log in LOGS:
        assert log.with_suffix(".json").is_file(), log


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_labels(log: Path) -> None:
    labels = _meta(log)["labels"]
    expected = labels.get("total_cpus_expected")
    c = classify(_text(log), expected_cpus=expected)
    failed = set(labels["failed_cpu_ids"])
    if "failed_cpu_ids_note" in labels:  # the excerpt shows only some of them
        assert set(c.offline_cpus) <= failed and c.offline_cpus
    else:
        assert set(c.offline_cpus) == failed
    assert bool(c.psci_errors) == labels["psci_errors"]
    if "psci_error_list" in labels:
        assert [[p.cpu, p.errno] for p in c.psci_errors] == labels["psci_error_list"]
    if labels["cpus_brought_up"] is not None and "cpus_brought_up_note" not in labels:
        assert c.cpus_brought_up == labels["cpus_brought_up"]
    if labels["boot_failed"] is not None:
        assert (c.verdict == "boot_failure") == labels["boot_failed"]
    assert (c.panic is not None) == labels["panicked"]
    if labels.get("panic_reason"):
        assert c.panic and c.panic in labels["panic_reason"]
    if not labels["boot_failed"]:
        assert c.verdict == ("vcpu_offline" if failed else "ok")


@pytest.mark.parametrize("log", WITH_TOTAL, ids=lambda p: p.stem)
def test_cross_check_with_sysfs_matches_labels(log: Path) -> None:
    """With the domain's vCPU count and the sysfs list, every failed CPU is found, even
    those beyond a truncated excerpt."""
    labels = _meta(log)["labels"]
    total = labels["total_cpus_expected"]
    online = format_cpu_list(set(range(total)) - set(labels["failed_cpu_ids"]))
    c = classify(_text(log), expected_cpus=total, online=online)
    assert list(c.offline_cpus) == labels["failed_cpu_ids"]


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_kernel_release(log: Path) -> None:
    seen = _meta(log).get("auto_observed", {}).get("linux_version_lines", [])
    c = classify(_text(log))
    assert [b.kernel_release for b in c.boots if b.kernel_release] == seen
    assert len(c.boots) == 1


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_streaming_equals_whole_text(log: Path) -> None:
    with log.open("rb") as f:
        streamed = classify_lines(raw.decode("utf-8", "replace") for raw in f)
    assert streamed == classify(_text(log))


def test_markers_the_readers_saw() -> None:
    lava = classify(_text(DATA / "dmesg-real/lava-arm64-4.4-8cpu-bug-oops.log"))
    titles = {s.title: s.count for s in lava.signatures}
    assert titles["Internal error: Oops - BUG"] == 2
    assert titles["kernel BUG at kernel/sched/walt.c"] == 1
    assert titles["WARNING: suspicious RCU usage"] == 1
    phy = classify(_text(DATA / "dmesg-real/phytium-s2500-host-el8-4.18-softlockup-panic.log"))
    titles = {s.title: s.count for s in phy.signatures}
    assert titles["BUG: soft lockup"] == 1
    assert titles["kernel panic: softlockup: hung tasks"] == 1
    assert titles["WARNING in dev_watchdog"] == 1
    assert phy.verdict == "ok"  # a runtime panic after 7.5 days of uptime is not a boot
    clean = classify(_text(DATA / "dmesg-real/kernelci-mt8183-juniper-6.6.33-clean.log"))
    assert clean.signatures == () and clean.verdict == "ok"
    b = clean.boots[0]
    assert (b.bringup_start_s, b.bringup_end_s) == (0.00511, 0.011336)
    assert b.slowest_cpu == 4


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_golden_json(log: Path) -> None:
    labels = _meta(log)["labels"]
    got = to_dict(classify(_text(log), expected_cpus=labels.get("total_cpus_expected")),
                  log.name)
    path = GOLDEN / f"{log.stem}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(path.read_text())
