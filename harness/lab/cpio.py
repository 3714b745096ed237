"""A minimal writer of ``newc`` cpio archives (the Linux initramfs format), pure Python.

Writing the archive ourselves gives exact modes and root ownership without running as
root or calling ``cpio``, and the same bytes for the same input (no timestamps).
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member; ``path`` is relative (no leading slash)."""

    path: str
    mode: int  # full st_mode, type bits included
    data: bytes = b""  # file content, or the target of a symlink

    @classmethod
    def dir(cls, path: str, perm: int = 0o755) -> Entry:
        return cls(path, stat.S_IFDIR | perm)

    @classmethod
    def file(cls, path: str, data: bytes, perm: int = 0o644) -> Entry:
        return cls(path, stat.S_IFREG | perm, data)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        return cls(path, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def chardev(cls, path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
        return cls(path, stat.S_IFCHR | perm, f"{major}:{minor}".encode())


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, mode: int, nlink: int, size: int, name: bytes,
            rdev: tuple[int, int]) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    return b"070701" + b"".join(f"{v:08X}".encode() for v in fields)


def archive(entries: Iterable[Entry]) -> bytes:
    """The archive bytes. Parent directories must come before their children (the
    kernel creates nothing implicitly); ``ValueError`` on a duplicate path."""
    out = bytearray()
    seen: set[str] = set()
    ino = 1
    for e in entries:
        path = e.path.strip("/")
        if not path or path in seen:
            raise ValueError(f"cpio: empty or duplicate path {e.path!r}")
        seen.add(path)
        rdev = (0, 0)
        data = e.data
        if stat.S_ISCHR(e.mode) or stat.S_ISBLK(e.mode):
            major, minor = (int(x) for x in e.data.decode().split(":"))
            rdev, data = (major, minor), b""
        elif stat.S_ISDIR(e.mode):
            data = b""
        name = path.encode()
        nlink = 2 if stat.S_ISDIR(e.mode) else 1
        out += _header(ino, e.mode, nlink, len(data), name, rdev)
        out += name + b"\0"
        out += _pad4(110 + len(name) + 1)
        out += data + _pad4(len(data))
        ino += 1
    name = TRAILER.encode()
    out += _header(0, 0, 1, 0, name, (0, 0)) + name + b"\0" + _pad4(110 + len(name) + 1)
    return bytes(out)
