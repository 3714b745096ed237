"""Debian packages for the guest: resolve, download (``apt-get download``) and extract
(``dpkg-deb -x``) arm64 packages into the cache. Nothing is installed on this machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ARCH = "arm64"
# the kernels: Debian meta packages, each depending on one current linux-image-<abi>-<flavour>
KERNEL_META = {"arm64": "linux-image-arm64", "cloud-arm64": "linux-image-cloud-arm64"}
BUSYBOX = "busybox-static"
DROPBEAR = "dropbear-bin"
# dropbear-bin's shared libraries (and theirs): Debian 12 names
LIBS = ("libc6", "libcrypt1", "zlib1g", "libtomcrypt1", "libtommath1", "libgmp10",
        "libgcc-s1")
APT_OPTS = ("-o", "APT::Sandbox::User=root", "-q")


class SetupError(HarnessError):
    """The local lab could not be set up; the message says what to do."""


def run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SetupError(f"{cmd[0]} is not installed: {exc}") from exc
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SetupError(f"`{' '.join(cmd)}` failed ({proc.returncode}): " + " | ".join(err))
    return proc.stdout


def parse_depends(apt_cache_output: str) -> list[str]:
    """Package names after ``Depends:`` in ``apt-cache depends`` output (pure)."""
    out = []
    for line in apt_cache_output.splitlines():
        m = re.match(r"\s*\|?Depends:\s*(\S+)", line)
        if m:
            out.append(m.group(1).split(":")[0])
    return out


def resolve_kernel(flavour: str) -> str:
    """``linux-image-6.1.0-NN-<flavour>``: what the meta package depends on today."""
    meta = KERNEL_META[flavour]
    deps = [d for d in parse_depends(run(["apt-cache", "depends", f"{meta}:{ARCH}"]))
            if d.startswith("linux-image-")]
    if not deps:
        raise SetupError(f"apt-cache finds no kernel behind {meta}:{ARCH}; run "
                         "`dpkg --add-architecture arm64 && apt-get update`")
    return deps[0]


def has_arm64() -> bool:
    try:
        out = run(["dpkg", "--print-foreign-architectures"])
    except SetupError:
        return False
    return ARCH in out.split()


def add_arm64() -> None:
    run(["dpkg", "--add-architecture", ARCH])
    run(["apt-get", *APT_OPTS, "update"])


@dataclass(frozen=True)
class Extracted:
    package: str
    deb: Path
    root: Path


def fetch(package: str, debs: Path, pkgs: Path) -> Extracted:
    """Download ``package:arm64`` (once) and extract it to ``pkgs/<package>`` (once)."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*_{ARCH}.deb"))
    if not found:
        run(["apt-get", *APT_OPTS, "download", f"{package}:{ARCH}"], cwd=debs)
        found = sorted(debs.glob(f"{package}_*_{ARCH}.deb"))
        if not found:
            raise SetupError(f"apt-get download {package}:{ARCH} left no .deb in {debs}")
    deb = found[-1]
    root = pkgs / package
    stamp = root / ".from"
    if not (stamp.exists() and stamp.read_text() == deb.name):
        if root.exists():
            shutil.rmtree(root)
        tmp = pkgs / f".{package}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(deb), str(tmp)])
        (tmp / ".from").write_text(deb.name)
        tmp.rename(root)
    return Extracted(package, deb, root)
