"""``harness lab setup --distro``: a real Debian 12 arm64 distro image, booted by UEFI.

What the FT-2500 lab boots, rebuilt here from Debian packages only:

- ``mmdebstrap --arch=arm64`` (maintainer scripts run under ``qemu-user-static``) with a
  minimal package set: two kernel flavours (``linux-image-arm64`` and
  ``linux-image-cloud-arm64``), initramfs-tools (one small initramfs per kernel: virtio
  and ext4 only, ``MODULES=list``), systemd with systemd-networkd (DHCP on ``en*``,
  ``ClientIdentifier=mac`` since every clone shares one image), OpenSSH with the lab's
  authorized key and the lab's guest host key;
- the disk is assembled without mounting anything (this host kernel may have neither GPT
  nor FAT support): the root file system by ``mkfs.ext4 -d``, the EFI system partition by
  ``mkfs.vfat`` + mtools, the GPT by ``sfdisk`` on a plain file, the partitions written
  at their offsets; then ``qemu-img convert`` to qcow2;
- boot path: UEFI firmware (AAVMF, no Secure Boot) -> ``\\EFI\\BOOT\\BOOTAA64.EFI`` =
  systemd-boot (from Debian's ``systemd-boot-efi``) -> the kernel's EFI stub with its
  initramfs, ``console=ttyAMA0`` without ``quiet``. One image per kernel flavour, which
  differ only in the ESP's ``loader.conf`` default entry (both entries are present).

Cached under ``<cache>/distro``; rebuilt only when the recipe (this module's settings, the
lab keys) changes. ``manifest.json`` records what was built, from what, and how long the
cold build took.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.lab import debs, keys
from harness.lab.debs import SetupError
from harness.lab.paths import Layout

RECIPE_VERSION = 1  # bump when the build steps change: forces a rebuild
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
FLAVOURS = {"arm64": "linux-image-arm64", "cloud-arm64": "linux-image-cloud-arm64"}
PACKAGES = ("systemd", "systemd-sysv", "udev", "kmod", "initramfs-tools", "openssh-server",
            "iproute2", "procps", *FLAVOURS.values())
# what the controller's machine needs to build and boot the image (Debian packages)
HOST_PACKAGES = ("mmdebstrap", "qemu-user-static", "qemu-efi-aarch64", "mtools",
                 "dosfstools", "fdisk", "e2fsprogs", "qemu-utils", "gzip", "arch-test")
SYSTEMD_BOOT = "systemd-boot-efi"
SYSTEMD_BOOT_EFI = "usr/lib/systemd/boot/efi/systemd-bootaa64.efi"
# never unpacked into the image: documentation and drivers a virt guest cannot use
# (less to unpack under emulation, less for depmod, a smaller image)
PATH_EXCLUDES = (
    "/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/lib/modules/*/kernel/drivers/gpu/*", "/lib/modules/*/kernel/drivers/media/*",
    "/lib/modules/*/kernel/drivers/net/wireless/*", "/lib/modules/*/kernel/net/wireless/*",
    "/lib/modules/*/kernel/sound/*", "/lib/modules/*/kernel/drivers/infiniband/*",
    "/lib/modules/*/kernel/drivers/staging/*", "/lib/modules/*/kernel/drivers/iio/*",
    "/lib/modules/*/kernel/drivers/bluetooth/*", "/lib/modules/*/kernel/net/bluetooth/*",
    "/lib/firmware/*",
)
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")
ROOT_LABEL = "vmbh-root"
ESP_MB = 160
ROOT_SLACK_MB = 768  # free space in the guest's root file system
GUEST_CONSOLE = "console=ttyAMA0"
# UEFI firmware for the guests (the plain build: no Secure Boot, which refuses an
# unsigned loader, "Access Denied"); the VARS template is copied per boot
FIRMWARE_CODE = "/usr/share/AAVMF/AAVMF_CODE.fd"
FIRMWARE_VARS = "/usr/share/AAVMF/AAVMF_VARS.fd"
BINFMT_CONF = "/usr/lib/binfmt.d/qemu-aarch64.conf"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

Say = Callable[[str], None]

INITRAMFS_HOOK = """#!/bin/sh
# written by vm-boot-harness: the few modules a virtio guest needs to mount its root
PREREQ=""
prereqs() {{ echo "$PREREQ"; }}
case "$1" in prereqs) prereqs; exit 0;; esac
. /usr/share/initramfs-tools/hook-functions
for m in {}; do force_load "$m"; done
""".format(" ".join(INITRAMFS_MODULES))

NETWORK_UNIT = """# written by vm-boot-harness: DHCP on the first wired NIC, whatever its name
# (enp0s2 under plain QEMU, enp1s0 under libvirt); identified by MAC since clones of one
# image share a machine-id
[Match]
Name=en*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
"""

SSHD_CONF = """# written by vm-boot-harness
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""


class DistroError(SetupError):
    """The distro image could not be built; the message says what failed."""


@dataclass(frozen=True)
class DistroLayout:
    root: Path  # <cache>/distro

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def log(self) -> Path:
        return self.root / "build.log"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def image(self, flavour: str) -> Path:
        return self.root / f"debian12-{flavour}.qcow2"


def distro_layout(lay: Layout) -> DistroLayout:
    return DistroLayout(lay.root / "distro")


def recipe(client_pub: str, host_pub: str) -> dict[str, Any]:
    """Everything the image depends on; its digest decides whether to rebuild (pure)."""
    return {"version": RECIPE_VERSION, "suite": SUITE, "mirrors": list(MIRRORS),
            "packages": list(PACKAGES), "excludes": list(PATH_EXCLUDES),
            "initramfs_modules": list(INITRAMFS_MODULES), "network": NETWORK_UNIT,
            "sshd": SSHD_CONF, "console": GUEST_CONSOLE, "esp_mb": ESP_MB,
            "slack_mb": ROOT_SLACK_MB, "client_pub": client_pub, "host_pub": host_pub}


def recipe_digest(rec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(dl: DistroLayout) -> dict[str, Any]:
    try:
        data = json.loads(dl.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def complete(dl: DistroLayout, manifest: dict[str, Any], digest: str) -> bool:
    images = manifest.get("images")
    if manifest.get("recipe") != digest or not isinstance(images, dict):
        return False
    if set(images) != set(FLAVOURS):
        return False
    return all(Path(i.get("path", "")).exists() for i in images.values())


def loader_entry(flavour: str, release: str, root_uuid: str) -> str:
    return (f"title Debian 12 ({release})\n"
            f"linux /{flavour}/Image\n"
            f"initrd /{flavour}/initrd.img\n"
            f"options root=UUID={root_uuid} rw {GUEST_CONSOLE} panic=-1\n")


def loader_conf(flavour: str) -> str:
    return f"default {flavour}.conf\ntimeout 0\nconsole-mode keep\neditor no\n"


def gpt_script(esp_sectors: int, root_sectors: int) -> str:
    """sfdisk input: the ESP at 1 MiB, then the root file system (pure)."""
    return ("label: gpt\n"
            f"start=2048, size={esp_sectors}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, "
            "name=esp\n"
            f"start={2048 + esp_sectors}, size={root_sectors}, "
            "type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, name=root\n")


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Installed package -> version, from ``var/lib/dpkg/status`` (pure)."""
    out: dict[str, str] = {}
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if ":" in line and not line.startswith(" "):
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
        if "installed" in fields.get("Status", "").split() and "Package" in fields:
            out[fields["Package"]] = fields.get("Version", "")
    return out


# --- steps with side effects -------------------------------------------------------------

def _run(cmd: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
         ) -> None:
    with log.open("a", encoding="utf-8") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        try:
            proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                  env=env, check=False)
        except FileNotFoundError as exc:
            raise DistroError(f"{cmd[0]} is not installed: {exc}") from exc
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-8:]
        raise DistroError(f"`{' '.join(cmd[:3])} ...` failed ({proc.returncode}); "
                          f"see {log}:\n  " + "\n  ".join(tail))


def missing_host_packages() -> list[str]:
    from harness.lab.doctor import _dpkg_installed

    return [p for p in HOST_PACKAGES if not _dpkg_installed(p)]


def install_host_packages(say: Say, install: bool) -> None:
    missing = missing_host_packages()
    if not missing:
        return
    if not install or os.geteuid() != 0:
        raise DistroError("building the distro image needs: " + " ".join(missing) +
                          "\n  fix: apt-get install -y --no-install-recommends " +
                          " ".join(missing))
    say(f"installing {' '.join(missing)}")
    debs.run(["apt-get", *debs.APT_OPTS, "-o", "DPkg::Lock::Timeout=900", "install", "-y",
              "--no-install-recommends", *missing])


def binfmt_problem() -> str | None:
    if not (BINFMT_DIR / "register").exists():
        return f"binfmt_misc is not mounted on {BINFMT_DIR}"
    if not (BINFMT_DIR / "qemu-aarch64").exists():
        return "no qemu-aarch64 binfmt handler registered"
    return None


def ensure_binfmt(say: Say) -> None:
    """arm64 maintainer scripts run through qemu-user-static: binfmt_misc must be mounted
    and the handler registered (with the F flag, so it works inside the chroot)."""
    if not (BINFMT_DIR / "register").exists():
        say(f"mounting binfmt_misc on {BINFMT_DIR}")
        debs.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
    if not (BINFMT_DIR / "qemu-aarch64").exists():
        try:
            line = Path(BINFMT_CONF).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DistroError(f"{BINFMT_CONF} is missing (qemu-user-static): {exc}") from None
        say("registering the qemu-aarch64 binfmt handler")
        (BINFMT_DIR / "register").write_text(line + "\n", encoding="ascii")
    problem = binfmt_problem()
    if problem:
        raise DistroError(problem)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _stage(pre: Path, post: Path, lab_keys: keys.LabKeys) -> None:
    """Files copied into the root before the packages (``pre``) and after (``post``)."""
    _write(pre / "etc/initramfs-tools/conf.d/vmbh", "MODULES=list\nCOMPRESS=gzip\n")
    _write(pre / "etc/initramfs-tools/hooks/vmbh", INITRAMFS_HOOK, 0o755)
    # no "quiet" and no splash: the serial console must show the kernel's messages
    _write(post / "etc/hostname", "vmbh-guest\n")
    _write(post / "etc/systemd/network/20-wired.network", NETWORK_UNIT)
    _write(post / "etc/ssh/sshd_config.d/vmbh.conf", SSHD_CONF)
    _write(post / "root/.ssh/authorized_keys", lab_keys.client_pub + "\n", 0o600)
    (post / "root/.ssh").chmod(0o700)
    (post / "root").chmod(0o700)
    # the lab's guest host key, so the controller can verify every clone
    pem = lab_keys.host_key_dropbear.parent / "guest_host_ed25519"
    shutil.copyfile(pem, post / "etc/ssh/ssh_host_ed25519_key")
    (post / "etc/ssh/ssh_host_ed25519_key").chmod(0o600)
    _write(post / "etc/ssh/ssh_host_ed25519_key.pub", lab_keys.host_pub + "\n")
    wants = post / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    if not link.is_symlink():
        link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    # an empty machine-id: each boot makes its own (clones must not share one)
    _write(post / "etc/machine-id", "")


def _mmdebstrap(rootdir: Path, pre: Path, post: Path, log: Path) -> None:
    cmd = ["mmdebstrap", "--arch=arm64", "--variant=essential", "--mode=root",
           "--include=" + ",".join(PACKAGES), "--aptopt=APT::Install-Recommends \"false\""]
    for pat in PATH_EXCLUDES:
        cmd.append(f"--dpkgopt=path-exclude={pat}")
    cmd += [f'--setup-hook=cp -a {pre}/. "$1"/',
            # generated by openssh-server's postinst: the lab's key replaces them
            '--customize-hook=rm -f "$1"/etc/ssh/ssh_host_*',
            f'--customize-hook=cp -a {post}/. "$1"/',
            '--customize-hook=rm -f "$1"/var/lib/dbus/machine-id',
            SUITE, str(rootdir), *MIRRORS]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    _run(cmd, log, env=env)


def _kernels(rootdir: Path) -> dict[str, str]:
    """flavour -> kernel release found in the built root's /boot."""
    out = {}
    for flavour in FLAVOURS:
        found = sorted(p.name[len("vmlinuz-"):] for p in (rootdir / "boot").glob("vmlinuz-*")
                       if p.name.endswith(f"-{flavour}")
                       and not p.name.endswith(f"-cloud-{flavour}"))
        if not found:
            raise DistroError(f"the built root has no vmlinuz-*-{flavour} in /boot")
        rel = found[-1]
        if not (rootdir / "boot" / f"initrd.img-{rel}").exists():
            raise DistroError(f"the built root has no initrd.img-{rel} (initramfs-tools?)")
        out[flavour] = rel
    return out


def _efi_image(vmlinuz: Path, dest: Path) -> None:
    """Debian's arm64 vmlinuz is a gzip'd Image; the EFI stub needs it uncompressed."""
    data = vmlinuz.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:2] != b"MZ":
        raise DistroError(f"{vmlinuz} is not an EFI-stub kernel image (no MZ header)")
    dest.write_bytes(data)


def _du_mb(path: Path) -> int:
    out = subprocess.run(["du", "-sm", "--apparent-size", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split()[0])


def build(lay: Layout, *, install: bool = True, force: bool = False,
          say: Say = lambda s: None) -> dict[str, Any]:
    """Build (or reuse) the distro images; returns the manifest."""
    dl = distro_layout(lay)
    lab_keys = keys.ensure_keys(lay.keys)
    rec = recipe(lab_keys.client_pub, lab_keys.host_pub)
    digest = recipe_digest(rec)
    old = read_manifest(dl)
    if not force and complete(dl, old, digest):
        return old
    if os.geteuid() != 0:
        raise DistroError("building the distro image needs root (mmdebstrap --mode=root, "
                          "binfmt_misc); run `sudo harness lab setup --distro`")
    t0 = time.monotonic()
    install_host_packages(say, install)
    ensure_binfmt(say)
    sb = debs.fetch(SYSTEMD_BOOT, lay.debs, lay.pkgs)
    bootefi = sb.root / SYSTEMD_BOOT_EFI
    if not bootefi.exists():
        raise DistroError(f"{sb.deb.name} has no {SYSTEMD_BOOT_EFI}")
    dl.root.mkdir(parents=True, exist_ok=True)
    if dl.work.exists():
        shutil.rmtree(dl.work)
    dl.work.mkdir()
    log = dl.log
    log.write_text(f"# distro image build, recipe {digest}\n", encoding="utf-8")
    pre, post, rootdir = dl.work / "pre", dl.work / "post", dl.work / "root"
    _stage(pre, post, lab_keys)
    say("mmdebstrap --arch=arm64 (maintainer scripts under qemu-user: tens of minutes "
        f"the first time; log in {log})")
    t_strap = time.monotonic()
    _mmdebstrap(rootdir, pre, post, log)
    strap_s = time.monotonic() - t_strap
    releases = _kernels(rootdir)
    status = parse_dpkg_status((rootdir / "var/lib/dpkg/status").read_text(
        encoding="utf-8", errors="replace"))

    say("assembling the disk (ext4 root, FAT ESP with systemd-boot, GPT) without mounting")
    esp_dir = dl.work / "esp"
    esp_dir.mkdir()
    root_uuid = str(uuid.uuid4())
    for flavour, rel in releases.items():
        (esp_dir / flavour).mkdir()
        _efi_image(rootdir / "boot" / f"vmlinuz-{rel}", esp_dir / flavour / "Image")
        shutil.copyfile(rootdir / "boot" / f"initrd.img-{rel}", esp_dir / flavour / "initrd.img")
    esp = dl.work / "esp.img"
    _run(["mkfs.vfat", "-F", "32", "-n", "ESP", "-C", str(esp), str(ESP_MB * 1024)], log)
    mt = ["-i", str(esp)]
    _run(["mmd", *mt, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries",
          *(f"::/{f}" for f in releases)], log)
    _run(["mcopy", *mt, str(bootefi), "::/EFI/BOOT/BOOTAA64.EFI"], log)
    for flavour, rel in releases.items():
        _run(["mcopy", *mt, str(esp_dir / flavour / "Image"),
              str(esp_dir / flavour / "initrd.img"), f"::/{flavour}/"], log)
        entry = dl.work / f"{flavour}.conf"
        entry.write_text(loader_entry(flavour, rel, root_uuid), encoding="utf-8")
        _run(["mcopy", *mt, str(entry), "::/loader/entries/"], log)
    root_mb = _du_mb(rootdir) + ROOT_SLACK_MB
    rootimg = dl.work / "root.img"
    _run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-U", root_uuid, "-d", str(rootdir),
          str(rootimg), f"{root_mb}M"], log)
    esp_sectors = ESP_MB * 2048
    root_sectors = root_mb * 2048
    disk = dl.work / "disk.raw"
    with disk.open("wb") as raw:
        raw.truncate((2048 + esp_sectors + root_sectors + 2048) * 512)
    table = dl.work / "gpt.sfdisk"
    table.write_text(gpt_script(esp_sectors, root_sectors), encoding="utf-8")
    with table.open("rb") as stdin, log.open("a", encoding="utf-8") as f:
        proc = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", str(disk)],
                              stdin=stdin, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise DistroError(f"sfdisk failed on {disk}; see {log}")
    _run(["dd", f"if={rootimg}", f"of={disk}", "bs=1M", f"seek={1 + ESP_MB}",
          "conv=notrunc,sparse", "status=none"], log)
    images: dict[str, Any] = {}
    for flavour, rel in releases.items():
        conf = dl.work / "loader.conf"
        conf.write_text(loader_conf(flavour), encoding="utf-8")
        _run(["mcopy", "-o", *mt, str(conf), "::/loader/loader.conf"], log)
        _run(["dd", f"if={esp}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc,sparse",
              "status=none"], log)
        out = dl.image(flavour)
        tmp = out.with_suffix(".tmp")
        _run(["qemu-img", "convert", "-O", "qcow2", str(disk), str(tmp)], log)
        tmp.replace(out)
        images[flavour] = {"path": str(out), "release": rel,
                           "package": f"linux-image-{rel}",
                           "version": status.get(f"linux-image-{rel}", "")}
    shutil.rmtree(dl.work)
    seconds = time.monotonic() - t0
    manifest = {"recipe": digest, "recipe_version": RECIPE_VERSION, "images": images,
                "root_uuid": root_uuid, "systemd_boot": sb.deb.name,
                "packages": {p: status.get(p, "") for p in
                             ("systemd", "openssh-server", "initramfs-tools", "udev")},
                "firmware": {"code": FIRMWARE_CODE, "vars": FIRMWARE_VARS},
                "build_seconds": round(seconds, 1), "mmdebstrap_seconds": round(strap_s, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmpm = dl.manifest.with_suffix(".tmp")
    tmpm.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmpm.replace(dl.manifest)
    return manifest
