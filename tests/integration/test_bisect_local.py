"""A short bisection campaign on the local lab for real: four builds of a Debian arm64
guest under QEMU (TCG) via libvirt's in-process driver; builds 2 and 3 carry the vCPU
stall fault (a secondary vCPU thread frozen past the guest's bring-up timeout), so the
campaign must name build 2, through libvirt, SSH, the classifier and the SQLite store.

Same requirements and conventions as test_local_lab.py (skips saying which component is
missing; the stall injector needs root; one xdist group for the lab's libvirt root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_lab_root import local_lab_root

from harness.lab import doctor
from harness.lab.paths import layout

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local-lab")]

if (_why := doctor.cannot_boot()) is not None:
    pytest.skip(_why, allow_module_level=True)

GUEST = """\
  {name}:
    boot:
      kernel: ${{cache}}/guests/arm64/vmlinuz
      initrd: ${{cache}}/guests/arm64/initrd-ssh.cpio
      cmdline: console=ttyAMA0
    ssh:
      key: ${{cache}}/keys/id_ed25519
    memory_mib: 512
"""
STALL = """\
    fault:
      stall: {probability: 1.0, seconds: 600}
"""

LAB = """\
name: it-bisect
hosts:
  local:
    uri: qemu:///embed?root=${{cache}}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
guests:
{guests}ssh: {{accept_new_host_keys: true}}
"""

CAMPAIGN = """\
name: it-bisect
lab: lab.yaml
builds: [build0, build1, build2, build3]
cell: {host: local, vcpus: 2}
failure: vcpu_offline
model: clean
confidence: 0.9
budget: {boots: 14}
"""


@pytest.fixture(scope="module")
def lab_dir() -> Iterator[Path]:
    with local_lab_root("vmbh9-") as root:
        guests = "".join(GUEST.format(name=f"build{i}") + (STALL if i >= 2 else "")
                         for i in range(4))
        (root / "lab.yaml").write_text(LAB.format(root=root, guests=guests))
        (root / "campaign.yaml").write_text(CAMPAIGN)
        yield root


@pytest.mark.skipif(os.geteuid() != 0, reason="the stall injector writes cgroup files of "
                    "QEMU's threads: it needs root")
def test_campaign_names_the_first_build_with_the_stall(lab_dir: Path) -> None:
    from harness.bisect.campaign import load_campaign
    from harness.bisect.loop import BisectOptions, BisectRunner
    from harness.store import Store

    res = BisectRunner(load_campaign(lab_dir / "campaign.yaml"),
                       BisectOptions(db=lab_dir / "results.db",
                                     reports_dir=lab_dir / "reports")).run()
    post = res.posterior
    assert res.status == "found", (res.status, post.boots, post.failures, res.set_aside)
    assert res.culprit == "build2" and post.probability >= 0.9
    assert post.failures[0] == post.failures[1] == 0  # the clean builds never failed
    assert post.failures[2] >= 1
    with Store(res.db) as store:
        boots = store.boots(res.run_id)
    guest = [b for b in boots if b.outcome.value != "infra_error"]
    assert len(guest) == res.campaign_boots == post.total_boots
    assert {b.guest for b in guest if b.outcome.value == "vcpu_offline"} <= {"build2",
                                                                            "build3"}
    assert not list(layout().libvirt.glob("lib/qemu/domain-*-hb-bisect*"))  # domains gone
