"""The initramfs guest: busybox init, the kernel's virtio-net modules, a static network
for QEMU user-mode networking, and dropbear serving SSH with the lab's keys.

Everything here is pure except reading the extracted packages; the archive is built with
``cpio.archive`` (no root, no ``cpio`` tool, same bytes for the same input).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.lab import elf
from harness.lab.cpio import Entry, archive

# QEMU user-mode networking: the guest is 10.0.2.15, the gateway 10.0.2.2
GUEST_IP = "10.0.2.15/24"
GATEWAY = "10.0.2.2"
# modules that give the guest a virtio-net eth0 (deps are resolved from .modinfo)
NET_MODULES = ("virtio_pci", "virtio_net")
LIBDIR = "lib/aarch64-linux-gnu"
BANNER = "vmbh-guest"  # printed on the console by the guest's init
HOST_KEY_PATH = "etc/dropbear/dropbear_ed25519_host_key"
# busybox applets linked at build time (the rest by `busybox --install -s` at boot)
EARLY_APPLETS = ("sh", "mount", "mkdir", "insmod", "ip", "cat", "echo", "sleep")


@dataclass(frozen=True)
class GuestVariant:
    """``ssh``: the normal guest; ``nossh``: boots fine but never starts dropbear
    (a boot failure as seen from the controller, with a console to show it);
    ``cpulocked``: SSH as the unprivileged user ``vmbh`` (same key), and init makes
    ``/sys/devices/system/cpu/online`` readable by root only: the online list cannot be
    read by the SSH user (``cat`` exits 1, Permission denied), every CPU being online."""

    name: str
    ssh: bool
    online_unreadable: bool = False


VARIANTS = (GuestVariant("ssh", True), GuestVariant("nossh", False),
            GuestVariant("cpulocked", True, online_unreadable=True))
LOCKED_USER = "vmbh"  # the cpulocked guest's SSH user (uid 1000)


def modinfo_depends(ko: bytes) -> list[str]:
    """The ``depends=`` list of a kernel module's ``.modinfo`` section."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)", ko)
    if not m or not m.group(1):
        return []
    return [d.decode() for d in m.group(1).split(b",") if d]


def _norm(name: str) -> str:
    return name.replace("-", "_")


def module_index(modules_dir: Path) -> dict[str, Path]:
    """Module name (``_`` form) -> its .ko file under ``lib/modules/<release>``."""
    return {_norm(p.name[: -len(".ko")]): p for p in modules_dir.rglob("*.ko")}


def load_order(wanted: tuple[str, ...], index: dict[str, Path],
               builtin: set[str] | None = None) -> list[str]:
    """Names of the modules to insmod, dependencies first. Built-in modules are
    skipped; a module that is neither present nor built in is a ``ValueError``."""
    builtin = builtin or set()
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        name = _norm(name)
        if name in order or name in builtin:
            return
        if name not in index:
            raise ValueError(f"kernel module {name!r} is neither built in nor shipped")
        if name in visiting:
            raise ValueError(f"kernel module dependency cycle at {name!r}")
        visiting.add(name)
        for dep in modinfo_depends(index[name].read_bytes()):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for w in wanted:
        visit(w)
    return order


def builtin_modules(modules_dir: Path) -> set[str]:
    f = modules_dir / "modules.builtin"
    if not f.exists():
        return set()
    return {_norm(Path(line.strip()).name.removesuffix(".ko"))
            for line in f.read_text().splitlines() if line.strip()}


def rcs_script(modules: list[str], ssh: bool, online_unreadable: bool = False) -> str:
    loads = "\n".join(f"insmod /lib/modules/{m}.ko" for m in modules)
    lock = ("chmod 0400 /sys/devices/system/cpu/online\n"
            f"echo \"{BANNER}: cpu online list readable by root only\"\n"
            if online_unreadable else "")
    tail = ("echo \"" + BANNER + ": starting dropbear on port 22\"" if ssh else
            "echo \"" + BANNER + ": this guest never starts an SSH server\"")
    return f"""#!/bin/sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /root /var/log
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
/bin/busybox --install -s
{loads}
ip link set lo up
ip addr add {GUEST_IP} dev eth0
ip link set eth0 up
ip route add default via {GATEWAY}
echo "{BANNER}: up, kernel $(uname -r), cpus online $(cat /sys/devices/system/cpu/online)"
{lock}{tail}
"""


def inittab(ssh: bool) -> str:
    lines = ["::sysinit:/etc/init.d/rcS"]
    if ssh:
        lines.append(f"::respawn:/usr/sbin/dropbear -F -E -s -p 22 -r /{HOST_KEY_PATH}")
    lines += ["::ctrlaltdel:/bin/reboot", "::shutdown:/bin/umount -a -r", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class GuestInputs:
    """Extracted packages (``dpkg-deb -x`` roots) and keys the guest is made of."""

    busybox: Path  # busybox-static root (bin/busybox)
    dropbear: Path  # dropbear-bin root (usr/sbin/dropbear)
    lib_roots: tuple[Path, ...]  # libc6, libcrypt1, zlib1g, libtomcrypt1, ... roots
    modules_dir: Path  # <kernel root>/lib/modules/<release>
    authorized_key: str  # one OpenSSH public key line
    host_key: bytes  # dropbear-format host key


def _soname_index(lib_roots: tuple[Path, ...]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for root in lib_roots:
        for sub in ("lib", "usr/lib"):
            for _rel, p in _tree(root, sub):
                if ".so" in p.name:
                    index.setdefault(p.name, p)
    return index


def shared_libs(binary: Path, lib_roots: tuple[Path, ...]) -> list[tuple[str, bytes]]:
    """(archive path, content) of every library ``binary`` needs, transitively, all in
    ``lib/aarch64-linux-gnu``; ``ValueError`` names a library no package provides."""
    index = _soname_index(lib_roots)
    out: list[tuple[str, bytes]] = []
    todo = list(elf.needed(binary.read_bytes()))
    done: set[str] = set()
    while todo:
        so = todo.pop(0)
        if so in done:
            continue
        done.add(so)
        if so not in index:
            raise ValueError(f"{binary.name} needs {so}, which none of the extracted "
                             "library packages provides")
        data = index[so].resolve().read_bytes()
        out.append((f"{LIBDIR}/{so}", data))
        todo.extend(elf.needed(data))
    return out


def _dirs_for(path: str, have: set[str]) -> Iterator[Entry]:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d not in have:
            have.add(d)
            yield Entry.dir(d)


def _tree(root: Path, sub: str) -> Iterator[tuple[str, Path]]:
    """(archive path, file) for files and symlinks under ``root/sub``."""
    base = root / sub
    if not base.exists():
        return
    for p in sorted(base.rglob("*")):
        if p.is_symlink() or p.is_file():
            yield str(p.relative_to(root)), p


def build_initramfs(inp: GuestInputs, variant: GuestVariant) -> bytes:
    """The initramfs (newc cpio, uncompressed: faster to unpack under TCG)."""
    modules = load_order(NET_MODULES, module_index(inp.modules_dir),
                         builtin_modules(inp.modules_dir))
    index = module_index(inp.modules_dir)
    entries: list[Entry] = []
    have: set[str] = set()

    def add(e: Entry) -> None:
        entries.extend(_dirs_for(e.path, have))
        entries.append(e)

    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run",
              "var/log", "etc/init.d", "etc/dropbear", "lib/modules"):
        entries.extend(_dirs_for(d + "/x", have))
    entries.append(Entry.dir("root", 0o700))
    have.add("root")
    entries.append(Entry.dir("root/.ssh", 0o700))
    have.add("root/.ssh")
    add(Entry.chardev("dev/console", 5, 1))
    add(Entry.file("bin/busybox", (inp.busybox / "bin/busybox").read_bytes(), 0o755))
    for applet in EARLY_APPLETS:
        add(Entry.symlink(f"bin/{applet}", "busybox"))
    add(Entry.symlink("init", "bin/busybox"))
    add(Entry.symlink("sbin/init", "../bin/busybox"))
    if variant.ssh:
        add(Entry.file("usr/sbin/dropbear",
                       (inp.dropbear / "usr/sbin/dropbear").read_bytes(), 0o755))
        add(Entry.file(HOST_KEY_PATH, inp.host_key, 0o600))
        add(Entry.file("root/.ssh/authorized_keys", (inp.authorized_key + "\n").encode(), 0o600))
        have_files: set[str] = set()
        for rel, data in shared_libs(inp.dropbear / "usr/sbin/dropbear", inp.lib_roots):
            add(Entry.file(rel, data, 0o755))
            have_files.add(rel)
        interp = elf.interpreter((inp.dropbear / "usr/sbin/dropbear").read_bytes())
        if interp is not None and f"{LIBDIR}/{posixpath.basename(interp)}" not in have_files:
            raise ValueError(f"dropbear's interpreter {interp} is not among its libraries")
        if interp is not None and interp.strip("/") not in have_files:
            link = interp.strip("/")
            add(Entry.symlink(link, posixpath.relpath(
                f"{LIBDIR}/{posixpath.basename(interp)}", posixpath.dirname(link))))
    for m in modules:
        add(Entry.file(f"lib/modules/{m}.ko", index[m].read_bytes()))
    passwd, group = "root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n"
    if variant.online_unreadable:  # an unprivileged SSH user, its key readable by it
        home = f"home/{LOCKED_USER}"
        for d in (home, f"{home}/.ssh"):
            add(Entry.dir(d, 0o755))
            have.add(d)
        add(Entry.file(f"{home}/.ssh/authorized_keys",
                       (inp.authorized_key + "\n").encode(), 0o644))
        passwd += f"{LOCKED_USER}:x:1000:1000:{LOCKED_USER}:/{home}:/bin/sh\n"
        group += f"{LOCKED_USER}:x:1000:\n"
    add(Entry.file("etc/init.d/rcS", rcs_script(modules, variant.ssh,
                                                 variant.online_unreadable).encode(), 0o755))
    add(Entry.file("etc/inittab", inittab(variant.ssh).encode()))
    add(Entry.file("etc/passwd", passwd.encode()))
    add(Entry.file("etc/group", group.encode()))
    add(Entry.file("etc/shells", b"/bin/sh\n"))
    add(Entry.file("etc/hostname", b"vmbh-guest\n"))
    return archive(entries)
