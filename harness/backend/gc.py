"""Garbage collection: domains (and their per-boot files) left by runs that are dead.

Every domain the harness defines is named ``hb-...`` and carries ``<hb:boot>`` metadata
with its controller's identity (host name, kernel boot id, pid and the pid's start time)
and its per-boot files. A domain is garbage when that controller process no longer exists
(``harness.runinfo.controller_alive``). Domains made on another controller cannot be judged
from here and are left alone unless ``force`` is given; domains without our metadata are
never touched. Per-boot files in a storage folder whose domain is gone are orphans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.backend.libvirt import LibvirtBackend
from harness.errors import InfraError
from harness.runinfo import controller_alive

ORPHAN = re.compile(r"^(hb-[A-Za-z0-9_.-]+?)(?:\.qcow2|_VARS\.fd|\.console\.log)$")


@dataclass
class GcReport:
    uri: str
    removed: list[str] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # other controller: not judged here
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def collect(backend: LibvirtBackend, *, dry_run: bool = False, force: bool = False,
            storage: list[str] | None = None) -> GcReport:
    report = GcReport(backend.uri)
    for name in backend.list_domains("hb-"):
        dom = backend.lookup(name)
        if dom is None:
            continue
        meta, _files = dom.metadata()
        if not meta:
            continue  # an hb-* domain we did not make: not ours to remove
        alive = controller_alive(meta)
        if alive is True:
            report.alive.append(name)
            continue
        if alive is None and not force:
            report.foreign.append(f"{name} (controller {meta.get('controller') or '?'})")
            continue
        if not dry_run:
            try:
                dom.undefine()
            except InfraError as exc:
                report.errors.append(f"{name}: {exc}")
                continue
        report.removed.append(name)
    for folder in storage or []:
        report.files.extend(_orphans(backend, folder, dry_run, report))
    return report


def _orphans(backend: LibvirtBackend, folder: str, dry_run: bool,
             report: GcReport) -> list[str]:
    defined = set(backend.list_domains("hb-"))
    if dry_run:
        defined -= set(report.removed)
    names = backend.list_files(folder)
    out = []
    for fname in names:
        m = ORPHAN.match(fname)
        if m is None or m.group(1) in defined:
            continue
        path = str(Path(folder) / fname)
        if dry_run or backend.remove_files([path]):
            out.append(path)
    return out
