"""A run as a KCIDB v5 document (KernelCI's common reporting database), for
``kcidb-submit`` and the tools that read KCIDB JSON.

The mapping (docs/reports.md):

- one checkout per run (``<origin>:<run id>``): the nightly's code under test;
- one build per guest (``<origin>:<run id>:<guest>``, architecture arm64): the guest
  kernel that was booted;
- per cell, one test with path ``vm_boot``: its status is the cell's verdict
  (pass -> PASS, fail -> FAIL, undecided or not judged -> DONE, no guest boot at all ->
  MISS), its ``misc`` holds the counts, every rate with its interval and confidence, the
  statements and the signatures; ``environment`` is the host and its attributes;
- per boot, one test with path ``vm_boot.boot``: ok -> PASS, vCPU offline or boot failure
  -> FAIL, infrastructure error -> MISS (the guest says nothing about the kernel then);
- known issues (``known-issues.yaml``) become KCIDB issues, and every boot showing a
  known signature an incident of that issue.

Ids start with the origin (``[a-z0-9_]+``, default ``vmbh``) and a colon, as KCIDB asks.
``log_url`` needs an absolute URL: give ``base_url`` (where the run folder is served) to
have the boots' console and dmesg linked; without it their relative paths are in ``misc``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.report.view import BootView, CellView, Rate, RunView

SCHEMA_VERSION = {"major": 5, "minor": 3}
DEFAULT_ORIGIN = "vmbh"
CELL_PATH = "vm_boot"
BOOT_PATH = "vm_boot.boot"
_ORIGIN_RE = re.compile(r"[a-z0-9_]+")

BOOT_STATUS = {"ok": "PASS", "vcpu_offline": "FAIL", "boot_failure": "FAIL",
               "infra_error": "MISS"}
CELL_STATUS = {"pass": "PASS", "clean": "PASS", "fail": "FAIL"}  # the rest: DONE


def check_origin(origin: str) -> str:
    if not _ORIGIN_RE.fullmatch(origin):
        raise ConfigError(f"KCIDB origin {origin!r} may only use a-z, 0-9 and '_'")
    return origin


def cell_status(cell: CellView) -> str:
    if cell.guest_boots == 0:
        return "MISS"  # nothing measured: the harness, not the kernel
    return CELL_STATUS.get(cell.verdict, "DONE")


def _rate(r: Rate) -> dict[str, Any]:
    return {"k": r.k, "n": r.n, "value": r.value, "low": r.low, "high": r.high}


def _json_value(v: Any) -> Any:
    return v if isinstance(v, bool | int | float | str) or v is None else str(v)


def _url(base_url: str | None, rel: str) -> str | None:
    if not base_url:
        return None
    return base_url.rstrip("/") + "/" + rel.lstrip("./")


def _cell_test(view: RunView, cell: CellView, origin: str, build_id: str,
               known: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    misc: dict[str, Any] = {
        "cell": cell.id, "vcpus": cell.vcpus, "verdict": cell.verdict,
        "boots": cell.boots, "planned": cell.planned, "ok": cell.ok,
        "vcpu_offline": cell.vcpu_offline, "boot_failure": cell.boot_failure,
        "infra_error": cell.infra_error, "confidence": view.confidence,
        "vcpu_offline_rate": _rate(cell.vcpu_offline_rate),
        "boot_failure_rate": _rate(cell.boot_failure_rate),
        "statements": [j.statement for j in cell.judgements],
        "signatures": [{"title": s.title, "count": s.count,
                        **({"known": list(known[s.title])} if s.title in known else {})}
                       for s in cell.signatures],
    }
    misc.update({str(k): _json_value(v) for k, v in cell.params})
    if cell.versions:
        misc["versions"] = dict(cell.versions)
    test: dict[str, Any] = {
        "id": f"{origin}:{view.id}:{cell.id}", "origin": origin, "build_id": build_id,
        "path": CELL_PATH, "status": cell_status(cell),
        "comment": f"{cell.id}: " + ("; ".join(j.statement for j in cell.judgements)
                                     or "no expectation"),
        "environment": _environment(cell),
        "misc": misc,
    }
    if view.started:
        test["start_time"] = view.started
    return test


def _environment(cell: CellView) -> dict[str, Any]:
    return {"comment": f"host {cell.host}",
            "misc": {"host": cell.host,
                     **{str(k): _json_value(v) for k, v in cell.host_attrs}}}


def _boot_test(view: RunView, cell: CellView, boot: BootView, origin: str, build_id: str,
               base_url: str | None) -> dict[str, Any]:
    misc: dict[str, Any] = {"cell": cell.id, "index": boot.index, "outcome": boot.outcome}
    if boot.reason:
        misc["reason"] = boot.reason
    if boot.offline_cpus:
        misc["offline_cpus"] = list(boot.offline_cpus)
    if boot.latency_s is not None:
        misc["bringup_latency_s"] = boot.latency_s
    if boot.signatures:
        misc["signatures"] = list(boot.signatures)
    test: dict[str, Any] = {
        "id": f"{origin}:{view.id}:{cell.id}:{boot.index}", "origin": origin,
        "build_id": build_id, "path": BOOT_PATH, "status": BOOT_STATUS[boot.outcome],
        "environment": _environment(cell), "misc": misc,
    }
    if boot.reason:
        test["comment"] = boot.reason
    arts = dict(boot.artifacts)
    if arts:
        misc["artifacts"] = arts
        urls = {name: _url(base_url, rel) for name, rel in arts.items()}
        main = urls.get("dmesg") if boot.outcome == "vcpu_offline" else urls.get("console")
        if main:
            test["log_url"] = main
            test["output_files"] = [{"name": Path(rel).name, "url": u}
                                    for name, rel in arts.items()
                                    if (u := urls[name]) and u != main]
    return test


def to_kcidb(view: RunView, *, origin: str = DEFAULT_ORIGIN, base_url: str | None = None,
             known_issues: Sequence[Mapping[str, Any]] = (), boots: bool = True,
             ) -> dict[str, Any]:
    """The KCIDB v5 document of a run view (plain JSON data).

    ``known_issues``: ``{"id", "title", "signatures" (or "signature"), "url", "state"}``
    records (``harness.knownissues.for_kcidb``); each becomes an issue, and every boot
    showing one of its signatures an incident (an issue's cell and host scope is not
    applied here: KCIDB triage decides). ``boots=False`` leaves out the per-boot tests."""
    check_origin(origin)
    checkout_id = f"{origin}:{view.id}"
    checkout: dict[str, Any] = {"id": checkout_id, "origin": origin,
                                "comment": f"{view.matrix} run {view.id}",
                                "misc": {"matrix": view.matrix, "run": view.id,
                                         "versions": dict(view.versions)}}
    if view.started:
        checkout["start_time"] = view.started
    builds: dict[str, dict[str, Any]] = {}
    tests: list[dict[str, Any]] = []
    sig_known: dict[str, list[str]] = {}
    issues: list[dict[str, Any]] = []
    for k in known_issues:
        iid = f"{origin}:{k['id']}"
        sigs = [str(x) for x in k.get("signatures") or [k["signature"]]]
        for sig in sigs:
            sig_known.setdefault(sig, []).append(iid)
        issue: dict[str, Any] = {"id": iid, "version": 1, "origin": origin,
                                 "comment": str(k.get("title") or sigs[0]),
                                 "culprit": {"code": True},
                                 "misc": {"signatures": sigs,
                                          "state": k.get("state", "open")}}
        if k.get("url"):
            issue["report_url"] = str(k["url"])
        issues.append(issue)
    incidents: list[dict[str, Any]] = []
    for cell in view.cells:
        build_id = f"{checkout_id}:{cell.guest}"
        builds.setdefault(build_id, {"id": build_id, "origin": origin,
                                     "checkout_id": checkout_id, "architecture": "arm64",
                                     "comment": f"guest {cell.guest}",
                                     "misc": {"guest": cell.guest}})
        tests.append(_cell_test(view, cell, origin, build_id, sig_known))
        if not boots:
            continue
        for b in cell.boot_views:
            t = _boot_test(view, cell, b, origin, build_id, base_url)
            tests.append(t)
            for title in b.signatures:
                for iid in sig_known.get(title, ()):
                    incidents.append({"id": f"{t['id']}:{iid.split(':', 1)[1]}",
                                      "origin": origin, "issue_id": iid, "issue_version": 1,
                                      "test_id": t["id"], "build_id": build_id,
                                      "present": True})
    doc: dict[str, Any] = {"version": dict(SCHEMA_VERSION), "checkouts": [checkout],
                           "builds": list(builds.values()), "tests": tests}
    if issues:
        doc["issues"] = issues
        doc["incidents"] = incidents
    return doc


def write_kcidb(view: RunView, path: Path, **options: Any) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_kcidb(view, **options), f, indent=1, sort_keys=True)
        f.write("\n")
    return path
