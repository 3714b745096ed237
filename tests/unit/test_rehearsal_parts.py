"""The rehearsal lab's pure parts: the distro image recipe and disk layout, the rehearsal
host's addresses and subnet check, what a remote host says over SSH, the remote freezer's
answers, and the versions shown in reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backend.hostinfo import interface_macs, lib_version, neigh_address, parse_versions
from harness.lab import distro, rehearsal
from harness.lab.remote_freeze import RemoteFreeze, parse_freeze_output
from harness.model import BootResult, Outcome


def test_recipe_digest_follows_every_input() -> None:
    base = distro.recipe("ssh-ed25519 A", "ssh-ed25519 B")
    d = distro.recipe_digest(base)
    assert d == distro.recipe_digest(distro.recipe("ssh-ed25519 A", "ssh-ed25519 B"))
    assert d != distro.recipe_digest(distro.recipe("ssh-ed25519 C", "ssh-ed25519 B"))
    assert d != distro.recipe_digest({**base, "packages": [*base["packages"], "vim"]})


def test_gpt_and_boot_entries() -> None:
    gpt = distro.gpt_script(100, 200)
    assert "start=2048, size=100, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in gpt
    assert "start=2148, size=200, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE" in gpt
    entry = distro.loader_entry("cloud-arm64", "6.1.0-9-cloud-arm64", "u-u-i-d")
    assert "linux /cloud-arm64/Image" in entry and "initrd /cloud-arm64/initrd.img" in entry
    assert "root=UUID=u-u-i-d" in entry and "console=ttyAMA0" in entry
    assert "quiet" not in entry  # the serial console must show the kernel's messages
    assert distro.loader_conf("arm64").startswith("default arm64.conf\ntimeout 0\n")
    assert "ClientIdentifier=mac" in distro.NETWORK_UNIT and "Name=en*" in distro.NETWORK_UNIT


def test_dpkg_status_keeps_installed_packages_only() -> None:
    text = ("Package: a\nStatus: install ok installed\nVersion: 1.0\n\n"
            "Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n"
            "Package: c\nStatus: install ok installed\nVersion: 3:4-5\nDescription: x\n y\n")
    assert distro.parse_dpkg_status(text) == {"a": "1.0", "c": "3:4-5"}


def test_complete_needs_the_same_recipe_and_every_image(tmp_path: Path) -> None:
    dl = distro.DistroLayout(tmp_path)
    img = {f: {"path": str(tmp_path / f"{f}.qcow2")} for f in distro.FLAVOURS}
    for i in img.values():
        Path(i["path"]).write_bytes(b"x")
    assert distro.complete(dl, {"recipe": "r1", "images": img}, "r1")
    assert not distro.complete(dl, {"recipe": "r0", "images": img}, "r1")
    Path(img["arm64"]["path"]).unlink()
    assert not distro.complete(dl, {"recipe": "r1", "images": img}, "r1")


def test_rehearsal_instances_stay_in_the_benchmark_range(tmp_path: Path) -> None:
    from harness.lab.paths import Layout

    lay = Layout(tmp_path)
    a, b = rehearsal.host_layout(lay), rehearsal.host_layout(lay, 7)
    assert (a.host_addr(), str(a.guest_net)) == ("198.18.20.2", "198.18.21.0/24")
    assert (b.host_addr(), str(b.guest_net)) == ("198.18.34.2", "198.18.35.0/24")
    assert a.netns != b.netns and a.root != b.root
    assert not a.link_net.overlaps(b.link_net) and not a.guest_net.overlaps(b.guest_net)
    with pytest.raises(rehearsal.RehearsalError):
        rehearsal.host_layout(lay, 99)
    u = rehearsal.uri(lay)
    assert u.startswith("qemu+ssh://root@198.18.20.2/system?keyfile=")
    assert f"command={a.ssh_wrapper}" in u
    assert f"UserKnownHostsFile={a.known_hosts}" in rehearsal.ssh_wrapper(a)
    assert "ListenAddress 198.18.20.2" in rehearsal.sshd_config(a, tmp_path / "ak")


def test_subnet_conflicts_ignore_other_nets_and_our_own_link(tmp_path: Path) -> None:
    from harness.lab.paths import Layout

    hl = rehearsal.host_layout(Layout(tmp_path))
    routes = ("default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel\n"
              f"198.18.20.0/30 dev {hl.veth} proto kernel\n")
    addrs = (f"2: eth0    inet 192.0.2.2/24 brd 192.0.2.255\n"
             f"9: {hl.veth}    inet 198.18.20.1/30 scope global\n")
    assert rehearsal.subnet_conflicts(hl, routes, addrs) == []
    busy = rehearsal.subnet_conflicts(hl, "198.18.0.0/16 dev br9\n",
                                      "4: br9    inet 198.18.21.1/24 scope global\n")
    assert busy == ["route 198.18.0.0/16 dev br9", "address 198.18.21.1/24 on br9"]


def test_guest_address_from_the_host_neighbour_table() -> None:
    xml = ("<domain><devices><interface type='network'><mac address='52:54:00:AA:bb:01'/>"
           "</interface></devices></domain>")
    macs = interface_macs(xml)
    assert macs == ["52:54:00:aa:bb:01"]
    neigh = ("198.18.21.9 dev vmbhbr0 lladdr 52:54:00:aa:bb:02 REACHABLE\n"
             "198.18.21.7 dev vmbhbr0 lladdr 52:54:00:aa:bb:01 FAILED\n"
             "198.18.21.8 dev vmbhbr0 lladdr 52:54:00:aa:bb:01 STALE\n")
    assert neigh_address(neigh, macs) == "198.18.21.8"
    assert neigh_address("198.18.21.8 dev vmbhbr0  INCOMPLETE\n", macs) is None
    assert interface_macs("not xml") == []


def test_versions_from_the_host() -> None:
    text = ("6.18.44-fc-v1252\nQEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\n"
            "libvirtd (libvirt) 9.0.0\n")
    assert parse_versions(text) == {"host_kernel": "6.18.44-fc-v1252", "qemu": "7.2.22",
                                    "libvirt": "9.0.0"}
    assert parse_versions("garbage\n\x00") == {}
    assert lib_version(9000000) == "9.0.0" and lib_version(10002003) == "10.2.3"


def test_remote_freezer_answers() -> None:
    assert parse_freeze_output("cgroup2 /sys/fs/cgroup/x/vcpu1 -\n") == (
        "cgroup2", "/sys/fs/cgroup/x/vcpu1", None)
    assert parse_freeze_output("noise\ncgroup1 /f/vmbh-stall-d-7 /f/\n") == (
        "cgroup1", "/f/vmbh-stall-d-7", "/f/")
    with pytest.raises(ValueError):
        parse_freeze_output("no cgroup freezer on this host")
    from harness.errors import InfraError

    with pytest.raises(InfraError):
        RemoteFreeze(5, "bad name; rm -rf /", lambda c: "")
    seen: list[str] = []
    fr = RemoteFreeze(5, "hb-x-0", lambda c: seen.append(c) or "cgroup2 /c/vcpu1 -")
    fr.freeze()
    fr.kill_process()
    fr.thaw()
    assert "t=5" in seen[0] and "kill -9" in seen[1]
    assert seen[2] == "echo 0 > /c/vcpu1/cgroup.freeze"
    fr.thaw()  # idempotent
    assert len(seen) == 3


def test_versions_reach_every_report_format() -> None:
    from harness.report.build import cell_versions

    def boot(i: int, v: dict[str, str] | None) -> BootResult:
        extra = (("versions", v),) if v is not None else ()
        return BootResult("r", "c", i, Outcome.OK, extra=extra)

    got = cell_versions([boot(0, {"qemu": "7.2", "guest_kernel": "6.1-a", "address_source":
                                  "lease"}), boot(1, None),
                         boot(2, {"qemu": "7.2", "guest_kernel": "6.1-b"})])
    assert got == (("guest_kernel", "6.1-a, 6.1-b"), ("qemu", "7.2"))
