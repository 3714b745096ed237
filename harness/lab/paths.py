"""Where the local lab lives: one cache directory (``$VMBH_CACHE`` or
``~/.cache/vm-boot-harness``), and the ``${cache}`` placeholder lab files use to point
into it, so a lab file in the repository works for any user on any machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV = "VMBH_CACHE"
PLACEHOLDER = "${cache}"


def cache_dir() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "vm-boot-harness"


def expand(text: str, cache: Path | None = None) -> str:
    """Replace ``${cache}`` in a lab file value (paths, libvirt URIs)."""
    if PLACEHOLDER not in text:
        return text
    return text.replace(PLACEHOLDER, str(cache or cache_dir()))


@dataclass(frozen=True)
class Layout:
    """The cache directory's layout (all derived from ``root``)."""

    root: Path

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def pkgs(self) -> Path:
        return self.root / "pkgs"  # dpkg-deb -x of each package, by package name

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def guests(self) -> Path:
        return self.root / "guests"

    def guest(self, flavour: str) -> Path:
        return self.guests / flavour  # vmlinuz, initrd-ssh.cpio, initrd-nossh.cpio, release

    @property
    def libvirt(self) -> Path:
        return self.root / "libvirt"  # the qemu:///embed root

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def known_hosts(self) -> Path:
        return self.keys / "known_hosts"


def layout(cache: Path | None = None) -> Layout:
    return Layout(cache or cache_dir())
