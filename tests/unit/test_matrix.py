"""Matrix and lab files: loading, expansion, and every validation error (located)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import ConfigError
from harness.inventory import load_lab
from harness.matrix import load_matrix
from harness.model import RebootMode

REPO = Path(__file__).resolve().parents[2]

LAB = """\
name: t-lab
hosts:
  node-1:
    uri: qemu+ssh://root@node-1/system
    slots: 2
    attributes: {cpu: FT-2500, numa_patch: false}
  node-3:
    uri: qemu+ssh://root@node-3/system
    attributes: {cpu: FT-2500, numa_patch: true}
guests:
  es10:
    boot: {image: images/es10.qcow2}
    kernel_release: 4.18.0-147.5.1.el8_1.5es.10.aarch64
  es11:
    boot: {kernel: k/Image, initrd: k/initrd, cmdline: console=ttyAMA0}
    ssh: {user: root, key: keys/id}
"""

MATRIX = """\
name: t
lab: lab.yaml
axes:
  host: [node-1, node-3]
  guest: [es10, es11]
  vcpus: [4, 8]
boots: 5
"""


def write(tmp: Path, matrix: str = MATRIX, lab: str = LAB) -> Path:
    (tmp / "lab.yaml").write_text(textwrap.dedent(lab))
    (tmp / "m.yaml").write_text(textwrap.dedent(matrix))
    return tmp / "m.yaml"


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_matrix(path)
    return info.value


def at(err: ConfigError) -> tuple[int, int]:
    assert err.where is not None, str(err)
    return err.where.line, err.where.column


# -- the real campaign ---------------------------------------------------------------------

def test_eas_66611_has_48_cells_with_readable_stable_ids() -> None:
    m = load_matrix(REPO / "matrices" / "eas-66611.yaml")
    assert len(m.cells) == 48
    ids = [c.id for c in m.cells]
    assert len(set(ids)) == 48
    assert "node-1/es11/vcpu16" in ids
    assert ids == [c.id for c in load_matrix(REPO / "matrices" / "eas-66611.yaml").cells]
    cell = m.cell("node-3/kylin/vcpu32")
    assert dict(cell.host_attrs)["numa_patch"] is True
    assert m.lab.guest("es10").kernel_release == "4.18.0-147.5.1.el8_1.5es.10.aarch64"


def test_plan_json_lists_the_cells() -> None:
    res = CliRunner().invoke(cli, ["plan", str(REPO / "matrices/eas-66611.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["matrix"] == "eas-66611"
    assert len(data["cells"]) == 48
    assert data["total_boots"] == sum(c["boots"] for c in data["cells"])
    first = data["cells"][0]
    assert {"id", "host", "guest", "vcpus", "boots", "numa_patch"} <= set(first)


def test_plan_table_shows_counts(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["plan", str(write(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "8 cells, 40 boots" in res.output
    assert "node-3/es11/vcpu8" in res.output


# -- loading and expansion -----------------------------------------------------------------

def test_relative_paths_resolve_against_the_naming_file(tmp_path: Path) -> None:
    sub = tmp_path / "labs"
    sub.mkdir()
    (sub / "lab.yaml").write_text(LAB)
    (tmp_path / "m.yaml").write_text(MATRIX.replace("lab: lab.yaml", "lab: labs/lab.yaml"))
    m = load_matrix(tmp_path / "m.yaml")
    boot = m.lab.guest("es10").boot
    assert boot is not None and boot.image == sub.resolve() / "images/es10.qcow2"
    ssh_key = m.lab.guest("es11").ssh.key
    assert ssh_key == sub.resolve() / "keys/id"


def test_hosts_by_attribute_exclude_include_overrides(tmp_path: Path) -> None:
    m = load_matrix(write(tmp_path, """\
        name: t
        lab: lab.yaml
        axes:
          host: {where: {numa_patch: false}}
          guest: all
          vcpus: [4, 8, 16]
          reboot: [cold, warm]
        boots: 5
        exclude:
          - {guest: es10, vcpus: [8, 16]}
        include:
          - {host: node-3, guest: es11, vcpus: 32, reboot: reset}
        overrides:
          - match: {guest: es11}
            boots: 50
            expect: {vcpu_offline: 0.05}
          - match: {numa_patch: true}
            timeouts: {boot: 600}
        """))
    ids = [c.id for c in m.cells]
    # 1 host x 2 guests x 3 vcpus x 2 reboot = 12, minus es10 at 8 and 16 (x2 reboot) = 8, +1
    assert len(ids) == 9
    assert "node-1/es10/vcpu4/reboot=warm" in ids
    assert "node-1/es10/vcpu8/reboot=cold" not in ids
    extra = m.cell("node-3/es11/vcpu32/reboot=reset")
    assert extra.reboot is RebootMode.RESET
    assert extra.boots == 50 and extra.timeouts.boot == 600
    assert extra.expect.vcpu_offline == 0.05 and extra.expect.boot_failure == 0.0
    plain = m.cell("node-1/es10/vcpu4/reboot=cold")
    assert plain.boots == 5 and plain.expect.vcpu_offline == 0.0
    assert plain.timeouts.boot == 300
    assert m.total_boots == sum(c.boots for c in m.cells)


def test_free_axes_are_carried_as_params(tmp_path: Path) -> None:
    axes = "  vcpus: [4]\n  firmware: [edk2-2022, edk2-2023]\n  memory_mib: [1024]\n"
    m = load_matrix(write(tmp_path, MATRIX.replace("  vcpus: [4, 8]\n", axes)))
    cell = m.cell("node-1/es10/vcpu4/firmware=edk2-2022/memory_mib=1024")
    assert dict(cell.params) == {"firmware": "edk2-2022"}
    assert cell.memory_mib == 1024


# -- validation errors: each names file:line:column ----------------------------------------

def test_misspelled_key_suggests(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("boots: 5", "bots: 5")))
    assert at(err) == (7, 1)
    assert "unknown key 'bots'" in str(err) and "did you mean 'boots'" in str(err)
    assert str(err).startswith(str(tmp_path / "m.yaml") + ":7:1: ")


def test_unknown_guest_suggests(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("[es10, es11]", "[es10, es1l]")))
    assert at(err) == (5, 17)
    assert "unknown guest 'es1l'" in str(err) and "did you mean" in str(err)


def test_unknown_host(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("[node-1, node-3]", "[node-1, node-2]")))
    assert at(err) == (4, 18)
    assert "unknown host 'node-2'" in str(err)


def test_wrong_type_and_range(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("boots: 5", "boots: many")))
    assert at(err) == (7, 8) and "boots" in str(err)
    err = error_of(write(tmp_path, MATRIX.replace("[4, 8]", "[4, 0]")))
    assert at(err) == (6, 14) and "out of range" in str(err)
    err = error_of(write(tmp_path, MATRIX + "expect: {vcpu_offline: 1.5}\n"))
    assert at(err)[0] == 8 and "vcpu_offline" in str(err)


def test_attribute_selection_matching_nothing(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("[node-1, node-3]",
                                                  "{where: {cpu: FT-2000}}")))
    assert at(err) == (4, 9) and "no host of the lab matches" in str(err)
    err = error_of(write(tmp_path, MATRIX.replace("[node-1, node-3]",
                                                  "{where: {numa_patched: true}}")))
    assert "no host has attribute 'numa_patched'" in str(err)
    assert "did you mean 'numa_patch'" in str(err)


def test_empty_product(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("[4, 8]", "[]")))
    assert "empty product" in str(err)
    err = error_of(write(tmp_path, MATRIX + "exclude:\n  - {vcpus: [4, 8]}\n"))
    assert "expands to no cells" in str(err)


def test_duplicate_cells(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("[4, 8]", "[4, 8, 4]")))
    assert "duplicate" in str(err) and at(err) == (6, 10)
    dup = "include:\n  - {host: node-1, guest: es10, vcpus: 4}\n"
    err = error_of(write(tmp_path, MATRIX + dup))
    assert "duplicate cell 'node-1/es10/vcpu4'" in str(err) and at(err) == (9, 5)


def test_exclude_and_override_must_match_something(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX + "exclude:\n  - {vcpus: 64}\n"))
    assert "matches no cell" in str(err) and at(err) == (9, 5)
    err = error_of(write(tmp_path, MATRIX + "overrides:\n  - match: {gest: es10}\n    boots: 2\n"))
    assert "'gest' is neither an axis nor a host attribute" in str(err)
    assert "did you mean 'guest'" in str(err)


def test_unknown_axis_close_to_a_known_one(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("  vcpus: [4, 8]", "  vcpu: [4, 8]")))
    assert "did you mean 'vcpus'" in str(err)


def test_bad_reboot_mode(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX + "reboot: hot\n"))
    assert at(err) == (8, 9) and "reboot" in str(err)


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("boots: 5", "boots: [5")))
    assert err.where is not None and err.where.file.endswith("m.yaml")
    assert "YAML syntax error" in str(err)


def test_missing_lab_file(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MATRIX.replace("lab.yaml", "nope.yaml"))
    err = error_of(tmp_path / "m.yaml")
    assert at(err) == (2, 6) and "lab file not found" in str(err)


def test_several_errors_reported_at_once(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("[es10, es11]", "[es9, es12]")))
    lines = str(err).splitlines()
    assert len(lines) == 2 and all(":5:" in line for line in lines)


# -- lab file errors -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("    slots: 2", "    slot: 2", (5, 5), "unknown key 'slot' (did you mean 'slots'?)"),
        ("    slots: 2", "    slots: 0", (5, 12), "greater than or equal to 1"),
        ("uri: qemu+ssh://root@node-3/system", "uri: node-3", (8, 10), "not a libvirt URI"),
        ("{cpu: FT-2500, numa_patch: false}", "{guest: x}", (6, 17), "reserved"),
        ("boot: {image: images/es10.qcow2}", "boot: {image: a.qcow2, kernel: k}", (12, 11),
         "either 'image'"),
        ("  es11:", "  'es 11':", (14, 3), "may only use"),
    ],
)
def test_lab_errors(tmp_path: Path, old: str, new: str, where: tuple[int, int],
                    message: str) -> None:
    assert old in LAB
    (tmp_path / "lab.yaml").write_text(LAB.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_lab(tmp_path / "lab.yaml")
    assert message in str(info.value)
    assert at(info.value) == where


def test_sim_hosts_need_a_model(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("name: s\nhosts:\n  s1: {uri: 'sim:///'}\n"
                                       "guests:\n  g: {}\n")
    with pytest.raises(ConfigError, match="'sim' section"):
        load_lab(tmp_path / "lab.yaml")
    (tmp_path / "lab.yaml").write_text("name: s\nhosts:\n  s1: {uri: 'sim:///'}\n"
                                       "guests:\n  g: {}\nsim: {seed: 1}\n")
    assert load_lab(tmp_path / "lab.yaml").host("s1").is_sim


def test_real_hosts_need_boot_media(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB.replace("    boot: {image: images/es10.qcow2}\n", ""))
    with pytest.raises(ConfigError, match="has no 'boot'"):
        load_lab(tmp_path / "lab.yaml")


# -- the command line: no traceback, non-zero exit -------------------------------------------

def test_cli_prints_located_error_without_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write(tmp_path, MATRIX.replace("boots: 5", "bots: 5"))
    proc = subprocess.run([sys.executable, "-m", "harness", "plan", str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert re.search(r"m\.yaml:7:1: unknown key 'bots' \(did you mean 'boots'\?\)", proc.stderr)
    assert proc.stdout == ""


# -- placement axes (harness.backend.placement) ----------------------------------------------

def test_placement_axes_become_cell_params(tmp_path: Path) -> None:
    axes = ("  vcpus: [4]\n  vcpupin: [none, 'rr:0-3']\n  emulatorpin: ['0']\n"
            "  numatune: ['strict:0']\n")
    m = load_matrix(write(tmp_path, MATRIX.replace("  vcpus: [4, 8]\n", axes)))
    cell = m.cell("node-1/es10/vcpu4/vcpupin=rr:0-3/emulatorpin=0/numatune=strict:0")
    assert dict(cell.params) == {"vcpupin": "rr:0-3", "emulatorpin": "0",
                                 "numatune": "strict:0"}
    assert len(m.cells) == 8


@pytest.mark.parametrize(("axes", "where", "message"), [
    ("  vcpupin: [none, 'rr:0-x']\n", (7, 19), "vcpupin 'rr:0-x': '0-x' is not a number"),
    ("  numatune: 'loose:0'\n", (7, 13), "mode 'loose' is not one of strict"),
    ("  emulatorpin: [{a: 1}]\n", (7, 17), "values are strings"),
    ("  cpuset: ['3-1']\n", (7, 12), "range 3-1 goes backwards"),
    ("  vcpu_pin: [1to1]\n", (7, 3), "did you mean 'vcpupin'"),
])
def test_bad_placement_values_are_located(tmp_path: Path, axes: str,
                                          where: tuple[int, int], message: str) -> None:
    err = error_of(write(tmp_path, MATRIX.replace("boots: 5\n", "") .replace(
        "  vcpus: [4, 8]\n", "  vcpus: [4, 8]\n" + axes)))
    assert message in str(err), str(err)
    assert at(err) == where, str(err)


def test_bad_placement_in_an_include_is_located(tmp_path: Path) -> None:
    inc = ("  vcpus: [4]\n  vcpupin: [none]\n", "include:\n"
           "  - {host: node-1, guest: es10, vcpus: 8, vcpupin: 'all:'}\n")
    err = error_of(write(tmp_path, MATRIX.replace("  vcpus: [4, 8]\n", inc[0]) + inc[1]))
    assert "vcpupin 'all:': expected a CPU list" in str(err) and at(err) == (10, 52), str(err)


def test_numa_nodes_beyond_the_vcpus_is_located_at_load(tmp_path: Path) -> None:
    """Found when the matrix is loaded (plan, run, pytest), not when the first domain of
    that cell is defined in the middle of a run."""
    numa = "vcpus: [4, 8]\n  numa_nodes: [1, 8]"
    err = error_of(write(tmp_path, MATRIX.replace("vcpus: [4, 8]", numa)))
    assert at(err)[0] == 7
    assert ("cell 'node-1/es10/vcpu4/numa_nodes=8': numa_nodes is more than its vCPUs "
            "(and 3 more cells)") in str(err)
    ok = write(tmp_path, MATRIX.replace("vcpus: [4, 8]", "vcpus: [8]\n  numa_nodes: [1, 8]"))
    assert {dict(c.params)["numa_nodes"] for c in load_matrix(ok).cells} == {1, 8}
