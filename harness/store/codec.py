"""Pure conversions between the shared records and the database's rows (JSON columns)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from harness.model import (
    BootResult,
    Cell,
    Expectation,
    Finding,
    Outcome,
    RebootMode,
    Signature,
    Timeouts,
)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cell_to_json(cell: Cell) -> str:
    return dumps({
        "id": cell.id,
        "matrix": cell.matrix,
        "host": cell.host,
        "guest": cell.guest,
        "vcpus": cell.vcpus,
        "boots": cell.boots,
        "reboot": str(cell.reboot),
        "memory_mib": cell.memory_mib,
        "params": [list(p) for p in cell.params],
        "host_attrs": [list(p) for p in cell.host_attrs],
        "expect": {"vcpu_offline": cell.expect.vcpu_offline,
                   "boot_failure": cell.expect.boot_failure,
                   "confidence": cell.expect.confidence,
                   **({"rule_out": cell.expect.rule_out}
                      if cell.expect.rule_out is not None else {})},
        "timeouts": {"boot": cell.timeouts.boot, "ssh": cell.timeouts.ssh,
                     "command": cell.timeouts.command, "shutdown": cell.timeouts.shutdown},
    })


def cell_from_json(text: str) -> Cell:
    d = json.loads(text)
    return Cell(
        id=d["id"],
        matrix=d["matrix"],
        host=d["host"],
        guest=d["guest"],
        vcpus=int(d["vcpus"]),
        boots=int(d["boots"]),
        reboot=RebootMode(d["reboot"]),
        memory_mib=int(d["memory_mib"]),
        params=tuple((str(k), v) for k, v in d["params"]),
        host_attrs=tuple((str(k), v) for k, v in d["host_attrs"]),
        expect=Expectation(**d["expect"]),
        timeouts=Timeouts(**d["timeouts"]),
    )


BOOT_COLUMNS = ("run_id", "cell_id", "idx", "outcome", "reason", "host", "guest", "vcpus",
                "attempt", "offline_cpus", "online_cpus", "cpus_brought_up", "kernel_release",
                "bringup_latency_s", "slowest_cpu", "timings", "artifacts", "extra")


INT64 = (-(1 << 63), (1 << 63) - 1)


def int64(value: Any) -> int | None:
    """An integer column's value: None when it is none or beyond SQLite's 64 bits (a
    number a guest printed is never trusted to fit; its text stays in the finding)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if INT64[0] <= value <= INT64[1] else None


def boot_row(r: BootResult) -> tuple[Any, ...]:
    return (
        r.run_id, r.cell_id, int(r.index), Outcome(r.outcome).value, r.reason, r.host,
        r.guest, int(r.vcpus), int(r.attempt), dumps(list(r.offline_cpus)),
        None if r.online_cpus is None else dumps(list(r.online_cpus)),
        int64(r.cpus_brought_up), r.kernel_release, r.bringup_latency_s, int64(r.slowest_cpu),
        dumps([list(t) for t in r.timings]), dumps([list(a) for a in r.artifacts]),
        dumps([list(e) for e in r.extra]),
    )


def digest(r: BootResult) -> str:
    """Identifies one result by its whole content (the same result recorded twice)."""
    findings = [[f.kind, f.line, f.text, f.cpu, f.errno] for f in r.findings]
    sigs = [[x.kind, x.title] for x in r.signatures]
    text = dumps([list(boot_row(r)), findings, sigs])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _load(text: str) -> list[Any]:
    return [] if text == "[]" else list(json.loads(text))  # most columns are empty


def _pairs(text: str) -> tuple[tuple[str, Any], ...]:
    return tuple((str(k), v) for k, v in _load(text))


def boot_from_row(row: sqlite3.Row, findings: tuple[Finding, ...] = (),
                  signatures: tuple[Signature, ...] = ()) -> BootResult:
    online = row["online_cpus"]
    return BootResult(
        run_id=row["run_id"],
        cell_id=row["cell_id"],
        index=row["idx"],
        outcome=Outcome(row["outcome"]),
        reason=row["reason"],
        host=row["host"],
        guest=row["guest"],
        vcpus=row["vcpus"],
        attempt=row["attempt"],
        offline_cpus=tuple(_load(row["offline_cpus"])),
        online_cpus=None if online is None else tuple(json.loads(online)),
        cpus_brought_up=row["cpus_brought_up"],
        kernel_release=row["kernel_release"],
        signatures=signatures,
        findings=findings,
        timings=tuple((str(k), float(v)) for k, v in _load(row["timings"])),
        bringup_latency_s=row["bringup_latency_s"],
        slowest_cpu=row["slowest_cpu"],
        artifacts=tuple((str(k), str(v)) for k, v in _load(row["artifacts"])),
        extra=_pairs(row["extra"]),
    )
