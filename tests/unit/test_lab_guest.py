"""The initramfs guest builder: module dependency order, init scripts, ELF needs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.lab import elf
from harness.lab.guest import (
    GuestVariant,
    builtin_modules,
    inittab,
    load_order,
    modinfo_depends,
    module_index,
    rcs_script,
)


def _ko(path: Path, depends: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF....\0license=GPL\0depends=" + depends.encode() +
                     b"\0intree=Y\0name=" + path.stem.encode() + b"\0")
    return path


def test_modinfo_depends_reads_the_modinfo_string() -> None:
    assert modinfo_depends(b"x\0depends=virtio_ring,virtio,net_failover\0vermagic=6.1") == \
        ["virtio_ring", "virtio", "net_failover"]
    assert modinfo_depends(b"x\0depends=\0name=virtio") == []
    assert modinfo_depends(b"no modinfo at all") == []


def test_load_order_puts_dependencies_first_and_skips_builtins(tmp_path: Path) -> None:
    m = tmp_path / "lib/modules/6.1.0-x"
    _ko(m / "kernel/drivers/net/virtio_net.ko", "virtio_ring,virtio,net_failover")
    _ko(m / "kernel/drivers/net/net_failover.ko", "failover")
    _ko(m / "kernel/net/core/failover.ko", "")
    _ko(m / "kernel/drivers/virtio/virtio_pci.ko", "virtio_pci_modern_dev,virtio_ring,virtio")
    _ko(m / "kernel/drivers/virtio/virtio_pci_modern_dev.ko", "")
    (m / "modules.builtin").write_text("kernel/drivers/virtio/virtio.ko\n"
                                       "kernel/drivers/virtio/virtio_ring.ko\n")
    order = load_order(("virtio_pci", "virtio_net"), module_index(m), builtin_modules(m))
    assert order == ["virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover",
                     "virtio_net"]


def test_load_order_names_a_missing_module(tmp_path: Path) -> None:
    _ko(tmp_path / "a.ko", "b")
    with pytest.raises(ValueError, match="'b' is neither built in nor shipped"):
        load_order(("a",), module_index(tmp_path))


def test_load_order_detects_cycles(tmp_path: Path) -> None:
    _ko(tmp_path / "a.ko", "b")
    _ko(tmp_path / "b.ko", "a")
    with pytest.raises(ValueError, match="cycle"):
        load_order(("a",), module_index(tmp_path))


def test_init_scripts_start_dropbear_only_in_the_ssh_variant() -> None:
    ssh, nossh = GuestVariant("ssh", True), GuestVariant("nossh", False)
    assert "dropbear" in inittab(ssh.ssh) and "dropbear" not in inittab(nossh.ssh)
    rcs = rcs_script(["failover", "virtio_net"], ssh=False)
    assert rcs.index("insmod /lib/modules/failover.ko") < \
        rcs.index("insmod /lib/modules/virtio_net.ko") < rcs.index("ip link set eth0 up")
    assert "never starts an SSH server" in rcs
    assert "10.0.2.15/24" in rcs and "via 10.0.2.2" in rcs


def test_elf_needed_on_a_real_binary() -> None:
    ls = shutil.which("ls")
    assert ls is not None
    assert "libc.so.6" in elf.needed(Path(ls).resolve().read_bytes())
    with pytest.raises(ValueError, match="not a 64-bit"):
        elf.needed(b"#!/bin/sh\n")
