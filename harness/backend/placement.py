"""vCPU and memory placement of a cell (pure): which host CPUs each vCPU and the emulator
threads may run on, and which host NUMA nodes the guest memory comes from.

The FT-2500 analysis asks whether the late vCPU depended on where it ran (a host NUMA
node without the patch, a vCPU sharing a core with QEMU's own threads), so placement is a
matrix axis like any other. Cell parameters (matrix axes) and their values:

========================  =================================================================
``vcpupin: none``         no per-vCPU pinning (libvirt's default: any host CPU)
``vcpupin: 1to1``         vCPU i on host CPU i
``vcpupin: rr:<cpuset>``  vCPU i on the (i mod n)-th CPU of the cpuset (round robin)
``vcpupin: all:<cpuset>`` every vCPU on the whole cpuset (one pin entry per vCPU)
``emulatorpin: <cpuset>`` QEMU's emulator threads on the cpuset (``none``: not pinned)
``numatune: <mode>:<nodeset>``  guest memory from host nodes; mode ``strict``,
                          ``preferred``, ``interleave`` or ``restrictive`` (``none``: unset)
``cpuset: <cpuset>``      ``<vcpu cpuset=...>``: all vCPUs on the cpuset (older axis)
========================  =================================================================

A cpuset is libvirt's syntax: ``0-3,8,^2`` (ranges, single CPUs, exclusions). Every
parser raises ``PlacementError`` (a ``ValueError``) with a message that names the value;
``harness.matrix.load`` turns it into a located ``file:line:column`` error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_HOST_CPU = 4095  # libvirt's own bound on a cpuset bitmap is larger; this catches typos
NUMATUNE_MODES = ("strict", "preferred", "interleave", "restrictive")
VCPUPIN_FORMS = ("none", "1to1", "rr:<cpuset>", "all:<cpuset>")
PLACEMENT_AXES = ("vcpupin", "emulatorpin", "numatune", "cpuset")
_CPUSET_ITEM = re.compile(r"^(\^)?(\d+)(?:-(\d+))?$")


class PlacementError(ValueError):
    """A placement value that libvirt would not take, or that makes no sense."""


def parse_cpuset(text: str, what: str | None = None) -> tuple[int, ...]:
    """The CPUs (or NUMA nodes) of a libvirt cpuset string, sorted; never empty.
    ``what`` starts the error messages (default: ``cpuset '<text>'``)."""
    what = what or f"cpuset {text!r}"
    if not isinstance(text, str) or not text.strip():
        raise PlacementError(f"{what}: expected a CPU list such as '0-3,8' or '0,^2'")
    included: set[int] = set()
    excluded: set[int] = set()
    for part in text.split(","):
        m = _CPUSET_ITEM.match(part.strip())
        if m is None:
            raise PlacementError(f"{what}: {part.strip()!r} is not a number, a "
                                 "range 'a-b' or an exclusion '^n'")
        neg, lo_s, hi_s = m.groups()
        lo = int(lo_s)
        hi = int(hi_s) if hi_s is not None else lo
        if neg and hi_s is not None:
            raise PlacementError(f"{what}: an exclusion is one CPU ('^2'), not a "
                                 "range")
        if hi < lo:
            raise PlacementError(f"{what}: range {lo}-{hi} goes backwards")
        if hi > MAX_HOST_CPU:
            raise PlacementError(f"{what}: {hi} is above {MAX_HOST_CPU}")
        (excluded if neg else included).update(range(lo, hi + 1))
    cpus = tuple(sorted(included - excluded))
    if not cpus:
        raise PlacementError(f"{what} selects no CPU")
    return cpus


def format_cpuset(cpus: tuple[int, ...] | list[int]) -> str:
    """The short libvirt form: ``(0, 1, 2, 5)`` -> ``0-2,5``."""
    out: list[str] = []
    items = sorted(set(cpus))
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


@dataclass(frozen=True)
class VcpuPin:
    kind: Literal["none", "1to1", "rr", "all"]
    cpus: tuple[int, ...] = ()  # the cpuset of rr / all

    def pins(self, vcpus: int) -> tuple[tuple[int, str], ...]:
        """``(vcpu, cpuset)`` for every vCPU (empty for ``none``)."""
        if self.kind == "none":
            return ()
        if self.kind == "1to1":
            return tuple((i, str(i)) for i in range(vcpus))
        if self.kind == "rr":
            return tuple((i, str(self.cpus[i % len(self.cpus)])) for i in range(vcpus))
        whole = format_cpuset(self.cpus)
        return tuple((i, whole) for i in range(vcpus))


def parse_vcpupin(value: Any) -> VcpuPin:
    text = str(value).strip() if isinstance(value, str | int) else None
    if text in ("none", "1to1"):
        return VcpuPin(text)  # type: ignore[arg-type]
    if text is not None:
        kind, sep, rest = text.partition(":")
        if sep and kind in ("rr", "all"):
            return VcpuPin(kind, parse_cpuset(rest, f"vcpupin {text!r}"))  # type: ignore[arg-type]
    raise PlacementError(f"vcpupin {value!r}: expected one of {', '.join(VCPUPIN_FORMS)} "
                         "(e.g. 'rr:0-3')")


@dataclass(frozen=True)
class NumaTune:
    mode: str  # one of NUMATUNE_MODES
    nodeset: str  # host NUMA nodes, libvirt syntax


def parse_numatune(value: Any) -> NumaTune | None:
    text = str(value).strip() if isinstance(value, str) else None
    if text == "none":
        return None
    if text is not None:
        mode, sep, nodes = text.partition(":")
        if sep and mode in NUMATUNE_MODES:
            return NumaTune(mode, format_cpuset(parse_cpuset(nodes, f"numatune {text!r}")))
        if sep:
            raise PlacementError(f"numatune {value!r}: mode {mode!r} is not one of "
                                 f"{', '.join(NUMATUNE_MODES)}")
    raise PlacementError(f"numatune {value!r}: expected '<mode>:<nodeset>' with mode one of "
                         f"{', '.join(NUMATUNE_MODES)} (e.g. 'strict:0'), or 'none'")


def parse_emulatorpin(value: Any) -> str | None:
    text = str(value).strip() if isinstance(value, str | int) else None
    if text == "none":
        return None
    if text is None:
        raise PlacementError(f"emulatorpin {value!r}: expected a cpuset such as '0' or "
                             "'0-1', or 'none'")
    return format_cpuset(parse_cpuset(text, f"emulatorpin {text!r}"))


def parse_vcpu_cpuset(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip() if isinstance(value, str | int) else None
    if text is None:
        raise PlacementError(f"cpuset {value!r}: expected a cpuset such as '0-31'")
    return format_cpuset(parse_cpuset(text, f"cpuset {text!r}"))


PARSERS = {"vcpupin": parse_vcpupin, "emulatorpin": parse_emulatorpin,
           "numatune": parse_numatune, "cpuset": parse_vcpu_cpuset}


def check_value(axis: str, value: Any) -> None:
    """Raise ``PlacementError`` when ``value`` is not a valid value of placement ``axis``."""
    PARSERS[axis](value)


@dataclass(frozen=True)
class Placement:
    """A cell's placement, ready for the domain XML."""

    vcpu_cpuset: str | None = None
    vcpu_pins: tuple[tuple[int, str], ...] = ()
    emulator_cpuset: str | None = None
    numatune: NumaTune | None = None


def placement(params: Mapping[str, Any], vcpus: int) -> Placement:
    """The placement a cell's parameters ask for (absent parameters: none)."""
    pin = parse_vcpupin(params["vcpupin"]) if "vcpupin" in params else VcpuPin("none")
    return Placement(
        vcpu_cpuset=parse_vcpu_cpuset(params.get("cpuset")),
        vcpu_pins=pin.pins(vcpus),
        emulator_cpuset=parse_emulatorpin(params["emulatorpin"])
        if "emulatorpin" in params else None,
        numatune=parse_numatune(params["numatune"]) if "numatune" in params else None,
    )
