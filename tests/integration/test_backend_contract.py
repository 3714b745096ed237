"""One contract, every backend that can run here: libvirt's test driver (``test://``),
the local lab's embedded QEMU driver (``qemu:///embed``, real QEMU under TCG) and the
simulated lab (``sim:///``), through one parametrized fixture. The tests do not know which
backend they drive: what the boot loop relies on (``harness/backend/base.py``) holds for
each, and each is found through the registry by its URI.

A new backend adds one ``pytest.param`` to ``BACKENDS`` (a function giving its lab file
text) and passes these tests unchanged.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.backend.base import Backend, BootRequest, Domain
from harness.backend.registry import capabilities, kind_of
from harness.errors import InfraError
from harness.inventory import Lab, load_lab
from harness.model import Cell

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent.parent / "data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    lab: Lab
    backend: Backend
    host: str
    guest: str
    tmp: Path

    def request(self, index: int = 0) -> BootRequest:
        cell = Cell(id=f"{self.host}/{self.guest}/vcpu2", matrix="contract", host=self.host,
                    guest=self.guest, vcpus=2, boots=1, memory_mib=256)
        return BootRequest(run_id="contract", cell=cell, host_name=self.host,
                           host=self.lab.host(self.host), guest_name=self.guest,
                           guest=self.lab.guest(self.guest),
                           domain_name=f"hb-contract-{cell.folder}-{index}", boot_index=index,
                           workdir=self.tmp / "boot" / str(index), ssh_port=_free_port())


def _test_driver(tmp: Path, stack: ExitStack) -> Rig:
    pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    from harness.backend.libvirt import LibvirtBackend

    uri = f"test://{(DATA / 'libvirt' / 'ft2500-node.xml').resolve()}"
    text = (DATA / "libvirt" / "lab.yaml.in").read_text().replace("@URI@", uri)
    (tmp / "lab.yaml").write_text(text.replace("@STORAGE@", str(tmp / "pool")))
    lab = load_lab(tmp / "lab.yaml")
    backend = LibvirtBackend(uri)
    stack.callback(backend.close)
    return Rig(lab, backend, "ft", "tiny", tmp)


def _sim(tmp: Path, stack: ExitStack) -> Rig:
    from harness.backend.sim import SimLab
    from harness.sim.clock import SimClock

    (tmp / "lab.yaml").write_text("""\
name: contract-sim
hosts:
  s: {uri: "sim:///", attributes: {numa_patch: false}}
guests:
  es11: {kernel_release: 4.18.0-147.5.1.el8_1.5es.11.aarch64}
sim:
  seed: 3
  rules: [{match: {guest: es11}, vcpu_offline: 0.5}]
""")
    lab = load_lab(tmp / "lab.yaml")
    backend = SimLab(lab, SimClock(0)).backend_for("s")
    stack.callback(backend.close)
    return Rig(lab, backend, "s", "es11", tmp)


def _embed(tmp: Path, stack: ExitStack) -> Rig:
    pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    from harness.lab import doctor

    if (why := doctor.cannot_boot()) is not None:
        pytest.skip(why)
    from local_lab_root import local_lab_root

    from harness.backend.libvirt import LibvirtBackend

    root = stack.enter_context(local_lab_root("vmbhc-"))
    (root / "lab.yaml").write_text(f"""\
name: contract-embed
hosts:
  local:
    uri: qemu:///embed?root=${{cache}}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
guests:
  arm64:
    boot:
      kernel: ${{cache}}/guests/arm64/vmlinuz
      initrd: ${{cache}}/guests/arm64/initrd-ssh.cpio
      cmdline: console=ttyAMA0
""")
    lab = load_lab(root / "lab.yaml")
    backend = LibvirtBackend(lab.host("local").uri)
    stack.callback(backend.close)
    return Rig(lab, backend, "local", "arm64", root)


BACKENDS: list[Any] = [
    pytest.param(_test_driver, id="test"),
    pytest.param(_embed, id="qemu-embed", marks=pytest.mark.xdist_group("local-lab")),
    pytest.param(_sim, id="sim"),
]


@pytest.fixture(params=BACKENDS)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    make: Callable[[Path, ExitStack], Rig] = request.param
    with ExitStack() as stack:
        r = make(tmp_path, stack)
        yield r
        for name in r.backend.list_domains("hb-contract-"):  # nothing left behind
            dom = r.backend.lookup(name)
            if dom is not None:
                dom.destroy()
                dom.undefine()


def test_registry_knows_the_backend_by_its_uri(rig: Rig) -> None:
    uri = rig.lab.host(rig.host).uri
    kind = kind_of(uri)
    assert kind.module == type(rig.backend).__module__
    assert capabilities(uri) == rig.lab.host(rig.host).capabilities
    assert capabilities(uri).simulated is rig.lab.host(rig.host).is_sim


def test_lifecycle_define_start_resume_destroy_undefine(rig: Rig) -> None:
    req = rig.request()
    req.workdir.mkdir(parents=True, exist_ok=True)
    dom = rig.backend.define(req)
    assert isinstance(dom, Domain) and dom.name == req.domain_name
    assert req.domain_name in rig.backend.list_domains("hb-contract-")
    assert rig.backend.lookup(req.domain_name) is not None
    assert not dom.is_active()
    dom.start(paused=True)  # fault hooks act between a paused start and the resume
    assert dom.is_active()
    dom.resume()
    assert dom.is_active()
    assert isinstance(dom.console_text(), str)
    evidence = dom.evidence()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in evidence.items())
    host, port = dom.ssh_endpoint()
    assert isinstance(host, str) and host and 0 < port < 65536
    dom.destroy()
    assert not dom.is_active()
    dom.destroy()  # already off: no error
    dom.undefine()
    assert req.domain_name not in rig.backend.list_domains("hb-contract-")
    assert rig.backend.lookup(req.domain_name) is None
    dom.undefine()  # already gone: no error


def test_two_domains_at_once_are_apart(rig: Rig) -> None:
    a, b = rig.request(0), rig.request(1)
    doms = [rig.backend.define(r) for r in (a, b)]
    try:
        assert {a.domain_name, b.domain_name} <= set(rig.backend.list_domains("hb-contract-"))
        doms[0].start()
        assert doms[0].is_active() and not doms[1].is_active()
    finally:
        for d in doms:
            d.destroy()
            d.undefine()
    assert not set(rig.backend.list_domains("hb-contract-")) & {a.domain_name, b.domain_name}


def test_a_refused_operation_is_an_infra_error(rig: Rig) -> None:
    """Whatever goes wrong inside a backend reaches the loop as an InfraError (never a
    guest failure): defining a name that is already defined is refused."""
    req = rig.request()
    dom = rig.backend.define(req)
    try:
        with pytest.raises(InfraError):
            rig.backend.define(req)
    finally:
        dom.destroy()
        dom.undefine()
