"""Pure expansion of a validated matrix into cells: product of the axes, minus the
excluded, plus the included, with per-cell overrides. No I/O, no validation messages:
``load`` has checked names and values already."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from harness.model import Cell, Expectation, RebootMode, Timeouts, same_value

DEFAULT_CYCLES = 3  # harness.cycle.DEFAULT_CYCLES (expand stays free of imports)

CORE_AXES = ("host", "guest", "vcpus")
CELL_FIELD_AXES = ("reboot", "memory_mib")  # extra axes the boot loop understands


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Override:
    """Applied to every cell it matches, in file order (later wins)."""

    match: tuple[tuple[str, tuple[Any, ...]], ...]
    boots: int | None = None
    expect: tuple[tuple[str, Any], ...] = ()  # partial: only the keys the override sets
    timeouts: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class MatrixSpec:
    name: str
    axes: tuple[Axis, ...]  # host, guest, vcpus first, then the others in file order
    boots: int = 10
    reboot: RebootMode = RebootMode.COLD
    cycles: int | None = None  # cpu-cycle cells: trials per secondary CPU per boot
    memory_mib: int = 2048
    expect: Expectation = field(default_factory=Expectation)
    timeouts: Timeouts = field(default_factory=Timeouts)
    exclude: tuple[tuple[tuple[str, tuple[Any, ...]], ...], ...] = ()
    include: tuple[tuple[tuple[str, Any], ...], ...] = ()
    overrides: tuple[Override, ...] = ()
    host_attrs: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()


def cell_id(point: Mapping[str, Any], axes: tuple[Axis, ...]) -> str:
    """Readable and stable: ``node-1/es11/vcpu16`` then ``/name=value`` per other axis."""
    parts = [str(point["host"]), str(point["guest"]), f"vcpu{point['vcpus']}"]
    parts += [f"{a.name}={point[a.name]}" for a in axes if a.name not in CORE_AXES]
    return "/".join(parts)


def matches(point: Mapping[str, Any], attrs: Mapping[str, Any],
            selector: tuple[tuple[str, tuple[Any, ...]], ...]) -> bool:
    """A selector matches when every key's value (axis or host attribute) is listed."""
    for key, values in selector:
        value = point[key] if key in point else attrs.get(key, _MISSING)
        if value is _MISSING or not any(same_value(value, v) for v in values):
            return False
    return True


_MISSING = object()


def points(spec: MatrixSpec) -> list[dict[str, Any]]:
    """The axis points of the matrix in order: product - excluded + included."""
    attrs = {h: dict(a) for h, a in spec.host_attrs}
    names = [a.name for a in spec.axes]
    out: list[dict[str, Any]] = []
    for combo in itertools.product(*(a.values for a in spec.axes)):
        point = dict(zip(names, combo, strict=True))
        if any(matches(point, attrs.get(point["host"], {}), ex) for ex in spec.exclude):
            continue
        out.append(point)
    out += [dict(inc) for inc in spec.include]
    return out


def expand(spec: MatrixSpec) -> list[Cell]:
    attrs = {h: a for h, a in spec.host_attrs}
    cells: list[Cell] = []
    for point in points(spec):
        host_attrs = attrs.get(point["host"], ())
        reboot = RebootMode(point.get("reboot", spec.reboot))
        params = tuple((a.name, point[a.name]) for a in spec.axes
                       if a.name not in CORE_AXES and a.name not in CELL_FIELD_AXES)
        if reboot is RebootMode.CPU_CYCLE and "cycles" not in point:
            params += (("cycles", spec.cycles or DEFAULT_CYCLES),)
        cell = Cell(
            id=cell_id(point, spec.axes),
            matrix=spec.name,
            host=str(point["host"]),
            guest=str(point["guest"]),
            vcpus=int(point["vcpus"]),
            boots=spec.boots,
            reboot=reboot,
            memory_mib=int(point.get("memory_mib", spec.memory_mib)),
            params=params,
            host_attrs=host_attrs,
            expect=spec.expect,
            timeouts=spec.timeouts,
        )
        for ov in spec.overrides:
            if matches(point, dict(host_attrs), ov.match):
                cell = replace(
                    cell,
                    boots=ov.boots if ov.boots is not None else cell.boots,
                    expect=replace(cell.expect, **dict(ov.expect)),
                    timeouts=replace(cell.timeouts, **dict(ov.timeouts)),
                )
        cells.append(cell)
    return cells
