"""What the local lab needs on this machine, checked one by one; every missing piece
comes with the command that fixes it (``harness lab doctor`` prints them)."""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.lab import embed, freezer
from harness.lab.paths import Layout

HOST_PACKAGES = ("qemu-system-arm", "libvirt-daemon-driver-qemu", "libvirt-clients")
QEMU_DRIVER_GLOB = "/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""  # the command (or action) that fixes it
    needed_for: str = "booting guests"
    optional: bool = False  # only for the rehearsal lab: reported, not a failure


def _dpkg_installed(pkg: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                          text=True, check=False)
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _sudo() -> str:
    return "" if os.geteuid() == 0 else "sudo "


def host_checks() -> list[Check]:
    s = _sudo()
    out = []
    missing = [p for p in HOST_PACKAGES if not _dpkg_installed(p)]
    out.append(Check("host packages", not missing,
                     f"missing: {' '.join(missing)}" if missing else " ".join(HOST_PACKAGES),
                     f"{s}apt-get install -y --no-install-recommends {' '.join(missing)}"))
    qemu = shutil.which("qemu-system-aarch64")
    out.append(Check("qemu-system-aarch64", qemu is not None, qemu or "not on PATH",
                     f"{s}apt-get install -y qemu-system-arm"))
    drivers = list(Path("/").glob(QEMU_DRIVER_GLOB.lstrip("/")))
    out.append(Check("libvirt QEMU driver", bool(drivers),
                     str(drivers[0]) if drivers else "libvirt_driver_qemu.so not found",
                     f"{s}apt-get install -y libvirt-daemon-driver-qemu"))
    out.append(Check("python libvirt module", importlib.util.find_spec("libvirt") is not None,
                     "import libvirt", "pip install libvirt-python (needs libvirt-dev, "
                     "pkg-config)"))
    out.append(Check("libvirt-qemu user and group", _user_exists("libvirt-qemu"),
                     "libvirt's QEMU driver resolves it even in embed mode",
                     f"{s}groupadd --system libvirt-qemu && {s}useradd --system --gid "
                     "libvirt-qemu --no-create-home --home-dir /var/lib/libvirt --shell "
                     "/usr/sbin/nologin libvirt-qemu"))
    out.append(Check("/var/log/libvirt", Path("/var/log/libvirt").is_dir(), "",
                     f"{s}mkdir -p /var/log/libvirt"))
    for tool, pkg in (("apt-get", "apt"), ("dpkg-deb", "dpkg")):
        out.append(Check(tool, shutil.which(tool) is not None, "a Debian-family system",
                         f"install {pkg}", "harness lab setup"))
    return out


def stall_checks() -> list[Check]:
    ms = freezer.mounts()
    v2 = any(m.fstype == "cgroup2" for m in ms)
    v1 = freezer.v1_freezer_mount(ms, mount_own=False)
    root = os.geteuid() == 0
    return [
        Check("cgroup freezer", v2 or v1 is not None,
              ("cgroup v2 (vCPU cgroups made by libvirt)" if v2 else "") +
              (f"; v1 freezer at {v1}" if v1 else ""),
              "mount -t cgroup2 none /sys/fs/cgroup (or a v1 freezer hierarchy)",
              "stall faults"),
        Check("root for the stall injector", root, "writes cgroup files of QEMU threads",
              "run as root (sudo)", "stall faults"),
    ]


def cache_checks(lay: Layout) -> list[Check]:
    out = []
    guests: dict[str, Any] = {}
    try:
        manifest = json.loads(lay.manifest.read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and isinstance(manifest.get("guests"), dict):
            guests = manifest["guests"]
    except (OSError, ValueError):
        pass
    try:
        ok = bool(guests) and all(Path(p).exists() for g in guests.values()
                                  for p in (g["kernel"], *g["initrd"].values()))
    except (KeyError, TypeError, AttributeError):
        ok = False
    out.append(Check("guest kernels and initramfs", ok,
                     ", ".join(f"{k}: {v.get('release')}" for k, v in guests.items())
                     if ok else f"not built in {lay.root}", "harness lab setup"))
    keys = lay.keys / "id_ed25519"
    out.append(Check("lab SSH key", keys.exists(), str(keys), "harness lab setup"))
    conf = lay.libvirt / "etc" / "qemu.conf"
    out.append(Check("embed qemu.conf", conf.exists(), str(conf), "harness lab setup"))
    pid = embed.holder(lay.libvirt)
    out.append(Check("embed root free", pid is None,
                     f"held by process {pid} (libvirt allows one process per embed root)"
                     if pid is not None else str(lay.libvirt),
                     f"wait for process {pid} (a harness run?) to finish"))
    problem = embed.root_problem(lay.libvirt)
    out.append(Check("embed root path length", problem is None, problem or str(lay.libvirt),
                     "export VMBH_CACHE=/var/tmp/vmbh (a short folder)"))
    return out


BOOT_NEEDS = ("qemu-system-aarch64", "libvirt QEMU driver", "python libvirt module")


def cannot_boot() -> str | None:
    """Why this machine cannot boot local-lab guests at all (for tests' skip reasons),
    or None when it can."""
    missing = [c.name for c in failing(host_checks(), lambda c: c.name in BOOT_NEEDS)]
    if not missing:
        return None
    return (f"local lab needs {', '.join(missing)} (apt-get install qemu-system-arm "
            "libvirt-daemon-driver-qemu)")


def rehearsal_checks(lay: Layout) -> list[Check]:
    """The rehearsal lab (docs/lab-rehearsal.md): the distro images and what the
    rehearsal host needs. Optional: the local lab works without them."""
    from harness.lab import distro, keys, rehearsal

    s = _sudo()
    need = "the rehearsal lab"
    out = []
    missing = distro.missing_host_packages()
    out.append(Check("distro build packages", not missing,
                     "missing: " + " ".join(missing) if missing else " ".join(
                         distro.HOST_PACKAGES),
                     f"{s}apt-get install -y --no-install-recommends {' '.join(missing)}",
                     need, optional=True))
    dl = distro.distro_layout(lay)
    man = distro.read_manifest(dl)
    digest = None
    if (lay.keys / "id_ed25519").exists():
        k = keys.ensure_keys(lay.keys)
        digest = distro.recipe_digest(distro.recipe(k.client_pub, k.host_pub))
    ok = digest is not None and distro.complete(dl, man, digest)
    images = man.get("images") or {}
    detail = (", ".join(f"{f}: {i.get('release')}" for f, i in sorted(images.items())) +
              f" (built {man.get('built_at')} in {man.get('build_seconds')} s)") if ok else (
        f"not built in {dl.root}" if not man else f"stale in {dl.root} (its recipe changed)")
    out.append(Check("distro images", ok, detail,
                     f"{s}harness lab setup --distro (tens of minutes the first time)", need,
                     optional=True))
    tools = [t for t in ("dnsmasq", "iptables", "virt-ssh-helper", "unshare")
             if shutil.which(t) is None]
    out.append(Check("rehearsal host tools", not tools,
                     "missing: " + " ".join(tools) if tools else "dnsmasq, iptables, "
                     "virt-ssh-helper, unshare",
                     f"{s}apt-get install -y dnsmasq-base iptables libvirt-clients", need,
                     optional=True))
    st = rehearsal.status(lay)
    out.append(Check("rehearsal host", st["sshd"] == st["libvirtd"] == "up",
                     ", ".join(f"{k} {v}" for k, v in st.items() if k in (
                         "netns", "sshd", "libvirtd", "dnsmasq")),
                     f"{s}harness lab up", need, optional=True))
    return out


def all_checks(lay: Layout) -> list[Check]:
    return host_checks() + stall_checks() + cache_checks(lay) + rehearsal_checks(lay)


def failing(checks: list[Check], keep: Callable[[Check], bool] = lambda c: True) -> list[Check]:
    return [c for c in checks if not c.ok and keep(c)]
