"""The libvirt backend on libvirt's own test driver (a 64-core FT-2500-like node).

The test driver keeps everything in memory and cannot boot a guest: these tests cover
define/start/destroy/undefine, names, metadata, per-boot volumes, gc and errors, and the
boot loop's lifecycle around a guest that never answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.backend import gc
from harness.backend.base import BootRequest, Domain, GuestNotReady
from harness.backend.libvirt import LibvirtBackend, LibvirtDomain
from harness.bootloop import BootLoop
from harness.errors import BackendError
from harness.inventory import GuestSpec, HostSpec, Lab, load_lab
from harness.model import Cell, Outcome, Timeouts
from harness.runinfo import controller_identity
from harness.testing.fakes import FakeClock
from harness.testing.sink import JsonlSink

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
pytestmark = pytest.mark.integration

DATA = Path(__file__).parent.parent / "data"
NODE = (DATA / "libvirt" / "ft2500-node.xml").resolve()
URI = f"test://{NODE}"


@pytest.fixture
def backend() -> Any:
    b = LibvirtBackend(URI)
    yield b
    b.close()


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    text = (DATA / "libvirt" / "lab.yaml.in").read_text().replace("@URI@", URI)
    (tmp_path / "lab.yaml").write_text(text.replace("@STORAGE@", str(tmp_path / "pool")))
    return load_lab(tmp_path / "lab.yaml")


def request(lab: Lab, tmp: Path, guest: str = "disk", vcpus: int = 16, index: int = 0,
            name: str | None = None) -> BootRequest:
    cell = Cell(id=f"ft/{guest}/vcpu{vcpus}", matrix="t", host="ft", guest=guest, vcpus=vcpus,
                boots=1)
    return BootRequest(run_id="r1", cell=cell, host_name="ft", host=lab.host("ft"),
                       guest_name=guest, guest=lab.guest(guest),
                       domain_name=name or f"hb-r1-{cell.safe_id}-{index}", boot_index=index,
                       workdir=tmp / "boot", ssh_port=40022)


def test_node_is_a_64_core_ft2500(backend: LibvirtBackend) -> None:
    model, mem_mib, cpus, _mhz, nodes, _s, cores, _t = backend.conn.getInfo()
    assert (model, cpus, nodes, cores, mem_mib) == ("FT-2500", 64, 8, 8, 131072)


def test_lifecycle_define_start_destroy_undefine(backend: LibvirtBackend, lab: Lab,
                                                 tmp_path: Path) -> None:
    req = request(lab, tmp_path)
    dom = backend.define(req)
    assert isinstance(dom, LibvirtDomain) and isinstance(dom, Domain)
    assert backend.list_domains() == [req.domain_name]
    meta, files = dom.metadata()
    assert meta["run"] == "r1" and meta["index"] == "0" and meta["pid"] == str(os.getpid())
    overlay = str(tmp_path / "pool" / f"{req.domain_name}.qcow2")
    assert files[0] == overlay
    vol = backend.conn.storageVolLookupByPath(overlay)  # the per-boot overlay exists
    assert "backingStore" in vol.XMLDesc(0)
    xml = dom.dom.XMLDesc(0)
    assert "<vcpu placement='static'>16</vcpu>" in xml and "gic version='3'" in xml
    assert not dom.is_active()
    dom.start(paused=True)
    assert dom.is_active()
    assert dom.dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    dom.resume()
    assert dom.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert dom.ssh_endpoint() == ("127.0.0.1", 40022)
    dom.reset()
    dom.destroy()
    dom.destroy()  # no error when already off
    assert not dom.is_active()
    dom.undefine()
    dom.undefine()  # no error when already gone
    assert backend.list_domains() == []
    assert backend.lookup(req.domain_name) is None
    with pytest.raises(libvirt.libvirtError):
        backend.conn.storageVolLookupByPath(overlay)


def test_direct_kernel_boot_has_no_overlay(backend: LibvirtBackend, lab: Lab,
                                           tmp_path: Path) -> None:
    dom = backend.define(request(lab, tmp_path, guest="tiny", vcpus=4))
    xml = dom.dom.XMLDesc(0)
    assert "<kernel>" in xml and "<disk" not in xml and "gic" not in xml
    assert "console=ttyAMA0" in xml
    dom.undefine()


def test_errors_are_backend_errors_with_reasons(backend: LibvirtBackend, lab: Lab,
                                                tmp_path: Path) -> None:
    req = request(lab, tmp_path)
    dom = backend.define(req)
    with pytest.raises(BackendError) as err:
        backend.define(req)  # same name again
    assert err.value.reason == "define_refused"
    assert "hb-r1-ft.disk.vcpu16-0" in str(err.value)
    dom.start()
    with pytest.raises(BackendError) as err:
        dom.start()  # already running
    assert err.value.reason == "start_refused"
    dom.undefine()
    with pytest.raises(BackendError) as err:
        LibvirtBackend("test:///nonexistent/node.xml")
    assert err.value.reason == "libvirt_unreachable"
    assert "test:///nonexistent/node.xml" in str(err.value)


def test_lookup_finds_metadata_of_domains_defined_earlier(backend: LibvirtBackend, lab: Lab,
                                                          tmp_path: Path) -> None:
    req = request(lab, tmp_path)
    backend.define(req)
    found = backend.lookup(req.domain_name)
    assert found is not None and found.spec is None
    meta, files = found.metadata()
    assert meta["cell"] == "ft/disk/vcpu16" and len(files) == 3
    found.undefine()
    assert backend.list_domains() == []


def _define_as(backend: LibvirtBackend, lab: Lab, tmp: Path, name: str,
               identity: dict[str, str]) -> None:
    from dataclasses import replace

    from harness.backend import domain_xml as dx

    req = request(lab, tmp, guest="tiny", name=name)
    spec = dx.domain_spec(req, metadata={**identity, "run": "old"}, domain_type="test")
    backend.conn.defineXML(dx.to_xml(replace(spec, name=name)))


def test_gc_removes_only_domains_of_dead_runs(backend: LibvirtBackend, lab: Lab,
                                              tmp_path: Path) -> None:
    me = controller_identity()
    dead = {**me, "pid_start": "1"}  # same pid, other start time: the process is gone
    foreign = {**me, "controller": "some-other-controller"}
    _define_as(backend, lab, tmp_path, "hb-old-a-0", dead)
    _define_as(backend, lab, tmp_path, "hb-old-a-1", dead)
    _define_as(backend, lab, tmp_path, "hb-live-a-0", me)
    _define_as(backend, lab, tmp_path, "hb-far-a-0", foreign)
    backend.conn.defineXML("<domain type='test'><name>hb-not-ours</name><memory>1024</memory>"
                           "<os><type>hvm</type></os></domain>")
    backend.lookup("hb-old-a-1").start()  # type: ignore[union-attr]
    dry = gc.collect(backend, dry_run=True)
    assert dry.removed == ["hb-old-a-0", "hb-old-a-1"]
    assert len(backend.list_domains()) == 5
    rep = gc.collect(backend)
    assert rep.removed == ["hb-old-a-0", "hb-old-a-1"]
    assert rep.alive == ["hb-live-a-0"]
    assert rep.foreign == ["hb-far-a-0 (controller some-other-controller)"]
    assert backend.list_domains() == ["hb-far-a-0", "hb-live-a-0", "hb-not-ours"]
    forced = gc.collect(backend, force=True)
    assert forced.removed == ["hb-far-a-0"]
    assert backend.list_domains() == ["hb-live-a-0", "hb-not-ours"]


def test_gc_removes_orphan_volumes(backend: LibvirtBackend, lab: Lab, tmp_path: Path) -> None:
    req = request(lab, tmp_path)
    dom = backend.define(req)
    pool = backend._pool(Path(tmp_path / "pool"))  # type: ignore[arg-type]
    xml = ("<volume><name>hb-gone-x-0.qcow2</name><capacity>1</capacity>"
           "<target><format type='qcow2'/></target></volume>")
    pool.createXML(xml, 0)
    pool.createXML(xml.replace("hb-gone-x-0.qcow2", "unrelated.img"), 0)
    rep = gc.collect(backend, storage=[str(tmp_path / "pool")])
    assert rep.files == [str(tmp_path / "pool" / "hb-gone-x-0.qcow2")]
    assert sorted(pool.listVolumes()) == sorted([f"{req.domain_name}.qcow2", "unrelated.img"])
    dom.undefine()


class NeverAnswers:
    def __init__(self, panic_after: int | None = None) -> None:
        self.calls: dict[str, int] = {}
        self.panic_after = panic_after

    def connect(self, domain: Domain, timeout: float) -> Any:
        n = self.calls[domain.name] = self.calls.get(domain.name, 0) + 1
        if self.panic_after is not None and n == self.panic_after:
            assert isinstance(domain, LibvirtDomain)
            path = domain.console_path()
            assert path is not None
            Path(path).parent.mkdir(parents=True, exist_ok=True)  # the test driver makes none
            Path(path).write_text("Booting Linux on physical CPU 0x0\n[    1.2] Kernel panic - "
                                  "not syncing: Attempted to kill init! exitcode=0x0000000b\n")
        raise GuestNotReady("connection refused")


@pytest.mark.parametrize("panic_after", [None, 3])
def test_boot_loop_lifecycle_on_the_test_driver(lab: Lab, tmp_path: Path,
                                                panic_after: int | None) -> None:
    backend = LibvirtBackend(URI)
    connector = NeverAnswers(panic_after)
    clock = FakeClock()
    sink = JsonlSink(tmp_path / "results.jsonl")
    loop = BootLoop(lambda h: backend, lambda h, g: connector, sink, lab, tmp_path / "run", "r1",
                    clock=clock.time, sleep=clock.sleep)
    cell = Cell(id="ft/tiny/vcpu64", matrix="t", host="ft", guest="tiny", vcpus=64, boots=2,
                timeouts=Timeouts(boot=30, ssh=5))
    results = list(loop.run_chunk(cell, [0, 1]))
    assert [r.outcome for r in results] == [Outcome.BOOT_FAILURE] * 2
    if panic_after is None:
        assert results[0].reason == "no SSH within 30s"
    else:
        assert results[0].reason.startswith("kernel panic: Attempted to kill init!")
        assert sum(clock.sleeps) == 3 * 2  # 3 polls per boot: the 3rd printed the panic
        assert "Kernel panic" in (tmp_path / "run" / cell.folder / "0" / "console.log"
                                  ).read_text()
    assert backend.list_domains() == []
    lines = [json.loads(x) for x in sink.path.read_text().splitlines()]
    assert [d["index"] for d in lines] == [0, 1]
    backend.close()


def test_ctrl_c_in_a_fresh_process_leaves_no_domain(tmp_path: Path, lab: Lab) -> None:
    """SIGINT during a boot: the domain is cleaned up before the process exits."""
    script = tmp_path / "interrupt.py"
    script.write_text(f"""
import os, signal, threading, sys
from pathlib import Path
from harness.backend.libvirt import LibvirtBackend
from harness.bootloop import BootLoop
from harness.backend.base import GuestNotReady
from harness.inventory import load_lab
from harness.model import Cell, Timeouts
from harness.testing.sink import JsonlSink
lab = load_lab({str(tmp_path / "lab.yaml")!r})
backend = LibvirtBackend({URI!r})
class C:
    def connect(self, domain, timeout):
        print("DEFINED", backend.list_domains(), flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        raise GuestNotReady("not yet")
loop = BootLoop(lambda h: backend, lambda h, g: C(), JsonlSink(Path({str(tmp_path)!r}) / "r.jsonl"),
                lab, Path({str(tmp_path)!r}) / "run", "r1")
cell = Cell(id="ft/tiny/vcpu4", matrix="t", host="ft", guest="tiny", vcpus=4, boots=1,
            timeouts=Timeouts(boot=30))
try:
    list(loop.run_chunk(cell, [0]))
except KeyboardInterrupt:
    print("LEFT", backend.list_domains(), flush=True)
    sys.exit(130)
""")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    from harness.model import cell_folder

    assert f"DEFINED ['hb-r1-{cell_folder('ft/tiny/vcpu4')}-0']" in proc.stdout
    assert "LEFT []" in proc.stdout
    assert not (tmp_path / "r.jsonl").exists()


def test_hostspec_without_boot_is_a_clear_error(tmp_path: Path) -> None:
    from harness.errors import ConfigError

    host = HostSpec(uri=URI)
    cell = Cell(id="c", matrix="t", host="ft", guest="g", vcpus=2, boots=1)
    req = BootRequest(run_id="r", cell=cell, host_name="ft", host=host, guest_name="g",
                      guest=GuestSpec(), domain_name="hb-r-c-0", boot_index=0, workdir=tmp_path)
    b = LibvirtBackend(URI)
    with pytest.raises(ConfigError, match="guest 'g' has no 'boot' section"):
        b.define(req)
    b.close()


def test_gc_command_on_the_shared_test_driver(lab: Lab, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli.gc import gc as gc_cmd

    shared = LibvirtBackend("test:///default")  # one state per process: the CLI sees it
    me = controller_identity()
    _define_as(shared, lab, tmp_path, "hb-dead-c-0", {**me, "pid_start": "1"})
    _define_as(shared, lab, tmp_path, "hb-live-c-0", me)
    try:
        runner = CliRunner()
        dry = runner.invoke(gc_cmd, ["--uri", "test:///default", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would remove hb-dead-c-0" in dry.output
        assert shared.lookup("hb-dead-c-0") is not None
        res = runner.invoke(gc_cmd, ["--uri", "test:///default"])
        assert res.exit_code == 0, res.output
        assert "removed 1 domain(s), 0 file(s); 1 of live runs kept" in res.output
        assert shared.lookup("hb-dead-c-0") is None
        assert shared.lookup("hb-live-c-0") is not None
        none = runner.invoke(gc_cmd, [])
        assert none.exit_code != 0 and "--uri URI" in str(none.exception)
        down = runner.invoke(gc_cmd, ["--uri", "test:///nonexistent.xml"])
        assert down.exit_code == 1 and "cannot connect to libvirt" in down.output
    finally:
        found = shared.lookup("hb-live-c-0")
        if found is not None:
            found.undefine()
        shared.close()


def test_a_dead_connection_is_reopened_before_the_next_boot(lab: Lab, tmp_path: Path) -> None:
    backend = LibvirtBackend(URI)
    backend.conn.close()  # as if libvirtd went away
    dom = backend.define(request(lab, tmp_path, guest="tiny"))
    assert backend.conn.isAlive()
    assert backend.list_domains() == [dom.name]
    dom.undefine()
    backend.close()
