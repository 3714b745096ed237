"""Host facts for a run: what the Ansible role ``kvm_host`` gathers about each KVM host
(CPU model, NUMA patch present, kernel release, NUMA nodes, CPUs, OS), read into the
run's configuration so reports show them beside the lab file's host attributes.

Where they come from, per host of the run:

1. ``<facts dir>/<host>.json``, written by the role on the controller
   (``kvm_host_facts_controller_dir``, by default ``reports/hosts/`` next to the
   repository: the runner looks in ``<reports dir>/hosts``);
2. else, for a host on this machine (``qemu:///...``), the same facts read here;
3. else nothing (a remote host never provisioned by the role).

``numa_patch`` on this machine is the lab attribute of that name when set, else unknown
(None), like the role without ``kvm_host_numa_patch_check``. A facts file that cannot be
read or parsed is reported as such (``error``), never raised: facts describe a run, they
do not stop it.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.inventory import Lab

# the keys the role writes (ansible/roles/kvm_host/tasks/facts.yml), shown in this order
FACT_KEYS = ("cpu_model", "numa_patch", "kernel_release", "numa_nodes", "cpus", "os",
             "architecture")
MAX_FACTS_BYTES = 64 << 10


def read_facts_file(path: Path) -> dict[str, Any] | None:
    """The facts of one host from the role's JSON file; None when there is no file."""
    try:
        raw = path.read_bytes()[:MAX_FACTS_BYTES]
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"source": f"ansible: {path}", "error": exc.strerror or str(exc)}
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except ValueError as exc:
        return {"source": f"ansible: {path}", "error": f"not JSON: {exc}"}
    if not isinstance(data, dict):
        return {"source": f"ansible: {path}", "error": "not a JSON object"}
    out = {k: data[k] for k in FACT_KEYS if k in data and _scalar(data[k])}
    out["source"] = f"ansible: {path}"
    return out


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def cpu_model_of(cpuinfo: str) -> str | None:
    """``model name`` (x86) or ``CPU implementer/part`` (arm64) of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            fields.setdefault(k.strip().lower(), v.strip())
    for key in ("model name", "hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    if "cpu implementer" in fields and "cpu part" in fields:
        return f"implementer {fields['cpu implementer']} part {fields['cpu part']}"
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def os_name(os_release: str) -> str | None:
    for line in os_release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"') or None
    return None


def local_facts(numa_patch: Any = None) -> dict[str, Any]:
    """The role's facts, read on this machine."""
    try:
        nodes = sum(1 for p in Path("/sys/devices/system/node").iterdir()
                    if p.name.startswith("node") and p.name[4:].isdigit())
    except OSError:
        nodes = 0
    return {
        "cpu_model": cpu_model_of(_read("/proc/cpuinfo")),
        "numa_patch": numa_patch if isinstance(numa_patch, bool) else None,
        "kernel_release": platform.release(),
        "numa_nodes": nodes,
        "cpus": os.cpu_count(),
        "os": os_name(_read("/etc/os-release")),
        "architecture": platform.machine(),
        "source": "this machine",
    }


def is_local_uri(uri: str) -> bool:
    p = urlparse(uri)
    return p.scheme.startswith("qemu") and not p.hostname


def gather(lab: Lab, hosts: Iterable[str], facts_dir: Path) -> dict[str, dict[str, Any]]:
    """Host name -> facts for the hosts of a run (see the module doc)."""
    out: dict[str, dict[str, Any]] = {}
    here: dict[str, Any] | None = None
    for name in sorted(set(hosts)):
        spec = lab.host(name)
        if spec.is_sim:
            continue
        facts = read_facts_file(facts_dir / f"{name}.json")
        if facts is None and is_local_uri(spec.uri):
            if here is None:
                here = local_facts()
            facts = {**here, "numa_patch": spec.attributes.get("numa_patch")
                     if isinstance(spec.attributes.get("numa_patch"), bool) else None}
        if facts is not None:
            out[name] = facts
    return out


def fact_rows(host_facts: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(host, facts)`` rows from a run's stored ``host_facts`` (tolerant of old runs)."""
    if not isinstance(host_facts, dict):
        return []
    return [(str(h), f) for h, f in sorted(host_facts.items()) if isinstance(f, dict)]
