"""What a run's numbers depend on, recorded with the run so that a resume can refuse to
mix boots of two different plans or labs into one run (pure).

``plan_print(cells, lab)`` is a JSON-able dict: per cell its host, guest, vCPUs, boots,
reboot mode, memory, other axes and host attributes; per host used its URI; per guest
used its boot media (image or kernel, initrd, command line) and kernel release; the
simulated lab's model (seed, rules, timings) when a host is simulated. ``changes(old,
new)`` says, in words, what differs. Everything else (timeouts, expectations, adaptive
stopping, slots, chunk size, reports) may change on resume: it changes how the run goes
on or how it is judged, not what a recorded boot means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.inventory import Lab
from harness.model import Cell

VERSION = 1


def _cell(c: Cell) -> dict[str, Any]:
    return {"host": c.host, "guest": c.guest, "vcpus": c.vcpus, "boots": c.boots,
            "reboot": str(c.reboot), "memory_mib": c.memory_mib,
            "params": {k: _plain(v) for k, v in c.params},
            "host_attrs": {k: _plain(v) for k, v in c.host_attrs}}


def _plain(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


def _media(lab: Lab, guest: str) -> dict[str, Any]:
    g = lab.guest(guest)
    boot = g.boot
    out: dict[str, Any] = {"kernel_release": g.kernel_release}
    if boot is not None:
        out.update({k: None if v is None else str(v)
                    for k, v in (("image", boot.image), ("kernel", boot.kernel),
                                 ("initrd", boot.initrd), ("cmdline", boot.cmdline))})
    return out


def plan_print(cells: Iterable[Cell], lab: Lab) -> dict[str, Any]:
    cells = list(cells)
    hosts = sorted({c.host for c in cells})
    guests = sorted({c.guest for c in cells})
    sim = any(lab.host(h).is_sim for h in hosts)
    return {
        "version": VERSION,
        "cells": {c.id: _cell(c) for c in cells},
        "hosts": {h: lab.host(h).uri for h in hosts},
        "guests": {g: _media(lab, g) for g in guests},
        "sim": _jsonable(lab.spec.sim) if sim else None,
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return _plain(v)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def changes(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 8) -> list[str]:
    """What differs between two ``plan_print`` results, one line each (at most ``limit``
    lines, then a count); empty when they agree."""
    out: list[str] = []
    oc, nc = old.get("cells", {}), new.get("cells", {})
    gone = [c for c in oc if c not in nc]
    added = [c for c in nc if c not in oc]
    if gone:
        out.append(f"cells no longer in the matrix: {', '.join(gone[:5])}"
                   + (f" and {len(gone) - 5} more" if len(gone) > 5 else ""))
    if added:
        out.append(f"cells new in the matrix: {', '.join(added[:5])}"
                   + (f" and {len(added) - 5} more" if len(added) > 5 else ""))
    for cid in oc:
        if cid in nc and oc[cid] != nc[cid]:
            for key in sorted(set(oc[cid]) | set(nc[cid])):
                a, b = oc[cid].get(key), nc[cid].get(key)
                if a != b:
                    out.append(f"cell {cid}: {key} {_show(a)} -> {_show(b)}")
    for section, what in (("hosts", "URI of host"), ("guests", "boot media of guest")):
        o, n = old.get(section, {}), new.get(section, {})
        for name in sorted(set(o) & set(n)):
            if o[name] != n[name]:
                out.append(f"{what} {name}: {_show(o[name])} -> {_show(n[name])}")
    if old.get("sim") != new.get("sim"):
        o, n = old.get("sim") or {}, new.get("sim") or {}
        keys = sorted(k for k in set(o) | set(n) if o.get(k) != n.get(k))
        out.append("the simulated lab's model: " + ", ".join(
            f"{k} {_show(o.get(k))} -> {_show(n.get(k))}" for k in keys))
    if len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more changes"]
    return out
