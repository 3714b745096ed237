"""The Ansible inventory generated from the lab file: mapping, refusals, the plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.ansible_inventory import lab_inventory, main
from harness.errors import ConfigError
from harness.inventory import load_lab

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "matrices" / "labs" / "eas-66611-lab.yaml"


def _lab(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "lab.yaml"
    f.write_text(text)
    return f


def test_real_lab_maps_hosts_attributes_and_guests() -> None:
    inv = lab_inventory(load_lab(LAB))
    assert inv.groups == {"kvm_hosts": ["node-1", "node-3"], "controller": ["localhost"]}
    n1, n3 = inv.host_vars["node-1"], inv.host_vars["node-3"]
    assert n1["numa_patch"] is False and n3["numa_patch"] is True
    assert n1["cpu"] == "FT-2500" and n1["rack"] == "A3"
    assert n1["ansible_host"] == "node-1" and n1["ansible_user"] == "root"
    assert n1["lab_bridge"] == "br0"
    assert n1["lab_storage_dir"] == "/var/lib/libvirt/images/harness"
    assert n1["lab_slots"] == 4 and n1["lab_uri"] == "qemu+ssh://root@node-1/system"
    known = (LAB.parent / "known_hosts").resolve()
    assert n1["ansible_ssh_common_args"] == f"-o UserKnownHostsFile={known}"
    guests = inv.group_vars["kvm_hosts"]["lab_guests"]
    assert set(guests) == {"es10", "es11", "es14", "es15", "centos-8.1", "kylin"}
    assert guests["es11"]["image"] == "/var/lib/libvirt/images/harness/base/es11.qcow2"
    assert guests["es11"]["kernel_release"] == "4.18.0-147.5.1.el8_1.5es.11.aarch64"
    ctl = inv.host_vars["localhost"]
    assert ctl["ansible_connection"] == "local" and ctl["lab_file"] == str(LAB.resolve())


def test_script_json_has_every_group_and_hostvars() -> None:
    out = lab_inventory(load_lab(LAB)).as_script_json()
    assert sorted(out["all"]["children"]) == ["controller", "kvm_hosts"]
    assert out["kvm_hosts"]["hosts"] == ["node-1", "node-3"]
    assert out["_meta"]["hostvars"]["node-3"]["numa_patch"] is True


def test_ssh_section_wins_over_uri_and_local_uri_is_local(tmp_path: Path) -> None:
    key = tmp_path / "k"
    f = _lab(tmp_path, f"""
name: t
hosts:
  a:
    uri: qemu+ssh://admin@a.example/system
    ssh: {{user: ops, host: 10.0.0.5, port: 2222, key: {key}}}
  b: {{uri: "qemu+ssh://b.example:2200/system"}}
  here: {{uri: "qemu:///system"}}
guests:
  g: {{boot: {{image: g.qcow2}}}}
""")
    inv = lab_inventory(load_lab(f), use_lab_known_hosts=False)
    a, b, here = (inv.host_vars[n] for n in ("a", "b", "here"))
    assert (a["ansible_host"], a["ansible_user"], a["ansible_port"]) == ("10.0.0.5", "ops", 2222)
    assert a["ansible_ssh_private_key_file"] == str(key)
    assert (b["ansible_host"], b["ansible_user"], b["ansible_port"]) == ("b.example", "root", 2200)
    assert here["ansible_connection"] == "local"
    assert "ansible_ssh_common_args" not in a
    assert inv.group_vars["kvm_hosts"]["lab_guests"]["g"]["image"] == str(tmp_path / "g.qcow2")


def test_simulated_hosts_are_left_out(tmp_path: Path) -> None:
    f = _lab(tmp_path, """
name: t
hosts:
  real: {uri: "qemu+ssh://root@n1/system"}
  fake: {uri: "sim:///x"}
guests:
  g: {boot: {image: /i.qcow2}}
sim: {}
""")
    inv = lab_inventory(load_lab(f))
    assert inv.groups["kvm_hosts"] == ["real"] and inv.skipped == ("fake",)
    assert "fake" not in inv.host_vars


@pytest.mark.parametrize(
    ("attr", "why"),
    [("become", "already use"), ("ansible_port", "already use"), ("lab_uri", "already use"),
     ("has-dash", "not a valid variable name"), ("class", "not a valid variable name")],
)
def test_attribute_that_cannot_be_a_host_variable_is_refused_with_its_place(
    tmp_path: Path, attr: str, why: str
) -> None:
    f = _lab(tmp_path, f"""name: t
hosts:
  n1:
    uri: qemu+ssh://root@n1/system
    attributes:
      numa_patch: true
      {attr}: 1
guests:
  g: {{boot: {{image: /i.qcow2}}}}
""")
    with pytest.raises(ConfigError) as err:
        lab_inventory(load_lab(f), reserved={"become", "hosts"})
    assert why in str(err.value) and repr(attr) in str(err.value)
    assert err.value.where is not None
    assert (err.value.where.file, err.value.where.line) == (str(f), 7)


def test_controller_named_like_a_lab_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="also a lab host"):
        lab_inventory(load_lab(LAB), controller="node-1")


def test_main_prints_inventory_json_and_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(LAB)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["_meta"]["hostvars"]["node-1"]["numa_patch"] is False
    bad = _lab(tmp_path, "name: t\nhosts:\n  n1: {uri: nope}\nguests: {g: {}}\n")
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:3:") and "Traceback" not in err
    assert main([]) == 2 and "usage" in capsys.readouterr().err


# ansible from the environment running the tests (.venv in CI): the plugin imports harness
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"
needs_ansible = pytest.mark.skipif(
    not ANSIBLE_INVENTORY.exists(),
    reason=f"ansible-core is not installed next to {sys.executable} "
    "(pip install -e '.[ansible]')",
)


def _ansible_inventory(cfg: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible" / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(cfg.parent / "tmp"))
    env.pop("HARNESS_LAB", None)
    return subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(cfg), "--list"], env=env,
                          cwd=REPO / "ansible", text=True, capture_output=True, timeout=120)


@needs_ansible
def test_plugin_gives_ansible_the_lab(tmp_path: Path) -> None:
    cfg = tmp_path / "lab.harness_lab.yml"
    cfg.write_text(f"plugin: harness_lab\nlab: {os.path.relpath(LAB, tmp_path)}\n")
    res = _ansible_inventory(cfg)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["kvm_hosts"]["hosts"] == ["node-1", "node-3"]
    assert out["_meta"]["hostvars"]["node-3"]["numa_patch"] is True
    assert out["_meta"]["hostvars"]["node-1"]["lab_guests"]["kylin"]["os"] == "kylin"


@needs_ansible
def test_plugin_reports_a_lab_mistake_with_its_place(tmp_path: Path) -> None:
    lab = _lab(tmp_path, "name: t\nhosts:\n  n1:\n    uri: qemu+ssh://n1/system\n"
                         "    attributes: {serial: 3}\nguests: {g: {boot: {image: /i}}}\n")
    cfg = tmp_path / "lab.harness_lab.yml"
    cfg.write_text(f"plugin: harness_lab\nlab: {lab}\n")
    res = _ansible_inventory(cfg)
    assert res.returncode != 0
    # 'serial' is a play keyword: it cannot be a host variable
    flat = "".join(res.stderr.split())  # ansible wraps long lines
    assert f"{lab}:5:" in flat and "attribute'serial'ofhost'n1'" in flat
