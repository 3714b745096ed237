"""The shared libraries an ELF64 little-endian binary needs (``DT_NEEDED``), read from
its section headers: pure Python, so arm64 binaries are inspected on any host."""

from __future__ import annotations

import struct

SHT_DYNAMIC = 6
DT_NEEDED = 1


def needed(data: bytes) -> list[str]:
    """Sonames in ``DT_NEEDED`` order; ``[]`` for static binaries; ``ValueError`` when
    ``data`` is not a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    out: list[str] = []
    for _name, sh_type, _f, _a, off, size, link, _i, _al, entsize in sections:
        if sh_type != SHT_DYNAMIC:
            continue
        stroff = sections[link][4]
        for pos in range(off, off + size, entsize or 16):
            tag, val = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            if tag == DT_NEEDED:
                end = data.index(b"\0", stroff + val)
                out.append(data[stroff + val:end].decode())
    return out


PT_INTERP = 3


def interpreter(data: bytes) -> str | None:
    """The program interpreter (``PT_INTERP``, e.g. ``/lib/ld-linux-aarch64.so.1``)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _flags, off, _va, _pa, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == PT_INTERP:
            return data[off:off + filesz].rstrip(b"\0").decode()
    return None
