"""Build the report view-model from a recorded run (``harness.store.RunData``).

Every number that is a statistic comes from ``harness.stats``; this module only picks the
comparisons to make, reads the few log lines around each finding from the artifacts, and
formats statements.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import stats
from harness.history.regress import regressions, snapshots
from harness.history.runs import RunStatus
from harness.knownissues import KnownIssues
from harness.model import BootResult, Cell, Finding, Outcome
from harness.report.compare import diff_runs
from harness.report.view import (
    OUTCOME_LABELS,
    BootView,
    CellView,
    ClassVerdict,
    Comparison,
    DelayPoint,
    Histogram,
    HostRow,
    Rate,
    RunView,
    Snippet,
    StoppedEarly,
    pct,
    rate_text,
    show_value,
)
from harness.store import CellData, RunData

CONTEXT_LINES = 3  # lines before and after each finding
MAX_SNIPPETS = 6  # per boot
CONSOLE_TAIL = 30  # lines of console shown for a boot failure
MAX_LINE = 400  # characters kept of one log line
TEXT_ARTIFACTS = ("dmesg", "console")  # where findings' line numbers may point


def view_rate(r: stats.Rate) -> Rate:
    return r


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- log context (pure) ---------------------------------------------------------------


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …"


def context_snippets(source: str, lines: Sequence[str], findings: Iterable[Finding],
                     context: int = CONTEXT_LINES,
                     max_snippets: int = MAX_SNIPPETS) -> tuple[Snippet, ...]:
    """The lines around each finding (1-based ``Finding.line`` into ``lines``), windows
    that touch merged, at most ``max_snippets``; findings outside the text are skipped."""
    hits = sorted({f.line: f for f in findings if 1 <= f.line <= len(lines)}.items())
    windows: list[tuple[int, int, list[Finding]]] = []
    for line, f in hits:
        lo, hi = max(1, line - context), min(len(lines), line + context)
        if windows and lo <= windows[-1][1] + 1:
            windows[-1] = (windows[-1][0], max(hi, windows[-1][1]), [*windows[-1][2], f])
        else:
            windows.append((lo, hi, [f]))
    out = []
    for lo, hi, fs in windows[:max_snippets]:
        kinds = ", ".join(dict.fromkeys(f.kind for f in fs))
        out.append(Snippet(f"{kinds} at {source}:{fs[0].line}", source, lo,
                           tuple(_clip(x) for x in lines[lo - 1:hi]),
                           tuple(f.line for f in fs)))
    return tuple(out)


def tail_snippet(source: str, lines: Sequence[str], n: int = CONSOLE_TAIL) -> Snippet | None:
    if not lines:
        return None
    first = max(1, len(lines) - n + 1)
    return Snippet(f"{source} (last {len(lines) - first + 1} lines)", source, first,
                   tuple(_clip(x) for x in lines[first - 1:]))


def _matches(lines: Sequence[str], findings: Sequence[Finding]) -> bool:
    """Do the findings' line numbers point into these lines (their text is there)?"""
    for f in findings:
        if not 1 <= f.line <= len(lines):
            return False
        probe = f.text.strip()[:40]
        if probe and probe not in lines[f.line - 1]:
            return False
    return True


# --- boots ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Where a run's artifacts are and where the report goes (for relative links)."""

    artifacts_root: Path | None
    report_dir: Path

    def link(self, rel: str) -> str:
        if self.artifacts_root is None:
            return rel
        return Path(os.path.relpath(self.artifacts_root / rel, self.report_dir)).as_posix()

    def read_lines(self, rel: str) -> list[str] | None:
        if self.artifacts_root is None:
            return None
        try:
            with (self.artifacts_root / rel).open(encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return None


def _text_artifacts(b: BootResult) -> list[tuple[str, str]]:
    arts = dict(b.artifacts)
    ordered = [(n, p) for key in TEXT_ARTIFACTS for n, p in arts.items() if key in n.lower()]
    return list(dict.fromkeys(ordered))


def boot_view(b: BootResult, paths: Paths) -> BootView:
    outcome = Outcome(b.outcome).value
    snippets: list[Snippet] = []
    if outcome != "ok":
        texts = _text_artifacts(b)
        findings = list(b.findings)
        placed = False
        for name, rel in texts:
            lines = paths.read_lines(rel) if findings else None
            if lines is not None and _matches(lines, findings):
                snippets += context_snippets(name, lines, findings)
                placed = True
                break
        if findings and not placed:  # no artifact to read: the finding lines alone
            snippets.append(Snippet("findings", "classifier", findings[0].line,
                                    tuple(_clip(f"{f.kind}: {f.text}") for f in findings)))
        if outcome == "boot_failure":
            console = next(((n, r) for n, r in texts if "console" in n.lower()), None)
            lines = paths.read_lines(console[1]) if console else None
            tail = tail_snippet(console[0], lines) if console and lines else None
            if tail is not None:
                snippets.append(tail)
    return BootView(
        index=b.index, outcome=outcome, reason=b.reason, offline_cpus=b.offline_cpus,
        latency_s=b.bringup_latency_s, signatures=tuple(s.title for s in b.signatures),
        snippets=tuple(snippets),
        artifacts=tuple((n, paths.link(p)) for n, p in b.artifacts) if outcome != "ok" else (),
    )


# --- cells ------------------------------------------------------------------------------


def judgements(j: stats.Judgement, rates: dict[str, Rate]) -> tuple[ClassVerdict, ...]:
    out = []
    for c in j.classes:
        label = OUTCOME_LABELS.get(c.outcome, c.outcome)
        statement = f"{label} {rate_text(rates[c.outcome])}, expected <= {pct(c.maximum)}"
        if c.maximum <= 0 and c.k == 0 and c.n:  # "no failure in n boots (rate < X%)"
            statement = f"{label}: {c.statement.split(': ', 1)[1]}"
        out.append(ClassVerdict(outcome=c.outcome, verdict=c.status, limit=c.maximum,
                                statement=statement, boots_to_decide=c.more_boots,
                                claim=c.statement))
    return tuple(out)


def cell_view(cd: CellData, paths: Paths) -> CellView:
    c, counts = cd.cell, cd.counts
    conf = c.expect.confidence
    seq = cd.stopped_early  # adaptive stop: confidence sequences, the verdict read off them
    rates = {o: view_rate(counts.rate(o, conf, sequential=seq))
             for o in ("vcpu_offline", "boot_failure")}
    j = cd.judgement
    d = cd.decision
    stop = (StoppedEarly(d.decision, d.at_boot, d.outcome, d.low, d.high, d.method)
            if d is not None else None)
    return CellView(
        id=c.id, host=c.host, guest=c.guest, vcpus=c.vcpus, planned=c.boots,
        ok=counts.ok, vcpu_offline=counts.vcpu_offline, boot_failure=counts.boot_failure,
        infra_error=counts.infra_error, vcpu_offline_rate=rates["vcpu_offline"],
        boot_failure_rate=rates["boot_failure"], verdict=j.status,
        judgements=judgements(j, rates),
        signatures=tuple(s for s in cd.signatures),
        params=(*c.params, *((("reboot", str(c.reboot)),) if _varies(c, "reboot") else ()),
                *((("memory_mib", c.memory_mib),) if _varies(c, "memory_mib") else ())),
        host_attrs=c.host_attrs,
        boot_views=tuple(boot_view(b, paths) for b in cd.boots),
        versions=cell_versions(cd.boots),
        stopped_early=stop,
        interval=stats.CS_METHOD if seq else stats.DISPLAY_METHOD,
    )


VERSION_KEYS = ("guest_kernel", "qemu", "libvirt", "host_kernel", "firmware",
                "firmware_sha256")


def cell_versions(boots: Iterable[BootResult]) -> tuple[tuple[str, str], ...]:
    """The versions a cell's boots recorded (``extra["versions"]``): each known name with
    its distinct values in first-seen order (pure)."""
    seen: dict[str, list[str]] = {}
    for b in boots:
        v = dict(b.extra).get("versions")
        if not isinstance(v, dict):
            continue
        for key in VERSION_KEYS:
            val = v.get(key)
            if val and str(val) not in seen.setdefault(key, []):
                seen[key].append(str(val))
    return tuple((k, ", ".join(seen[k])) for k in VERSION_KEYS if seen.get(k))


def _varies(c: Cell, name: str) -> bool:
    """Is a cell-field axis part of the cell id (i.e. an axis of the matrix)?"""
    return f"/{name}=" in c.id


# --- comparisons ------------------------------------------------------------------------


def comparison_plan(cells: Sequence[Cell]) -> list[tuple[str, Any, Any, tuple[str, ...],
                                                           stats.Alternative]]:
    """Which comparisons a run's report makes: every axis or host attribute with exactly
    two values, within each guest (within each host when the axis is the guest). A
    boolean (``numa_patch``) asks one-sidedly whether ``false`` fails more often than
    ``true`` (the flag names a fix); other pairs are tested two-sided."""
    keys: dict[str, list[Any]] = {}
    for c in cells:
        for k, v in (("guest", c.guest), ("vcpus", c.vcpus), *c.params, *c.host_attrs):
            vals = keys.setdefault(k, [])
            if not any(str(v) == str(x) for x in vals):
                vals.append(v)
    plan: list[tuple[str, Any, Any, tuple[str, ...], stats.Alternative]] = []
    for k, vals in keys.items():
        if len(vals) != 2:
            continue
        by: tuple[str, ...] = ("host",) if k == "guest" else ("guest",)
        if all(isinstance(v, bool) for v in vals):
            plan.append((k, False, True, by, "greater"))
        else:
            a, b = sorted(vals, key=str)
            plan.append((k, a, b, by, "two-sided"))
    return plan


def comparisons(data: RunData, confidence: float = 0.95) -> tuple[Comparison, ...]:
    pairs = [(cd.cell, cd.counts) for cd in data.cells]
    family: list[stats.Comparison] = []
    axis_of: list[str] = []
    sides: list[tuple[Any, Any]] = []
    for axis, a, b, by, alt in comparison_plan([cd.cell for cd in data.cells]):
        found = stats.compare_along(pairs, axis, a, b, by=by, alternative=alt,
                                    confidence=confidence)
        family += found
        axis_of += [axis] * len(found)
        sides += [(a, b)] * len(found)
    out: list[Comparison] = []
    for axis, c, (a, b) in zip(axis_of, stats.adjust(family), sides, strict=True):
        within = c.label.rsplit(" (", 1)[1].rstrip(")") if " (" in c.label else ""
        diff = Rate(k=0, n=0, value=c.difference, low=c.interval.low,
                    high=c.interval.high)
        ra = stats.rate(c.k_a, c.n_a, confidence)
        rb = stats.rate(c.k_b, c.n_b, confidence)
        test = {"boschloo": "Boschloo", "fisher": "Fisher", "none": "none"}.get(c.method,
                                                                                  c.method)
        out.append(Comparison(c.outcome, axis, f"{axis}={show_value(a)}",
                              f"{axis}={show_value(b)}", within, view_rate(ra), view_rate(rb),
                              diff, c.p_value, c.p_adjusted, c.significant,
                              f"{test} ({c.alternative})"))
    return tuple(sorted(out, key=lambda x: (x.p_adjusted, x.title)))


# --- the whole run ----------------------------------------------------------------------


def latency_histogram(values: Sequence[float], bins: int = 30) -> Histogram | None:
    if not values:
        return None
    import numpy as np

    arr = np.asarray(values, dtype=float)
    counts, edges = np.histogram(arr, bins=min(bins, max(1, len(set(values)))))
    return Histogram(tuple(float(e) for e in edges), tuple(int(c) for c in counts), len(arr),
                     float(np.median(arr)), float(np.percentile(arr, 95)), float(arr.max()))


def _config(data: RunData) -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, str], ...]]:
    info = data.run
    cfg: dict[str, Any] = {"run": info.id, "status": info.status,
                           "matrix file": info.matrix_file}
    if info.artifacts_dir:
        cfg["artifacts"] = info.artifacts_dir
    versions: dict[str, str] = {}
    for k, v in info.config.items():
        if k == "host_facts":
            continue  # its own table (host_rows)
        if k == "versions" and isinstance(v, dict):
            versions.update({str(a): str(b) for a, b in v.items()})
        else:
            cfg[str(k)] = v
    return tuple(cfg.items()), tuple(sorted(versions.items()))


def mark_known(cells: tuple[CellView, ...], known: KnownIssues) -> tuple[CellView, ...]:
    """Each cell's signatures with the bugs of the open known issues that name them there."""
    def mark(c: CellView) -> CellView:
        sigs = tuple(replace(s, known=tuple(k.bug for k in known.known(s.title, c.id, c.host)))
                     for s in c.signatures)
        return replace(c, signatures=sigs)

    return tuple(mark(c) for c in cells)


def host_rows(data: RunData) -> tuple[HostRow, ...]:
    """Every host of the run with its attributes and gathered facts."""
    from harness.hostfacts import FACT_KEYS, fact_rows

    facts = dict(fact_rows(data.run.config.get("host_facts")))
    attrs: dict[str, tuple[tuple[str, Any], ...]] = {}
    for cd in data.cells:
        attrs.setdefault(cd.cell.host, cd.cell.host_attrs)
    rows = []
    for host in sorted(set(attrs) | set(facts)):
        f = facts.get(host, {})
        rows.append(HostRow(host, attrs.get(host, ()),
                            tuple((k, f[k]) for k in FACT_KEYS if k in f),
                            str(f.get("source", "")), str(f.get("error", ""))))
    return tuple(rows)


def delay_points(data: RunData) -> tuple[DelayPoint, ...]:
    """Boots with per-vCPU host timing: latency against the late vCPU's host delay."""
    from harness.collect.vcpustats import late_vcpu_delay

    out = []
    for cd in data.cells:
        for b in cd.boots:
            if b.outcome is Outcome.INFRA_ERROR:
                continue
            extra = dict(b.extra)
            late = late_vcpu_delay(extra, b.offline_cpus, b.slowest_cpu)
            if late is None:
                continue
            failed = bool(b.offline_cpus) and late[0] in b.offline_cpus
            out.append(DelayPoint(cd.cell.id, b.index, late[0], late[1],
                                  None if failed else b.bringup_latency_s, str(b.outcome),
                                  "trial" if extra.get("trial") else "boot"))
    return tuple(out)


def build_view(data: RunData, *, previous: RunData | None = None,
               artifacts_root: Path | None = None, report_dir: Path | None = None,
               previous_note: str = "", completeness: RunStatus | None = None,
               known: KnownIssues | None = None) -> RunView:
    """The view of run ``data``; ``previous`` (its baseline: an earlier run of the same
    matrix) adds the previous-run section, ``previous_note`` says why that run (or why
    none); ``completeness`` whether the run is complete and why not."""
    paths = Paths(artifacts_root, report_dir or artifacts_root or Path.cwd())
    cells = tuple(cell_view(cd, paths) for cd in data.cells)
    if known:
        cells = mark_known(cells, known)
    confs = {cd.cell.expect.confidence for cd in data.cells}
    confidence = confs.pop() if len(confs) == 1 else 0.95
    axes = list(dict.fromkeys(["host", "guest", "vcpus",
                               *(k for c in cells for k, _ in c.params)]))
    attrs = list(dict.fromkeys(k for cd in data.cells for k, _ in cd.cell.host_attrs))
    latencies = [b.bringup_latency_s for cd in data.cells for b in cd.boots
                 if b.bringup_latency_s is not None]
    config, versions = _config(data)
    rel_art = (Path(os.path.relpath(artifacts_root, paths.report_dir)).as_posix()
               if artifacts_root is not None else "")
    return RunView(
        id=data.run.id, matrix=data.run.matrix, started=iso(data.run.started) or "",
        finished=iso(data.run.finished), cells=cells, axes=tuple(axes),
        host_attr_names=tuple(attrs), comparisons=comparisons(data, confidence),
        previous=diff_runs(previous, data, confidence) if previous is not None else None,
        previous_note=previous_note, latency=latency_histogram(latencies), config=config,
        versions=versions, confidence=confidence, artifacts_base=rel_art,
        regressions=(regressions(snapshots(previous), snapshots(data), run_id=data.run.id,
                                 baseline_id=previous.run.id, baseline_reason=previous_note,
                                 matrix=data.run.matrix, alpha=round(1 - confidence, 10))
                     if previous is not None else None),
        baseline_reason=previous_note, completeness=completeness,
        hosts=host_rows(data), delay_points=delay_points(data),
    )
