"""The rehearsal lab for real: the production path of the FT-2500 lab on this machine.

A remote libvirt host (``harness lab up``: a network namespace with its own sshd,
libvirtd and a dnsmasq DHCP network) reached only over ``qemu+ssh``; the Debian 12 arm64
distro image (``harness lab setup --distro``, built here when missing: tens of minutes
the first time, cached after) booted by UEFI on per-boot qcow2 overlay volumes with an
NVRAM copy; the guest's address learnt from libvirt's leases or the host's neighbour
table, SSH through the host as a jump host; host dmesg, QEMU log and versions over SSH.

The tests use their own rehearsal host instance (not the one ``harness lab up`` starts
for ``matrices/rehearsal.yaml``), so a rehearsal run and CI on this machine never meet.
Each distro boot takes 40-90 s under TCG: every boot here serves several assertions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.lab import doctor
from harness.lab.paths import layout
from harness.model import Outcome

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("rehearsal-lab")]

INSTANCE = 7  # 198.18.34.0/30 and 198.18.35.0/24: not the rehearsal matrix's host

if (_why := doctor.cannot_boot()) is not None:
    pytest.skip(_why, allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("the rehearsal host is a network namespace with its own daemons and the "
                "distro image is built with mmdebstrap --mode=root: both need root",
                allow_module_level=True)



def _closed_parent() -> str | None:
    """A folder above the lab cache that other users cannot enter (e.g. /root, 0700)."""
    from harness.lab.paths import cache_dir
    for d in [cache_dir(), *cache_dir().parents]:
        if d.exists() and not d.stat().st_mode & 0o001:
            return str(d)
    return None


if (_closed := _closed_parent()) is not None:
    # Known open defect (issue 20): from such a cache every boot on the rehearsal host was
    # an infra_error "Permission denied (as uid:999)" on its overlay, even with QEMU set
    # to run as root there. Run these tests with VMBH_CACHE in a folder others can enter.
    pytest.skip(f"the lab cache is under {_closed}, which the rehearsal host's libvirt "
                "cannot enter (known defect, issue 20): set VMBH_CACHE to a folder under "
                "one that others can traverse (e.g. /var/cache) to run these",
                allow_module_level=True)

LAB = """\
name: it-rehearsal
hosts:
{hosts}
guests:
  arm64:
    boot: {{image: "${{cache}}/distro/debian12-arm64.qcow2"}}
    ssh: {{key: "${{cache}}/keys/id_ed25519"}}
    memory_mib: 1024
  cloud:
    boot: {{image: "${{cache}}/distro/debian12-cloud-arm64.qcow2"}}
    ssh: {{key: "${{cache}}/keys/id_ed25519"}}
    memory_mib: 1024
ssh: {{known_hosts: "{known_hosts}", accept_new_host_keys: true}}
"""
HOST = """\
  {name}:
    uri: "{uri}"
    ssh: {{user: root, key: "${{cache}}/keys/id_ed25519", jump_to_guests: true}}
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: network, source: vmbh-guests, address_sources: {sources}}}
    storage_dir: /var/lib/libvirt/images/harness
"""
STALL = "    fault:\n      stall: {probability: 1.0, seconds: 600}\n"
MATRIX = """\
name: {name}
lab: lab.yaml
axes:
  host: [{host}]
  guest: [{guest}]
  vcpus: [2]
  reboot: [{reboot}]
boots: {boots}
memory_mib: 1024
timeouts: {{boot: 900, ssh: 60, command: 120, shutdown: 10}}
"""


@pytest.fixture(scope="module")
def rehearsal() -> Iterator[dict[str, Any]]:
    from harness.lab import distro, rehearsal
    from harness.lab.setup import setup

    lay = layout()
    setup(lay)
    man = distro.build(lay)  # cached: seconds; cold: tens of minutes (docs/lab-rehearsal.md)
    facts = rehearsal.up(lay, instance=INSTANCE)
    root = Path(tempfile.mkdtemp(prefix="vmbh-rh-", dir="/tmp"))
    hosts = "".join([
        HOST.format(name="clean", uri=facts["uri"], sources="[lease, arp]"),
        HOST.format(name="neigh", uri=facts["uri"], sources="[host_neigh]"),
        HOST.format(name="stall", uri=facts["uri"], sources="[lease, arp]") + STALL,
    ])
    (root / "lab.yaml").write_text(LAB.format(hosts=hosts, known_hosts=facts["known_hosts"]))
    user_known = Path.home() / ".ssh" / "known_hosts"
    before = user_known.read_bytes() if user_known.exists() else None
    try:
        yield {"root": root, "lay": lay, "manifest": man, "facts": facts,
               "user_known": (user_known, before)}
    finally:
        rehearsal.down(lay, instance=INSTANCE)
        shutil.rmtree(root, ignore_errors=True)


def _run(root: Path, name: str, host: str, guest: str, reboot: str = "cold",
         boots: int = 1, during: Any = None) -> Any:
    from harness.matrix import load_matrix
    from harness.runner import Runner, RunOptions
    from harness.store import Store

    mfile = root / f"{name}.yaml"
    mfile.write_text(MATRIX.format(name=name, host=host, guest=guest, reboot=reboot,
                                   boots=boots))
    summary = Runner(load_matrix(mfile), RunOptions(
        reports_dir=root / "reports", db=root / "results.db", write_reports=False)).run()
    with Store(summary.db) as store:
        boots_ = store.boots(summary.run_id)
        infra = store.infra_events(summary.run_id)
        counts = store.counts(summary.run_id)
    return summary, boots_, infra, counts


def _text(run_dir: Path, rel: str) -> str:
    return (run_dir / rel).read_text(encoding="utf-8", errors="replace")


def _host_backend(rh: dict[str, Any]) -> Any:
    from harness.backend.libvirt import LibvirtBackend
    from harness.inventory import load_lab

    return LibvirtBackend.for_host(load_lab(rh["root"] / "lab.yaml"), "clean")


def test_clean_cold_uefi_boot_with_every_cpu_and_all_host_evidence(
        rehearsal: dict[str, Any]) -> None:
    summary, boots, infra, _ = _run(rehearsal["root"], "clean", "clean", "arm64")
    assert infra == []
    (b,) = boots
    assert b.outcome is Outcome.OK, b.reason
    assert b.online_cpus == (0, 1) and b.offline_cpus == ()
    release = rehearsal["manifest"]["images"]["arm64"]["release"]
    assert b.kernel_release == release
    art = dict(b.artifacts)
    assert {"console", "dmesg", "qemu_log", "host_dmesg", "versions"} <= set(art)
    console = _text(summary.run_dir, art["console"])
    # UEFI firmware -> systemd-boot -> the kernel's EFI stub -> systemd -> sshd
    assert "EFI stub: Booting Linux Kernel" in console
    assert "Linux version" in console and "systemd" in console
    dmesg = _text(summary.run_dir, art["dmesg"])
    assert "smp: Brought up 1 node, 2 CPUs" in dmesg
    assert "starting up libvirt version" in _text(summary.run_dir, art["qemu_log"])
    # the host's kernel log (its first lines may have rotated out of the ring buffer)
    assert re.search(r"^\[\s*\d+\.\d+\] ", _text(summary.run_dir, art["host_dmesg"]), re.M)
    versions = dict(b.extra)["versions"]
    assert versions["guest_kernel"] == release
    assert versions["firmware"] == "/usr/share/AAVMF/AAVMF_CODE.fd"  # not Secure Boot's
    assert versions["address_source"] == "lease"
    for key in ("qemu", "libvirt", "host_kernel", "firmware_sha256"):
        assert versions.get(key), (key, versions)
    assert json.loads(_text(summary.run_dir, art["versions"])) == versions
    # nothing left on the host; libvirt's ssh transport kept out of ~/.ssh/known_hosts
    be = _host_backend(rehearsal)
    try:
        assert be.list_domains() == []
        assert [f for f in be.list_files("/var/lib/libvirt/images/harness")
                if f.startswith("hb-")] == []
    finally:
        be.close()
    path, before = rehearsal["user_known"]
    assert (path.read_bytes() if path.exists() else None) == before


def test_warm_reboots_with_the_address_from_the_host_neighbour_table(
        rehearsal: dict[str, Any]) -> None:
    _s, boots, infra, counts = _run(rehearsal["root"], "warm", "neigh", "cloud", "warm", 2)
    assert infra == []
    assert [b.outcome for b in boots] == [Outcome.OK, Outcome.OK], [b.reason for b in boots]
    assert list(counts) == ["neigh/cloud/vcpu2/reboot=warm"]
    ex = [dict(b.extra) for b in boots]
    assert ex[0]["domain"] == ex[1]["domain"]  # one domain, rebooted from inside
    assert all(e["versions"]["address_source"] == "host_neigh" for e in ex)
    assert all(b.kernel_release == rehearsal["manifest"]["images"]["cloud-arm64"]["release"]
               for b in boots)
    assert "warm" in boots[1].cell_id


def test_reset_reboots_are_recorded_as_such(rehearsal: dict[str, Any]) -> None:
    _s, boots, infra, counts = _run(rehearsal["root"], "reset", "clean", "arm64", "reset", 2)
    assert infra == []
    assert [b.outcome for b in boots] == [Outcome.OK, Outcome.OK], [b.reason for b in boots]
    assert list(counts) == ["clean/arm64/vcpu2/reboot=reset"]
    assert dict(boots[0].extra)["domain"] == dict(boots[1].extra)["domain"]
    assert all(b.online_cpus == (0, 1) for b in boots)


def test_stall_on_the_remote_host_is_vcpu_offline_with_its_cpu(
        rehearsal: dict[str, Any]) -> None:
    summary, boots, infra, _ = _run(rehearsal["root"], "stall", "stall", "arm64")
    assert infra == []
    (b,) = boots
    hook = dict(b.extra)["hook"]
    assert hook["stall"] == 1 and hook["stall_method"] in ("cgroup1", "cgroup2")
    assert b.outcome is Outcome.VCPU_OFFLINE, b.reason
    assert b.offline_cpus == (1,) and b.online_cpus == (0,)
    dmesg = _text(summary.run_dir, dict(b.artifacts)["dmesg"])
    assert "CPU1: failed to come online" in dmesg
    # the injector left nothing on the host: no cgroup of ours, QEMU gone
    assert not list(Path("/sys/fs/cgroup").glob("*/vmbh-stall-*"))
    assert not Path(f"/proc/{hook['stall_thread']}").exists()


def _kill_libvirtd_once_a_guest_runs(stop: threading.Event) -> None:
    from harness.lab import rehearsal

    hl = rehearsal.host_layout(layout(), INSTANCE)
    while not stop.is_set():
        if rehearsal.daemon_pid(hl, "qemu-system-aar") is not None:
            pid = rehearsal.daemon_pid(hl, "libvirtd")
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.5)


def test_host_unreachable_mid_run_is_infra_error_and_the_host_set_aside(
        rehearsal: dict[str, Any]) -> None:
    from harness.lab import rehearsal as rh

    stop = threading.Event()
    killer = threading.Thread(target=_kill_libvirtd_once_a_guest_runs, args=(stop,))
    killer.start()
    try:
        summary, boots, infra, counts = _run(rehearsal["root"], "down", "clean", "arm64",
                                             boots=2)
    finally:
        stop.set()
        killer.join()
        rh.down(rehearsal["lay"], instance=INSTANCE)  # a fresh host for the next test
        rh.up(rehearsal["lay"], instance=INSTANCE)
    c = counts["clean/arm64/vcpu2/reboot=cold"]
    assert c.infra_error >= 1 and c.n == 0 and c.boot_failure == 0 and c.vcpu_offline == 0
    assert all(b.outcome is Outcome.INFRA_ERROR for b in boots)
    assert infra
    assert "clean" in summary.set_aside
    assert summary.status == "incomplete"


def test_gc_removes_what_a_killed_run_left_on_the_host(rehearsal: dict[str, Any]) -> None:
    root = rehearsal["root"]
    (root / "gc.yaml").write_text(MATRIX.format(name="gc", host="clean", guest="arm64",
                                                reboot="cold", boots=1))
    harness = [sys.executable, "-m", "harness"]
    proc = subprocess.Popen([*harness, "run", str(root / "gc.yaml"), "--no-report", "-q",
                             "--reports-dir", str(root / "gc-reports")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    be = _host_backend(rehearsal)
    try:
        deadline = time.monotonic() + 120
        while not be.list_domains() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert be.list_domains(), "the run never defined its domain"
        time.sleep(2)  # started, overlay and NVRAM in place
        proc.kill()
        proc.wait()
        left = be.list_domains()
        assert left
        files = [f for f in be.list_files("/var/lib/libvirt/images/harness")
                 if f.startswith("hb-")]
        assert any(f.endswith(".qcow2") for f in files)
        out = subprocess.run([*harness, "gc", "--lab", str(root / "lab.yaml")],
                             capture_output=True, text=True, check=False, timeout=120)
        assert out.returncode == 0, out.stderr
        assert left[0] in out.stdout
        assert be.list_domains() == []
        assert [f for f in be.list_files("/var/lib/libvirt/images/harness")
                if f.startswith("hb-")] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        be.close()
