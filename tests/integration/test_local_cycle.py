"""Root-cause instruments on the local lab, for real (QEMU TCG through libvirt's embedded
QEMU driver): CPU cycle mode, the seed's second phase, per-vCPU host timing, placement.

One run of two pinned cpu-cycle cells (2 boots, 8 trials):

- ``clean``: every trial ok, each vCPU thread's affinity what ``vcpupin`` asked for, the
  guest memory bound to node 0 (``numatune strict:0``), the cell's XML valid;
- ``late``: the last secondary vCPU frozen until the guest gives up on it, then thawed
  (the seed's first phase: ``CPUn: failed to come online``); the trials that online it again
  meet PSCI's "already on" (``psci: failed to boot CPUn (-22)``, the second phase), with
  the ``psci_already_on`` signature and a link to the boot's failure of the same CPU; the
  frozen vCPU has the largest host delay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_lab_root import local_lab_root

from harness.lab import doctor
from harness.model import Outcome

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local-lab")]

if (_why := doctor.cannot_boot()) is not None:
    pytest.skip(_why, allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("the stall injector writes cgroup files of QEMU's threads: it needs root",
                allow_module_level=True)

LAB = """\
name: it-cycle
hosts:
  clean:
    uri: qemu:///embed?root=${{cache}}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
  late:
    uri: qemu:///embed?root=${{cache}}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
    fault:
      stall: {{probability: 1.0, seconds: 600, thaw_after_failure: true}}
guests:
  arm64:
    boot:
      kernel: ${{cache}}/guests/arm64/vmlinuz
      initrd: ${{cache}}/guests/arm64/initrd-ssh.cpio
      cmdline: console=ttyAMA0 earlycon
    ssh:
      key: ${{cache}}/keys/id_ed25519
ssh: {{accept_new_host_keys: true}}
"""

MATRIX = """\
name: cycle
lab: lab.yaml
axes:
  host: [clean, late]
  guest: [arm64]
  vcpus: [3]
  vcpupin: ['rr:0-1']
  emulatorpin: ['0']
  numatune: ['strict:0']
boots: 1
reboot: cpu-cycle
cycles: 2
memory_mib: 512
timeouts: {boot: 180, ssh: 5, command: 60, shutdown: 5}
"""


@pytest.fixture(scope="module")
def run() -> Iterator[dict[str, Any]]:
    from harness.matrix import load_matrix
    from harness.report.build import build_view
    from harness.runner import Runner, RunOptions
    from harness.store import Store

    with local_lab_root("vmbh17-") as root:
        (root / "lab.yaml").write_text(LAB.format(root=root))
        (root / "m.yaml").write_text(MATRIX)
        matrix = load_matrix(root / "m.yaml")
        summary = Runner(matrix, RunOptions(reports_dir=root / "reports", db=root / "r.db",
                                            write_reports=False)).run()
        with Store(summary.db) as store:
            rows = store.boots(summary.run_id)
            data = store.load_run(summary.run_id)
        yield {"root": root, "matrix": matrix, "summary": summary, "rows": rows,
               "view": build_view(data, artifacts_root=summary.run_dir)}


def _cell(run: dict[str, Any], host: str) -> list[Any]:
    return sorted((b for b in run["rows"] if b.host == host), key=lambda b: b.index)


def _hostv(b: Any) -> dict[str, Any]:
    hv: dict[str, Any] = dict(b.extra)["hook"]["host_vcpus"]
    return hv


def test_clean_host_cycles_record_only_ok_trials_on_pinned_vcpus(run: dict[str, Any]
                                                                  ) -> None:
    boot, *trials = _cell(run, "clean")
    assert boot.index == 0 and boot.outcome is Outcome.OK, boot.reason
    assert len(trials) == 2 * 2  # 2 cycles x 2 secondary CPUs
    assert [b.index for b in trials] == [1, 2, 3, 4]
    for t in trials:
        trial = dict(t.extra)["trial"]
        assert t.outcome is Outcome.OK, t.reason
        assert trial["online_exit"] == 0 and trial["cpu"] in (1, 2) and trial["boot"] == 0
        assert t.online_cpus == (0, 1, 2) and t.bringup_latency_s is not None
        assert "first_phase" not in trial
        dmesg = (run["summary"].run_dir / dict(t.artifacts)["dmesg"]).read_text()
        assert f"CPU{trial['cpu']}: Booted secondary processor" in dmesg
    # host side: every vCPU sampled, affinity as pinned (rr:0-1), memory bound to node 0
    hv = _hostv(boot)
    assert sorted(hv["vcpus"]) == ["0", "1", "2"] and {"libvirt", "proc"} <= set(hv["source"])
    assert {c: v["affinity"] for c, v in hv["vcpus"].items()} == {"0": "0", "1": "1", "2": "0"}
    qemu_log = (run["summary"].run_dir / dict(boot.artifacts)["qemu_log"]).read_text()
    assert '"host-nodes":[0],"policy":"bind"' in qemu_log


def test_stalling_host_shows_both_phases_for_the_same_cpu(run: dict[str, Any]) -> None:
    boot, *trials = _cell(run, "late")
    hook = dict(boot.extra)["hook"]
    cpu = hook["stall"]
    assert cpu == 2 and hook["thaw"] == "after_failure"  # the last secondary (stall.py)
    assert "thawed_after_failure_at" in hook  # the vCPU came up late, after the give-up
    # first phase, at boot
    assert boot.outcome is Outcome.VCPU_OFFLINE and boot.offline_cpus == (cpu,), boot.reason
    assert ("cpu_failed_online", cpu) in {(f.kind, f.cpu) for f in boot.findings}
    # second phase, in every trial of that CPU; the other CPU's trials are ok
    assert len(trials) == 4
    for t in trials:
        trial = dict(t.extra)["trial"]
        if trial["cpu"] != cpu:
            assert t.outcome is Outcome.OK, t.reason
            assert t.reason == f"CPU {cpu} still offline from before"
            continue
        assert t.outcome is Outcome.VCPU_OFFLINE and t.offline_cpus == (cpu,), t.reason
        assert ("psci_failed_boot", cpu, -22) in {(f.kind, f.cpu, f.errno)
                                                  for f in t.findings}
        assert ("cpu_failed_boot", cpu, -22) in {(f.kind, f.cpu, f.errno) for f in t.findings}
        assert "psci_already_on" in {s.kind for s in t.signatures}
        assert trial["phase"] == "second" and trial["online_exit"] != 0
        assert trial["first_phase"] == {"index": boot.index, "kind": "boot",
                                        "message": f"CPU{cpu}: failed to come online"}
        dmesg = (run["summary"].run_dir / dict(t.artifacts)["dmesg"]).read_text()
        assert f"psci: failed to boot CPU{cpu} (-22)" in dmesg
    # the frozen vCPU's host delay is the largest during the bring-up; over the whole boot
    # it is the only one frozen (once thawed it spins in the background, and the others
    # then wait in the host's run queue: the whole boot is not the window to compare)
    hv = _hostv(boot)
    bring = hv["bringup"]
    delays = {int(c): v["host_delay_s"] for c, v in bring["vcpus"].items()}
    assert bring["late_cpu"] == cpu and max(delays, key=lambda c: delays[c]) == cpu, delays
    assert bring["vcpus"][str(cpu)]["frozen_s"] > 4.0  # past the 5 s timeout, sampled
    frozen = {int(c): v["frozen_s"] for c, v in hv["vcpus"].items()}
    assert frozen[cpu] > 4.0 and all(f == 0 for c, f in frozen.items() if c != cpu), frozen


def test_report_plots_latency_against_host_delay(run: dict[str, Any]) -> None:
    from harness.report.html import render_html

    points = run["view"].delay_points
    assert {(p.cell.split("/")[0], p.kind) for p in points} >= {("clean", "boot"),
                                                                ("late", "boot")}
    late = next(p for p in points if p.cell.startswith("late/") and p.kind == "boot")
    assert late.latency_s is None and late.host_delay_s > 4.0  # never came up: top band
    html = render_html(run["view"])
    assert 'id="delay-svg"' in html and html.count("<circle") >= 2
    hosts = {h.name: dict(h.facts) for h in run["view"].hosts}
    assert hosts["clean"]["kernel_release"] == os.uname().release


def test_pinned_cells_xml_validates(run: dict[str, Any], tmp_path: Path) -> None:
    from harness.backend.base import BootRequest
    from harness.backend.domain_xml import domain_xml

    validator = shutil.which("virt-xml-validate")
    if validator is None:
        pytest.skip("virt-xml-validate missing: install Debian package libvirt-clients")
    m = run["matrix"]
    for cell in m.cells:
        req = BootRequest(run_id="x", cell=cell, host_name=cell.host,
                          host=m.lab.host(cell.host), guest_name=cell.guest,
                          guest=m.lab.guest(cell.guest), domain_name="hb-x", boot_index=0,
                          workdir=tmp_path, ssh_port=2222)
        f = tmp_path / "d.xml"
        f.write_text(domain_xml(req))
        assert "<vcpupin" in f.read_text() and "<numatune>" in f.read_text()
        proc = subprocess.run([validator, str(f), "domain"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
