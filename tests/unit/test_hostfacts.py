"""Host facts (the Ansible role's file, or this machine) into a run and its reports; the
latency-vs-host-delay scatter's geometry."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from harness import hostfacts as hf
from harness.inventory import load_lab
from harness.report.html import scatter_svg
from harness.report.view import DelayPoint

LAB = """\
name: f
hosts:
  node-1:
    uri: qemu+ssh://root@node-1/system
    attributes: {numa_patch: false, rack: A3}
  node-9:
    uri: qemu+ssh://root@node-9/system
  here:
    uri: qemu:///system
    attributes: {numa_patch: true}
  broken:
    uri: qemu+ssh://root@broken/system
guests:
  g: {boot: {kernel: /k}}
"""

# what ansible/roles/kvm_host/tasks/facts.yml writes (to_nice_json, sort_keys)
ROLE_FILE = {"architecture": "aarch64", "cpu_model": "FT-2500", "cpus": 128,
             "host": "node-1", "kernel_release": "4.19.90-2102.2.0.0062.ctl2.aarch64",
             "lab": "eas-66611", "numa_nodes": 16, "numa_patch": False,
             "numa_patch_source": "inventory", "os": "Kylin 10", "extra": {"x": 1}}


def test_gather_reads_the_roles_files_and_this_machine(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(textwrap.dedent(LAB))
    facts_dir = tmp_path / "hosts"
    facts_dir.mkdir()
    (facts_dir / "node-1.json").write_text(json.dumps(ROLE_FILE, indent=2))
    (facts_dir / "broken.json").write_text("{not json")
    lab = load_lab(tmp_path / "lab.yaml")
    got = hf.gather(lab, ["node-1", "node-9", "here", "broken", "node-1"], facts_dir)
    assert sorted(got) == ["broken", "here", "node-1"]  # node-9: never provisioned
    n1 = got["node-1"]
    assert n1["cpu_model"] == "FT-2500" and n1["numa_patch"] is False
    assert n1["kernel_release"].startswith("4.19.90") and n1["numa_nodes"] == 16
    assert "extra" not in n1 and n1["source"] == f"ansible: {facts_dir / 'node-1.json'}"
    assert got["broken"]["error"].startswith("not JSON")
    here = got["here"]
    assert here["source"] == "this machine" and here["numa_patch"] is True
    assert here["kernel_release"] == Path("/proc/sys/kernel/osrelease").read_text().strip()
    assert here["cpus"] >= 1 and here["numa_nodes"] >= 1
    assert isinstance(here["cpu_model"], str) and here["cpu_model"]


def test_cpu_model_and_os_parsers() -> None:
    assert hf.cpu_model_of("processor\t: 0\nmodel name\t: AMD EPYC\n") == "AMD EPYC"
    arm = "processor\t: 0\nCPU implementer\t: 0x70\nCPU part\t: 0x662\n"
    assert hf.cpu_model_of(arm) == "implementer 0x70 part 0x662"
    assert hf.cpu_model_of("") is None
    assert hf.os_name('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == \
        "Debian GNU/Linux 12 (bookworm)"
    assert hf.os_name("") is None
    assert hf.fact_rows(None) == [] and hf.fact_rows({"a": {"x": 1}, "b": 3}) == [
        ("a", {"x": 1})]


def _p(delay: float, lat: float | None, outcome: str = "ok", kind: str = "boot") -> DelayPoint:
    return DelayPoint("c", 0, 1, delay, lat, outcome, kind)


def test_scatter_geometry() -> None:
    assert scatter_svg(()) is None
    assert scatter_svg((_p(1.0, None),)) is None  # ok without a latency: nothing to plot
    svg = scatter_svg((_p(0.0, 0.1), _p(2.0, 1.0), _p(10.0, None, "vcpu_offline", "trial"),
                       _p(3.0, None)))
    assert svg is not None
    assert svg["n"] == 3 and svg["failed"] == 1 and svg["left_out"] == 1
    d0, d1, d2 = svg["dots"]
    assert d0["x"] == svg["left"] and d0["y"] < svg["base"]
    assert d1["x"] > d0["x"] and d1["y"] < d0["y"]  # more delay right, more latency up
    assert d2["x"] > d1["x"] and d2["y"] < svg["band"]  # in the "never came up" band
    assert d2["hollow"] and not d0["hollow"] and d2["color"] == "#e03131"
    assert "never came up" in d2["label"] and "CPU1" in d2["label"]
    assert all(svg["left"] <= d["x"] <= svg["right"] for d in svg["dots"])
    assert svg["xticks"][0]["label"] == "0"
