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


def _members(data: bytes) -> dict[str, tuple[int, bytes]]:
    import stat as st

    out, pos = {}, 0
    while True:
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos: pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (st.S_IFMT(mode), body)


def _resolve(members: dict[str, tuple[int, bytes]], path: str) -> str:
    import posixpath
    import stat as st

    for _ in range(10):
        kind, body = members[path]
        if kind != st.S_IFLNK:
            return path
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), body.decode()))
    raise AssertionError(f"symlink loop at {path}")


def test_a_whole_initramfs_from_real_elf_files(tmp_path: Path) -> None:
    """Host binaries stand in for the arm64 ones: the same ELF rules apply."""
    from harness.lab.guest import LIBDIR, GuestInputs, build_initramfs

    ls = Path(shutil.which("ls") or "/bin/ls").resolve()
    libroot = tmp_path / "libs"
    todo, seen = list(elf.needed(ls.read_bytes())), set()
    while todo:
        so = todo.pop()
        if so in seen:
            continue
        seen.add(so)
        src = next(p for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64")
                   if (p := Path(d) / so).exists())
        dst = libroot / "lib/x86_64-linux-gnu" / so
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        todo.extend(elf.needed(dst.read_bytes()))
    (tmp_path / "bb/bin").mkdir(parents=True)
    (tmp_path / "bb/bin/busybox").write_bytes(b"busybox")
    (tmp_path / "db/usr/sbin").mkdir(parents=True)
    (tmp_path / "db/usr/sbin/dropbear").write_bytes(ls.read_bytes())
    mods = tmp_path / "mods"
    _ko(mods / "virtio_pci.ko", "")
    _ko(mods / "virtio_net.ko", "failover")
    _ko(mods / "failover.ko", "")
    inp = GuestInputs(tmp_path / "bb", tmp_path / "db", (libroot,), mods,
                      "ssh-ed25519 AAAA lab", b"hostkey")
    ssh = _members(build_initramfs(inp, GuestVariant("ssh", True)))
    for lib in seen:
        assert f"{LIBDIR}/{lib}" in ssh
    interp = elf.interpreter(ls.read_bytes())
    assert interp is not None
    assert _resolve(ssh, interp.strip("/")) == f"{LIBDIR}/{Path(interp).name}"
    for name, (kind, _) in ssh.items():
        if kind == 0o120000:
            target = _resolve(ssh, name)  # every symlink lands on a member
            assert target in ssh
    assert _resolve(ssh, "init") == "bin/busybox" and _resolve(ssh, "bin/sh") == "bin/busybox"
    assert ssh["root/.ssh/authorized_keys"][1] == b"ssh-ed25519 AAAA lab\n"
    assert b"virtio_net" in ssh["etc/init.d/rcS"][1]
    nossh = _members(build_initramfs(inp, GuestVariant("nossh", False)))
    assert "usr/sbin/dropbear" not in nossh and "etc/dropbear/dropbear_ed25519_host_key" \
        not in nossh
