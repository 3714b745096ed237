"""What a remote libvirt host tells over SSH, parsed (pure functions): a guest's address
from the host's neighbour table, and the versions that explain a result."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET


def interface_macs(domain_xml: str) -> list[str]:
    """MAC addresses of a domain's NICs (live XML: libvirt fills in generated ones)."""
    try:
        root = ET.fromstring(domain_xml)
    except ET.ParseError:
        return []
    return [m.get("address", "").lower() for m in root.findall("devices/interface/mac")
            if m.get("address")]


def neigh_address(neigh_text: str, macs: list[str]) -> str | None:
    """The IPv4 address ``ip -4 neigh show`` lists for one of ``macs`` (a usable entry:
    not FAILED or INCOMPLETE); None when there is none yet."""
    wanted = {m.lower() for m in macs}
    for line in neigh_text.splitlines():
        parts = line.split()
        if len(parts) < 4 or "lladdr" not in parts:
            continue
        mac = parts[parts.index("lladdr") + 1].lower() if parts.index("lladdr") + 1 < len(
            parts) else ""
        state = parts[-1]
        if mac in wanted and state not in ("FAILED", "INCOMPLETE") and \
                re.fullmatch(r"\d+\.\d+\.\d+\.\d+", parts[0]):
            return parts[0]
    return None


def parse_versions(text: str) -> dict[str, str]:
    """``uname -r; qemu-system-aarch64 --version | head -n1; libvirtd --version`` ->
    ``host_kernel``, ``qemu``, ``libvirt`` (what could be read)."""
    out: dict[str, str] = {}
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    for line in lines:
        m = re.search(r"QEMU emulator version (\S+)", line)
        if m:
            out["qemu"] = m.group(1)
            continue
        m = re.search(r"libvirtd \(libvirt\) (\S+)", line)
        if m:
            out["libvirt"] = m.group(1)
            continue
        if "host_kernel" not in out and re.fullmatch(r"\d+\.\d+\S*", line):
            out["host_kernel"] = line
    return out


def lib_version(n: int) -> str:
    """libvirt's numeric version (``getLibVersion``) as ``major.minor.release``."""
    return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"
