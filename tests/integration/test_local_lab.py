"""The local lab for real: Debian arm64 kernels under QEMU (TCG) via libvirt's in-process
QEMU driver, through the whole pipeline (libvirt, SSH, classify, SQLite store).

Needs qemu-system-aarch64 and libvirt's QEMU driver (skipped, saying so, without them),
and ``harness lab setup`` (run here when needed: idempotent, seconds once built).

libvirt allows one ``qemu:///embed`` root per process, and one process per root: these
tests use the lab's own root (``${cache}/libvirt``, like matrices/labs/local-lab.yaml) so
they can share a process with other local-lab tests, keep to one xdist worker
(``xdist_group``), and stop with a clear message when another process (a ``harness run``
of the local lab) holds that root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_lab_root import local_lab_root

from harness.lab import doctor
from harness.lab.paths import layout
from harness.model import Outcome

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local-lab")]

if (_why := doctor.cannot_boot()) is not None:
    pytest.skip(_why, allow_module_level=True)

LAB = """\
name: it-local
hosts:
  clean:
    uri: qemu:///embed?root=${{cache}}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
  stall:
    uri: qemu:///embed?root=${{cache}}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
    fault:
      stall: {{probability: 1.0, seconds: 600}}
  down:
    uri: qemu+unix:///system?socket={root}/no-libvirtd.sock
    network: {{type: user}}
guests:
  arm64:
    boot:
      kernel: ${{cache}}/guests/arm64/vmlinuz
      initrd: ${{cache}}/guests/arm64/initrd-ssh.cpio
      cmdline: console=ttyAMA0
    ssh:
      key: ${{cache}}/keys/id_ed25519
  nossh:
    boot:
      kernel: ${{cache}}/guests/arm64/vmlinuz
      initrd: ${{cache}}/guests/arm64/initrd-nossh.cpio
      cmdline: console=ttyAMA0
    ssh:
      key: ${{cache}}/keys/id_ed25519
  cpulocked:
    boot:
      kernel: ${{cache}}/guests/arm64/vmlinuz
      initrd: ${{cache}}/guests/arm64/initrd-cpulocked.cpio
      cmdline: console=ttyAMA0
    ssh:
      user: vmbh
      key: ${{cache}}/keys/id_ed25519
ssh: {{accept_new_host_keys: true}}
"""

MATRIX = """\
name: {name}
lab: lab.yaml
axes:
  host: [{host}]
  guest: [{guest}]
  vcpus: [{vcpus}]
boots: 1
memory_mib: 512
timeouts: {{boot: {boot}, ssh: 5, command: 30, shutdown: 5}}
"""


@pytest.fixture(scope="module")
def lab_dir() -> Iterator[Path]:
    with local_lab_root("vmbh5-") as root:
        (root / "lab.yaml").write_text(LAB.format(root=root))
        yield root


def _run(lab_dir: Path, name: str, host: str, guest: str, vcpus: int, boot: int = 180) -> Any:
    from harness.matrix import load_matrix
    from harness.runner import Runner, RunOptions
    from harness.store import Store

    mfile = lab_dir / f"{name}.yaml"
    mfile.write_text(MATRIX.format(name=name, host=host, guest=guest, vcpus=vcpus, boot=boot))
    summary = Runner(load_matrix(mfile), RunOptions(
        reports_dir=lab_dir / "reports", db=lab_dir / "results.db", write_reports=False)).run()
    with Store(summary.db) as store:
        boots = store.boots(summary.run_id)
        infra = store.infra_events(summary.run_id)
        counts = store.counts(summary.run_id)
    return summary, boots, infra, counts


def _text(run_dir: Path, rel: str) -> str:
    return (run_dir / rel).read_text(encoding="utf-8", errors="replace")


def test_clean_boot_has_every_cpu_online(lab_dir: Path) -> None:
    summary, boots, infra, _ = _run(lab_dir, "clean", "clean", "arm64", 4)
    assert infra == []
    (b,) = boots
    assert b.outcome is Outcome.OK, b.reason
    assert b.online_cpus == (0, 1, 2, 3) and b.offline_cpus == ()
    release = (layout().guest("arm64") / "release").read_text().strip()
    assert b.kernel_release == release
    dmesg = _text(summary.run_dir, dict(b.artifacts)["dmesg"])
    assert "smp: Brought up 1 node, 4 CPUs" in dmesg
    assert not list(layout().libvirt.glob("lib/qemu/domain-*-hb-clean*"))  # domain gone


@pytest.mark.skipif(os.geteuid() != 0, reason="the stall injector writes cgroup files of "
                    "QEMU's threads: it needs root")
def test_injected_stall_is_found_as_vcpu_offline_with_its_cpu(lab_dir: Path) -> None:
    summary, boots, infra, _ = _run(lab_dir, "stall", "stall", "arm64", 4)
    assert infra == []
    (b,) = boots
    stalled = dict(b.extra)["hook"]["stall"]
    assert stalled in (1, 2, 3)
    assert b.outcome is Outcome.VCPU_OFFLINE, b.reason
    assert b.offline_cpus == (stalled,)
    assert b.online_cpus == tuple(c for c in range(4) if c != stalled)
    kinds = {(f.kind, f.cpu) for f in b.findings}
    assert ("cpu_failed_online", stalled) in kinds
    dmesg = _text(summary.run_dir, dict(b.artifacts)["dmesg"])
    assert f"CPU{stalled}: failed to come online" in dmesg
    assert f"CPU{stalled}: failed in unknown state : 0x0" in dmesg
    # the injector left nothing behind: no cgroup of ours, the thread's process is gone
    assert not list(Path("/sys/fs/cgroup").glob("*/vmbh-stall-*"))
    tid = dict(b.extra)["hook"]["stall_thread"]
    assert not Path(f"/proc/{tid}").exists()


def test_guest_without_ssh_is_a_boot_failure_with_console_evidence(lab_dir: Path) -> None:
    summary, boots, infra, counts = _run(lab_dir, "nossh", "clean", "nossh", 2, boot=60)
    assert infra == []
    (b,) = boots
    assert b.outcome is Outcome.BOOT_FAILURE
    assert "no SSH within 60s" in b.reason
    console = _text(summary.run_dir, dict(b.artifacts)["console"])
    assert "vmbh-guest: this guest never starts an SSH server" in console
    assert "Linux version" in console
    assert counts["clean/nossh/vcpu2"].boot_failure == 1


def test_unreadable_online_list_is_never_vcpu_offline(lab_dir: Path) -> None:
    """A real guest whose init makes /sys/devices/system/cpu/online readable by root
    only, logged in to as an unprivileged user: cat exits 1 with Permission denied (and
    dmesg is restricted too). Every CPU is online; the harness cannot know it, so the
    boot is a boot failure saying why, never a vCPU-offline boot."""
    summary, boots, infra, counts = _run(lab_dir, "cpulocked", "clean", "cpulocked", 2)
    assert infra == []
    (b,) = boots
    assert b.outcome is Outcome.BOOT_FAILURE, b.reason
    assert b.reason.startswith("collection failed: online: exit 1: ")
    assert "Permission denied" in b.reason
    assert b.offline_cpus == () and b.online_cpus is None
    assert counts["clean/cpulocked/vcpu2"].vcpu_offline == 0
    console = _text(summary.run_dir, dict(b.artifacts)["console"])
    assert "vmbh-guest: cpu online list readable by root only" in console
    meta = json.loads(_text(summary.run_dir, dict(b.artifacts)["meta"]))
    online = next(c for c in meta["commands"] if c["name"] == "online")
    assert online["exit_status"] == 1 and "Permission denied" in online["stderr"]


def test_unreachable_libvirt_is_infra_error_not_a_guest_failure(lab_dir: Path) -> None:
    _summary, boots, infra, counts = _run(lab_dir, "down", "down", "arm64", 2)
    c = counts["down/arm64/vcpu2"]
    assert c.infra_error >= 1 and c.n == 0 and c.boot_failure == 0
    assert all(b.outcome is Outcome.INFRA_ERROR for b in boots)
    assert infra and all("libvirt" in e.reason for e in infra)
