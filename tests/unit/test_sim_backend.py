"""The simulated backend and connector: protocols, text per fate, infrastructure faults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.backend.base import BootRequest, Domain, GuestNotReady
from harness.backend.sim import SimDomain, SimLab
from harness.collect import commands
from harness.errors import BackendError, InfraError
from harness.inventory import Lab, load_lab
from harness.model import Cell, Outcome
from harness.sim.clock import SimClock
from harness.sim.text import cpu_list, dmesg, kernel

LAB = """\
name: t
hosts:
  a: {uri: "sim:///", attributes: {numa_patch: false}}
  b: {uri: "sim:///?seed=99", attributes: {numa_patch: true}}
guests:
  el8: {kernel_release: 4.18.0-147.5.1.el8_1.5es.11.aarch64}
  new: {kernel_release: 6.6.33}
  old: {kernel_release: 4.14.0-115.el7a.aarch64}
sim:
  seed: 7
  rules:
    - match: {numa_patch: false}
      vcpu_offline: 0.6
      boot_failure: 0.3
      offline_cpus: [1, 3]
  infra_error: 0.0
  hosts:
    b: {gone_after: 5}
"""


def make_lab(tmp_path: Path, text: str = LAB) -> Lab:
    f = tmp_path / "lab.yaml"
    f.write_text(text)
    return load_lab(f)


def request(lab: Lab, host: str, guest: str, vcpus: int, index: int) -> BootRequest:
    cell = Cell(id=f"{host}/{guest}/vcpu{vcpus}", matrix="m", host=host, guest=guest,
                vcpus=vcpus, boots=100)
    return BootRequest(run_id="r", cell=cell, host_name=host, host=lab.host(host),
                       guest_name=guest, guest=lab.guest(guest),
                       domain_name=f"hb-r-{cell.safe_id}-{index}", boot_index=index,
                       workdir=Path("/nonexistent"))


def boot(sim: SimLab, req: BootRequest) -> tuple[Domain, dict[str, str] | None]:
    """Drive one boot as the boot loop does: define, start, log in until the boot
    timeout, run the fixed commands."""
    dom = sim.backend_for(req.host_name).define(req)
    try:
        dom.start()
    except BackendError:
        dom.undefine()  # as the boot loop does: the retry defines the same name again
        raise
    deadline = sim.clock.now() + req.cell.timeouts.boot
    while sim.clock.now() < deadline:
        try:
            chan = sim.connector_for(req.host_name, req.guest_name).connect(dom, 10.0)
        except GuestNotReady:
            continue
        out = {name: chan.run(cmd, 60).stdout for name, cmd in commands.GUEST_COLLECT}
        return dom, out
    return dom, None


def test_boots_answer_the_fixed_commands_consistently_with_their_fate(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    sim = SimLab(lab, SimClock(0))
    seen = set()
    for i in range(60):
        req = request(lab, "a", "el8", 8, i)
        truth = sim.truth()("a", "el8", 8, i)
        dom, out = boot(sim, req)
        assert isinstance(dom, SimDomain) and isinstance(dom, Domain)
        seen.add(truth)
        if truth is Outcome.BOOT_FAILURE:
            assert out is None  # never answered within the boot timeout
            console = dom.console_text()
            assert ("Kernel panic - not syncing" in console) == (dom.fate.failure == "panic")
            assert "login:" not in console
            continue
        assert out is not None
        offline = dom.fate.offline_cpus
        online = [c for c in range(8) if c not in offline]
        assert out["online"].strip() == cpu_list(online)
        assert out["present"].strip() == "0-7"
        assert out["nproc"].strip() == str(len(online))
        assert out["uname_r"].strip() == "4.18.0-147.5.1.el8_1.5es.11.aarch64"
        assert f"smp: Brought up 1 node, {len(online)} CPUs" in out["dmesg"]
        failed = {int(m) for m in re.findall(r"CPU(\d+): failed to come online", out["dmesg"])}
        assert failed == set(offline)
        psci = {int(m) for m in re.findall(r"psci: failed to boot CPU(\d+) \(-22\)",
                                           out["dmesg"])}
        assert psci == set(offline)
        assert (truth is Outcome.VCPU_OFFLINE) == bool(offline)
        assert "login:" in dom.console_text()
    assert seen == {Outcome.OK, Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE}


def test_the_clock_advances_by_boot_durations_without_waiting(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    clock = SimClock(0)
    sim = SimLab(lab, clock)
    t0 = clock.now()
    dom, out = boot(sim, request(lab, "b", "new", 4, 0))
    assert out is not None
    assert isinstance(dom, SimDomain)
    assert clock.now() - t0 == pytest.approx(dom.fate.boot_seconds)


def test_kernel_wording_follows_the_release() -> None:
    from harness.sim.model import Fate

    f = Fate(Outcome.VCPU_OFFLINE, offline_cpus=(2,), entropy=1)
    el8 = dmesg("4.18.0-147.el8.aarch64", 4, f)
    assert "CPU1: Booted secondary processor 0x0000000001 [0x700f8620]" in el8
    t_fail = float(re.search(r"\[\s*([\d.]+)\] CPU2: failed to come online", el8).group(1))  # type: ignore[union-attr]
    assert t_fail > 5.0  # the 5 s backport
    old = dmesg("4.14.0-115.el7a.aarch64", 4, f)
    assert "CPU1: Booted secondary processor [700f8620]" in old
    t_old = float(re.search(r"\[\s*([\d.]+)\] CPU2: failed to come online", old).group(1))  # type: ignore[union-attr]
    assert 1.0 < t_old < 2.0
    assert kernel("6.6.33").bringup_timeout_s == 5.0 and kernel("4.19.90").bringup_timeout_s == 1.0


def test_same_seed_same_texts_uri_seed_overrides(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    a1 = [boot(SimLab(lab, SimClock(0)), request(lab, "a", "el8", 16, i))[1] for i in range(10)]
    a2 = [boot(SimLab(lab, SimClock(0)), request(lab, "a", "el8", 16, i))[1] for i in range(10)]
    assert a1 == a2
    assert SimLab(lab, SimClock(0)).backend_for("b").seed == 99
    assert SimLab(lab, SimClock(0)).backend_for("a").seed == 7


def test_a_host_that_goes_away_raises_backend_errors(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    sim = SimLab(lab, SimClock(0))
    for i in range(5):
        assert boot(sim, request(lab, "b", "new", 4, i))[1] is not None
    with pytest.raises(BackendError) as exc:
        boot(sim, request(lab, "b", "new", 4, 5))
    assert exc.value.reason == "host_gone"
    assert isinstance(exc.value, InfraError)
    with pytest.raises(BackendError):
        sim.backend_for("b").list_domains()


def test_ssh_refused_and_slow_hosts_are_infrastructure_errors(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, LAB.replace("b: {gone_after: 5}", "b: {ssh_refused: 1.0}\n"
                                         "    a: {slow: 1.0}"))
    sim = SimLab(lab, SimClock(0))
    with pytest.raises(InfraError) as exc:
        boot(sim, request(lab, "b", "new", 4, 0))
    assert exc.value.reason == "ssh_auth"
    with pytest.raises(BackendError) as exc2:
        boot(sim, request(lab, "a", "new", 4, 0))
    assert exc2.value.reason == "host_slow"


def test_infra_error_retry_gets_a_new_draw(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, LAB.replace("infra_error: 0.0", "infra_error: 0.5"))
    sim = SimLab(lab, SimClock(0))
    errors = 0
    for i in range(40):
        req = request(lab, "a", "new", 4, i)
        for _ in range(10):  # as the boot loop retries the same index
            try:
                boot(sim, req)
                break
            except BackendError as exc:
                assert exc.reason == "libvirt"
                errors += 1
        else:
            pytest.fail("retries never succeed")
    assert errors > 10
