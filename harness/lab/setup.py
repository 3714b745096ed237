"""``harness lab setup``: everything the local lab needs, idempotent, into the cache.

1. host prerequisites (Debian packages, the ``libvirt-qemu`` user, ``/var/log/libvirt``):
   installed when running as root, otherwise reported with the command to run;
2. arm64 packages: two real Debian kernels (``linux-image-arm64`` and
   ``linux-image-cloud-arm64``, whatever ABI they point at today), busybox-static,
   dropbear-bin and its libraries, downloaded and extracted (never installed);
3. the lab's SSH keys, then one initramfs per kernel and variant (``ssh``, ``nossh``);
4. the ``qemu:///embed`` root with its ``etc/qemu.conf``;
5. ``manifest.json``: what was built from what. A second run with the same builder and
   files in place does no apt call at all (seconds); ``refresh=True`` re-resolves kernels.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.lab import debs, doctor, embed, guest, keys
from harness.lab.debs import SetupError
from harness.lab.paths import Layout

BUILDER_VERSION = 3  # bump when the initramfs layout changes: forces a rebuild
FLAVOURS = tuple(debs.KERNEL_META)

Say = Callable[[str], None]


@dataclass
class SetupResult:
    layout: Layout
    built: list[str] = field(default_factory=list)  # what this run made
    reused: bool = False  # everything was already there
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)


def _fix_host(say: Say, install: bool) -> None:
    bad = doctor.failing(doctor.host_checks())
    if not bad:
        return
    if not install or os.geteuid() != 0:
        lines = "\n".join(f"  {c.name}: {c.detail}\n    fix: {c.fix}" for c in bad)
        raise SetupError(f"this machine lacks what the local lab needs:\n{lines}")
    missing_pkgs = [p for p in doctor.HOST_PACKAGES if not doctor._dpkg_installed(p)]
    if missing_pkgs:
        say(f"installing {' '.join(missing_pkgs)}")
        debs.run(["apt-get", *debs.APT_OPTS, "install", "-y", "--no-install-recommends",
                  *missing_pkgs])
    if not doctor._user_exists("libvirt-qemu"):
        say("creating the libvirt-qemu user and group")
        try:
            debs.run(["groupadd", "--system", "libvirt-qemu"])
        except SetupError as exc:
            if "already exists" not in str(exc):
                raise
        debs.run(["useradd", "--system", "--gid", "libvirt-qemu", "--no-create-home",
                  "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin",
                  "libvirt-qemu"])
    Path("/var/log/libvirt").mkdir(parents=True, exist_ok=True)
    still = doctor.failing(doctor.host_checks())
    if still:
        raise SetupError("still missing after installing: " +
                         "; ".join(f"{c.name} ({c.fix})" for c in still))


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _complete(lay: Layout, manifest: dict[str, Any]) -> bool:
    if manifest.get("builder") != BUILDER_VERSION:
        return False
    gs = manifest.get("guests") or {}
    if set(gs) != set(FLAVOURS):
        return False
    if any(set(g.get("initrd") or {}) != {v.name for v in guest.VARIANTS}
           for g in gs.values()):
        return False  # a guest variant added since: build it
    files = [Path(g["kernel"]) for g in gs.values()]
    files += [Path(p) for g in gs.values() for p in g["initrd"].values()]
    files += [lay.keys / "id_ed25519", lay.libvirt / "etc" / "qemu.conf"]
    return all(f.exists() for f in files)


def read_manifest(lay: Layout) -> dict[str, Any]:
    try:
        data = json.loads(lay.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def setup(lay: Layout, *, refresh: bool = False, install: bool = True,
          say: Say = lambda s: None) -> SetupResult:
    t0 = time.monotonic()
    res = SetupResult(lay)
    _fix_host(say, install)
    lay.root.mkdir(parents=True, exist_ok=True)
    problem = embed.root_problem(lay.libvirt)
    if problem:
        raise SetupError(problem)
    if embed.write_qemu_conf(lay.libvirt):
        res.built.append(str(lay.libvirt / "etc" / "qemu.conf"))
    lab_keys = keys.ensure_keys(lay.keys)
    old = read_manifest(lay)
    if not refresh and _complete(lay, old) and old.get("keys") == lab_keys.client_pub:
        res.reused, res.manifest = True, old
        res.seconds = time.monotonic() - t0
        return res

    if not debs.has_arm64():
        say("enabling the arm64 architecture for apt (dpkg --add-architecture arm64)")
        debs.add_arm64()
    say("fetching busybox-static, dropbear-bin and its libraries (arm64)")
    bb = debs.fetch(debs.BUSYBOX, lay.debs, lay.pkgs)
    db = debs.fetch(debs.DROPBEAR, lay.debs, lay.pkgs)
    libs = tuple(debs.fetch(p, lay.debs, lay.pkgs).root for p in debs.LIBS)
    host_key = lab_keys.host_key_dropbear.read_bytes()
    guests: dict[str, Any] = {}
    for flavour in FLAVOURS:
        pkg = (old.get("guests", {}).get(flavour, {}).get("package")
               if not refresh else None) or debs.resolve_kernel(flavour)
        say(f"fetching {pkg} (arm64)")
        k = debs.fetch(pkg, lay.debs, lay.pkgs)
        mods = sorted((k.root / "lib" / "modules").iterdir())
        if not mods:
            raise SetupError(f"{pkg} has no lib/modules")
        release = mods[0].name
        vmlinuz = k.root / "boot" / f"vmlinuz-{release}"
        gdir = lay.guest(flavour)
        gdir.mkdir(parents=True, exist_ok=True)
        kernel = gdir / "vmlinuz"
        if not kernel.exists() or kernel.stat().st_size != vmlinuz.stat().st_size:
            shutil.copyfile(vmlinuz, kernel)
        inp = guest.GuestInputs(bb.root, db.root, libs, mods[0], lab_keys.client_pub, host_key)
        initrds = {}
        for variant in guest.VARIANTS:
            data = guest.build_initramfs(inp, variant)
            path = gdir / f"initrd-{variant.name}.cpio"
            if not path.exists() or path.read_bytes() != data:
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
                res.built.append(str(path))
            initrds[variant.name] = str(path)
        (gdir / "release").write_text(release + "\n", encoding="utf-8")
        guests[flavour] = {"package": pkg, "deb": k.deb.name, "release": release,
                           "kernel": str(kernel), "initrd": initrds}
    manifest = {"builder": BUILDER_VERSION, "guests": guests, "keys": lab_keys.client_pub,
                "busybox": bb.deb.name, "dropbear": db.deb.name,
                "embed_uri": embed.embed_uri(lay.libvirt),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = lay.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(lay.manifest)
    res.manifest = manifest
    res.seconds = time.monotonic() - t0
    return res
