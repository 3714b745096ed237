"""Domain XML: golden files, schema validation with virt-xml-validate, and the model rules.

Refresh the golden files after an intended change with
``HARNESS_UPDATE_GOLDEN=1 pytest tests/unit/test_domain_xml.py`` and review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.backend import domain_xml as dx
from harness.backend.base import BootRequest
from harness.cli.domxml import domxml
from harness.errors import ConfigError
from harness.inventory import Lab, load_lab
from harness.model import Cell

DATA = Path(__file__).parent.parent / "data" / "domxml"
REPO = Path(__file__).parent.parent.parent
UPDATE = os.environ.get("HARNESS_UPDATE_GOLDEN") == "1"
VALIDATOR = shutil.which("virt-xml-validate")


@pytest.fixture(scope="module")
def lab() -> Lab:
    return load_lab(DATA / "lab.yaml")


def req(lab: Lab, host: str, guest: str, vcpus: int, params: dict[str, Any] | None = None,
        port: int | None = None) -> BootRequest:
    cell = Cell(id=f"{host}/{guest}/vcpu{vcpus}", matrix="m", host=host, guest=guest,
                vcpus=vcpus, boots=10, params=tuple((params or {}).items()))
    return BootRequest(run_id="golden", cell=cell, host_name=host, host=lab.host(host),
                       guest_name=guest, guest=lab.guest(guest),
                       domain_name=f"hb-golden-{cell.safe_id}-3", boot_index=3,
                       workdir=Path("/runs/golden") / cell.safe_id / "3", ssh_port=port)


CASES = {
    "kvm-uefi-bridge-4": ("node", "es11", 4, None, None),
    "kvm-uefi-bridge-16-gicv3": ("node", "es11", 16, None, None),
    "tcg-kernel-usernet-8": ("local", "debian", 8, None, 40022),
    "tcg-uefi-usernet-local-storage": ("local", "es11", 2, None, 40023),
    "network-max-numa-cpuset-32": ("netw", "es11", 32, {"numa_nodes": 3, "cpuset": "0-31"},
                                   None),
    # the FT-2500 placement axes: per-vCPU pins, emulator threads apart, memory on a node
    "kvm-pinned-rr-emulator-numatune-8": (
        "node", "es11", 8, {"vcpupin": "rr:8-15", "emulatorpin": "0-1",
                            "numatune": "strict:1"}, None),
    "tcg-pinned-1to1-preferred-4": (
        "local", "debian", 4, {"vcpupin": "1to1", "numatune": "preferred:0"}, 40024),
}


def validate(xml: str, tmp: Path) -> None:
    if VALIDATOR is None:
        pytest.skip("virt-xml-validate missing: install Debian package libvirt-clients")
    f = tmp / "domain.xml"
    f.write_text(xml)
    proc = subprocess.run([VALIDATOR, str(f), "domain"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, lab: Lab, tmp_path: Path) -> None:
    host, guest, vcpus, params, port = CASES[case]
    xml = dx.domain_xml(req(lab, host, guest, vcpus, params, port),
                        metadata={"run": "golden", "pid": "4242"})
    golden = DATA / f"{case}.xml"
    if UPDATE:
        golden.write_text(xml)
    assert xml == golden.read_text(), f"{case}: differs from {golden} (see module doc)"
    validate(xml, tmp_path)


def test_model_rules(lab: Lab) -> None:
    root = ET.fromstring(dx.domain_xml(req(lab, "node", "es11", 8)))
    assert root.get("type") == "kvm"
    assert root.find("features/gic") is None  # GICv2 is fine up to 8 vCPUs
    assert root.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]
    assert root.findtext("os/type") == "hvm"
    assert root.find("os/type").attrib == {"arch": "aarch64", "machine": "virt"}  # type: ignore[union-attr]
    nine = ET.fromstring(dx.domain_xml(req(lab, "node", "es11", 9)))
    assert nine.find("features/gic").get("version") == "3"  # type: ignore[union-attr]
    local = ET.fromstring(dx.domain_xml(req(lab, "local", "debian", 4, port=40100)))
    assert local.get("type") == "qemu"
    assert local.findtext("cpu/model") == "cortex-a57"
    assert local.find("devices/interface") is None
    args = [a.get("value") for a in local.iter(f"{{{dx.QEMU_NS}}}arg")]
    assert args == ["-netdev", "user,id=hbnet0,hostfwd=tcp:127.0.0.1:40100-:22", "-device",
                    "virtio-net-pci,netdev=hbnet0,romfile="]
    assert local.findtext("os/cmdline") == "console=ttyAMA0 root=/dev/ram0 panic=-1 <&'\">"
    assert local.findtext("memory") == "512"  # the guest's memory wins over the cell's


def test_numa_split_is_even_and_complete() -> None:
    cells = dx.numa_cells(10, 4097, 3)
    assert [c.cpus for c in cells] == ["0-3", "4-6", "7-9"]
    assert sum(c.memory_mib for c in cells) == 4097
    assert dx.numa_cells(4, 1024, 1) == ()
    assert [c.cpus for c in dx.numa_cells(2, 1024, 2)] == ["0", "1"]
    with pytest.raises(ConfigError, match="numa_nodes=5 is more than the 4 vCPUs"):
        dx.numa_cells(4, 1024, 5)


def test_bad_params_are_config_errors(lab: Lab) -> None:
    with pytest.raises(ConfigError, match="numa_nodes must be a positive integer"):
        dx.domain_spec(req(lab, "node", "es11", 4, {"numa_nodes": "two"}))
    with pytest.raises(ConfigError, match="needs an ssh_port"):
        dx.domain_spec(req(lab, "local", "debian", 4))


def test_metadata_round_trip(lab: Lab) -> None:
    xml = dx.domain_xml(req(lab, "node", "es11", 4), metadata={"run": "r", "pid": "1"})
    meta, files = dx.read_metadata(xml)
    assert meta == {"run": "r", "pid": "1"}
    base = "/var/lib/libvirt/images/harness/hb-golden-node.es11.vcpu4-3"
    assert files == [f"{base}.qcow2", f"{base}_VARS.fd", f"{base}.console.log"]
    assert dx.serial_log_path(xml) == f"{base}.console.log"
    assert dx.read_metadata("<domain><name>x</name></domain>") == ({}, [])
    assert dx.read_metadata("not xml") == ({}, [])


def test_domxml_prints_48_valid_domains_for_eas_66611(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(domxml, [str(REPO / "matrices" / "eas-66611.yaml")])
    assert res.exit_code == 0, res.output
    assert res.output.count("<!-- cell: ") == 48
    assert "<!-- cell: node-3/kylin/vcpu32 -->" in res.output
    res0 = runner.invoke(domxml, [str(REPO / "matrices" / "eas-66611.yaml"), "--null"])
    docs = res0.output.split("\0")
    assert len(docs) == 48
    names = {ET.fromstring(d).findtext("name") for d in docs}
    assert len(names) == 48
    if VALIDATOR is None:
        pytest.skip("virt-xml-validate missing: install Debian package libvirt-clients")
    for i, d in enumerate(docs):
        f = tmp_path / f"{i}.xml"
        f.write_text(d)
        proc = subprocess.run([VALIDATOR, str(f), "domain"], capture_output=True, text=True)
        assert proc.returncode == 0, f"document {i}: {proc.stderr}"


def test_domxml_one_cell_and_unknown_cell() -> None:
    runner = CliRunner()
    m = str(REPO / "matrices" / "eas-66611.yaml")
    res = runner.invoke(domxml, [m, "--cell", "node-1/es11/vcpu16"])
    assert res.exit_code == 0
    assert res.output.startswith("<!-- cell: node-1/es11/vcpu16 -->\n<domain")
    assert res.output.count("<domain") == 1 and '<gic version="3" />' in res.output
    bad = runner.invoke(domxml, [m, "--cell", "node-1/es11/vcpu17"])
    assert bad.exit_code != 0
    assert isinstance(bad.exception, ConfigError)
    assert "no cell 'node-1/es11/vcpu17'" in str(bad.exception)


def test_domxml_on_a_simulated_lab_says_so() -> None:
    res = CliRunner().invoke(domxml, [str(REPO / "matrices" / "eas-66611-sim.yaml")])
    assert res.exit_code != 0
    assert isinstance(res.exception, ConfigError)
    assert "is simulated (sim:" in str(res.exception)


def test_placement_xml(lab: Lab) -> None:
    root = ET.fromstring(dx.domain_xml(req(lab, "node", "es11", 4, {
        "vcpupin": "rr:2,5", "emulatorpin": "0", "numatune": "interleave:0-1,3"})))
    pins = [(p.get("vcpu"), p.get("cpuset")) for p in root.findall("cputune/vcpupin")]
    assert pins == [("0", "2"), ("1", "5"), ("2", "2"), ("3", "5")]
    assert root.find("cputune/emulatorpin").get("cpuset") == "0"  # type: ignore[union-attr]
    assert root.find("numatune/memory").attrib == {  # type: ignore[union-attr]
        "mode": "interleave", "nodeset": "0-1,3"}
    every = ET.fromstring(dx.domain_xml(req(lab, "node", "es11", 3, {"vcpupin": "all:0-3,^1"})))
    assert [p.get("cpuset") for p in every.findall("cputune/vcpupin")] == ["0,2-3"] * 3
    assert every.find("cputune/emulatorpin") is None and every.find("numatune") is None
    none = ET.fromstring(dx.domain_xml(req(lab, "node", "es11", 3, {
        "vcpupin": "none", "emulatorpin": "none", "numatune": "none"})))
    assert none.find("cputune") is None and none.find("numatune") is None


@pytest.mark.parametrize(("params", "message"), [
    ({"vcpupin": "2to2"}, "vcpupin '2to2': expected one of none, 1to1"),
    ({"vcpupin": "rr:"}, "vcpupin 'rr:': expected a CPU list"),
    ({"vcpupin": "rr:3-1"}, "range 3-1 goes backwards"),
    ({"vcpupin": "all:0,^0"}, "'all:0,\\^0' selects no CPU"),
    ({"emulatorpin": "0-x"}, "'x' is not a number|'0-x' is not a number"),
    ({"numatune": "loose:0"}, "mode 'loose' is not one of strict, preferred"),
    ({"numatune": "strict"}, "expected '<mode>:<nodeset>'"),
    ({"numatune": "strict:^1-2"}, "an exclusion is one CPU"),
])
def test_bad_placement_is_a_config_error(lab: Lab, params: dict[str, Any],
                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dx.domain_spec(req(lab, "node", "es11", 4, params))
